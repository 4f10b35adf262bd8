"""Tests of the independent verifier.

Run from the repository root:  python3 -m unittest discover -s verify/python

The evidence folders to check come from the environment variable
POLLSYNC_EVIDENCE_DIRS (colon-separated paths of folders written by
`center export-evidence`); the tests that need them are skipped when it is not
set.  Every tampering test works on a copy in a temporary folder.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pollsync_verify as pv  # noqa: E402  (the verifier itself, not pollsync's code)

SCRIPT = os.path.join(HERE, "pollsync_verify.py")
EVIDENCE_DIRS = [d for d in os.environ.get("POLLSYNC_EVIDENCE_DIRS", "").split(":") if d]
SKIP_REASON = ("POLLSYNC_EVIDENCE_DIRS is not set: set it to colon-separated evidence folders "
               "written by `center export-evidence` to run these tests")


def run_verifier(folder):
    """Run the verifier as a program; return (exit status, stdout)."""
    proc = subprocess.run([sys.executable, SCRIPT, folder], capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def flip(path, offset, mask=0x01):
    """Flip bits of the byte at `offset` (negative: from the end) of a file."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        data[offset] ^= mask
        f.seek(0)
        f.write(data)
        f.truncate()


def first_file(root, rel_dir, predicate=lambda name: True):
    """Relative path of the first file (sorted walk) under rel_dir, or None."""
    base = os.path.join(root, rel_dir)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            if predicate(name):
                return os.path.relpath(os.path.join(dirpath, name), root)
    return None


class WorkedExample(unittest.TestCase):
    """PROTOCOL.md section 12: the verifier's decoder and signature check on the
    published bytes.  Needs no evidence folder."""

    BATCH = bytes.fromhex(
        "0a03652d311206532d303030311801222000000000000000000000000000000000000000000000"
        "000000000000000000002a20a0ed86ac65e888a045823031405c0a36621cef545ab7788b22b53b"
        "467a247953320b12090a05442d303031100232240a220a10000102030405060708090a0b0c0d0e"
        "0f1205442d3030311a0301020022024c693a086f6666696369616c")
    SIGNATURE = bytes.fromhex(
        "33c0fff2dbcbdc4bb5887867f99f7027318cc620e94b4e03625fea040d7eb70a"
        "19bda920fe5be0d80254089041f8fad4203c8ca72750a3d75285e4064107b10c")
    PUBLIC = bytes.fromhex("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")

    def test_decode_and_canonical(self):
        batch = pv.decode("Batch", self.BATCH)
        self.assertEqual(len(self.BATCH), 144)
        self.assertEqual(batch["election_id"], "e-1")
        self.assertEqual(batch["station_id"], "S-0001")
        self.assertEqual(batch["sequence"], 1)
        self.assertEqual(batch["definition_sha256"], hashlib.sha256(b'[election]\nid = "e-1"\n').digest())
        self.assertEqual(batch["events"][0]["issued"], {"contest": "D-001", "count": 2})
        self.assertEqual(batch["events"][1]["ballot"]["write_in"], ["Li"])
        self.assertEqual(batch["mode"], "official")
        self.assertEqual(pv.encode("Batch", batch), self.BATCH)
        self.assertEqual(hashlib.sha256(self.BATCH).hexdigest(),
                         "b101d972a1e1abaddfec43157c388b31445f25fac43d43dd9f981b0ce1765e14")

    def test_signature(self):
        key = pv.Ed25519PublicKey.from_public_bytes(self.PUBLIC)
        message = pv.SIGNATURE_PREFIX + self.BATCH
        self.assertTrue(pv.verify_strict(self.PUBLIC, key, self.SIGNATURE, message))
        bad = bytearray(self.SIGNATURE)
        bad[5] ^= 1
        self.assertFalse(pv.verify_strict(self.PUBLIC, key, bytes(bad), message))
        # s >= l is refused (strict), whatever the rest.
        high = self.SIGNATURE[:32] + (pv.ED25519_L + 1).to_bytes(32, "little")
        self.assertFalse(pv.verify_strict(self.PUBLIC, key, high, message))

    def test_zero_report_event(self):
        event = {"ballot": None, "issued": None, "cancel": None, "close": None,
                 "zero_report": {"contests": ["D-001", "T-001"]}}
        data = pv.encode("Event", event)
        self.assertEqual(data, bytes.fromhex("2a0e0a05442d3030310a05542d303031"))
        self.assertEqual(pv.decode("Event", data), event)

    def test_malformed_is_an_error_not_a_crash(self):
        for bad in (b"\x0a", b"\x0a\x05ab", b"\x0b", b"\xff" * 11, b"\x18\x80"):
            with self.assertRaises(pv.ProtoError):
                pv.decode("Batch", bad)
        # Non-minimal varint: decodes, but is not canonical.
        loose = b"\x18\x81\x00"
        self.assertNotEqual(pv.encode("Batch", pv.decode("Batch", loose)), loose)
        # Two kinds in one event.
        with self.assertRaises(pv.ProtoError):
            pv.decode("Event", b"\x12\x00\x1a\x00")

    def test_tile_paths(self):
        self.assertEqual(pv.tile_index_path(1234067), "x001/x234/067")
        self.assertEqual(pv.tile_index_path(5), "005")
        self.assertEqual(pv.parse_tile_path("tile/0/x001/x234/067.p/10"), (0, 1234067, 10))
        self.assertEqual(pv.parse_tile_path("tile/entries/000"), ("entries", 0, 256))
        self.assertIsNone(pv.parse_tile_path("tile/0/x000/005"))
        self.assertIsNone(pv.parse_tile_path("tile/0/000.p/256"))

    def test_merkle_root(self):
        leaves = [hashlib.sha256(b"\x00" + bytes([i])).digest() for i in range(7)]
        levels = pv.tree_levels(leaves)

        def mth(hs):
            if len(hs) == 1:
                return hs[0]
            k = 1
            while k * 2 < len(hs):
                k *= 2
            return pv.node_hash(mth(hs[:k]), mth(hs[k:]))
        for n in range(1, 8):
            self.assertEqual(pv.tree_root(levels, n), mth(leaves[:n]))
        self.assertEqual(pv.tree_root(levels, 0), hashlib.sha256(b"").digest())


class EventRules(unittest.TestCase):
    """V7.6 and V7.7 on hand-made events.  Needs no evidence folder."""

    def setUp(self):
        ctx = pv.Context("/nonexistent")
        ctx.contests = {
            "D-001": {"id": "D-001", "seats": 1, "registered": 10,
                      "candidates": [{"id": "D-001-1", "name": "A"}, {"id": "D-001-2", "name": "B"}]},
            "T-001": {"id": "T-001", "seats": 1, "registered": 10,
                      "candidates": [{"id": "T-001-1", "name": "C"}, {"id": "T-001-2", "name": "D"}]},
        }
        ctx.stations = {"S-1": {"id": "S-1", "contests": ["T-001", "D-001"]}}
        self.ctx = ctx

    @staticmethod
    def event(kind, **fields):
        e = {"ballot": None, "issued": None, "cancel": None, "close": None, "zero_report": None}
        e[kind] = fields
        return e

    def zero(self, contests):
        return self.event("zero_report", contests=contests)

    def test_zero_report(self):
        check = pv.check_zero_report
        ballot = self.event("ballot", id=bytes(16), contest="D-001", marks=b"\x01\x00", write_in=[])
        check(self.ctx, "f", "batch 1", "S-1", 1, [self.zero(["T-001", "D-001"]), ballot])
        check(self.ctx, "f", "batch 1", "S-1", 1, [ballot])   # absent: a NOTE, not a failure
        for seq, events in ((1, [self.zero(["D-001", "T-001"])]),        # other order
                            (1, [self.zero(["T-001"])]),                 # missing contest
                            (1, [ballot, self.zero(["T-001", "D-001"])]),  # not first
                            (2, [self.zero(["T-001", "D-001"])])):       # not batch 1
            with self.assertRaises(pv.Fail) as cm:
                check(self.ctx, "f", f"batch {seq}", "S-1", seq, events)
            self.assertEqual(cm.exception.step, "V7.7")

    def test_rules_and_fold(self):
        log = pv.StationLog(self.ctx, "S-1")
        ids = [bytes([i]) * 16 for i in range(4)]
        log.apply(self.event("issued", contest="D-001", count=4))
        log.apply(self.event("ballot", id=ids[0], contest="D-001", marks=b"\x01\x02", write_in=[]))
        log.apply(self.event("ballot", id=ids[1], contest="D-001", marks=b"\x01\x00", write_in=["Wang"]))
        log.apply(self.event("ballot", id=ids[2], contest="D-001", marks=b"\x00\x01", write_in=[]))
        log.apply(self.event("cancel", ballot_id=ids[2], reason="typo"))
        bad = [
            self.event("ballot", id=ids[0], contest="D-001", marks=b"\x00\x00", write_in=[]),   # id twice
            self.event("ballot", id=ids[3], contest="D-001", marks=b"\x03\x00", write_in=[]),   # mark 3
            self.event("ballot", id=ids[3], contest="D-001", marks=b"\x00", write_in=[]),        # 1 mark
            self.event("ballot", id=ids[3], contest="D-001", marks=b"\x00\x00", write_in=["A"]),  # formal name
            self.event("ballot", id=ids[3], contest="D-001", marks=b"\x00\x00", write_in=[" x"]),  # not trimmed
            self.event("ballot", id=ids[3], contest="D-001", marks=b"\x00\x00", write_in=["a\u200bb"]),
            self.event("ballot", id=ids[3], contest="X-9", marks=b"", write_in=[]),               # not served
            self.event("cancel", ballot_id=ids[2], reason="again"),                                # twice
            self.event("cancel", ballot_id=ids[3], reason="unknown"),
            self.event("cancel", ballot_id=ids[0], reason="   "),
            self.event("issued", contest="D-001", count=0),
        ]
        for e in bad:
            with self.assertRaises(ValueError, msg=str(e)):
                log.apply(e)
        sheet = {"issued": 4, "returned": 2, "valid": 1, "void": 1, "against": [], "write_in": [],
                 "for_votes": [{"candidate": "D-001-1", "votes": 1}]}
        log.apply(self.event("close", contest="D-001", sheet=sheet))
        with self.assertRaises(ValueError):   # AFTER_CLOSE
            log.apply(self.event("issued", contest="D-001", count=1))
        with self.assertRaises(ValueError):   # AFTER_CLOSE: a cancel of a ballot of a closed contest
            log.apply(self.event("cancel", ballot_id=ids[0], reason="late"))
        f = self.ctx.folds[("S-1", "D-001")].figures(self.ctx.contests["D-001"])
        self.assertEqual((f["issued"], f["returned"], f["valid"], f["void"]), (4, 2, 1, 1))
        self.assertEqual(f["for"], {"D-001-1": 1, "D-001-2": 0})
        self.assertEqual(f["against"], {"D-001-1": 0, "D-001-2": 1})
        self.assertEqual(f["write_in"], {})
        self.assertEqual(pv.discrepancies(self.ctx, self.ctx.contests["D-001"], "S-1", f), [])

    def test_decide(self):
        two = {"seats": 2}
        self.assertEqual(pv.decide(two, 6, [("a", 4), ("b", 4), ("c", 4)])[:2], ("tie", set()))
        self.assertEqual(pv.decide(two, 6, [("a", 5), ("b", 4), ("c", 4)])[:2], ("tie", {"a"}))
        self.assertEqual(pv.decide(two, 6, [("a", 5), ("b", 4), ("c", 3)])[:2], ("elected", {"a", "b"}))
        status, elected, runoff = pv.decide(two, 6, [("a", 4), ("b", 2), ("c", 1), (("write_in", "W"), 3)])
        self.assertEqual((status, elected), ("runoff", {"a"}))
        self.assertEqual(runoff, {"seats": 1, "candidates": ["W", "b"]})


@unittest.skipUnless(EVIDENCE_DIRS, SKIP_REASON)
class Evidence(unittest.TestCase):
    """The sample evidence verifies, and each kind of tampering is caught."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pollsync-verify-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def copy(self, src):
        dst = os.path.join(self.tmp, "ev-" + str(len(os.listdir(self.tmp))))
        shutil.copytree(src, dst)
        return dst

    def assert_fails(self, folder, step, name):
        code, out = run_verifier(folder)
        fail_lines = [line for line in out.splitlines() if line.startswith("FAIL ")]
        self.assertEqual(code, 1, f"{name}: expected exit 1, got {code}\n{out}")
        self.assertEqual(len(fail_lines), 1, f"{name}: expected one FAIL line\n{out}")
        self.assertTrue(fail_lines[0].startswith(f"FAIL {step}"),
                        f"{name}: expected a failure of {step}, got {fail_lines[0]}")
        self.assertNotIn("Traceback", out, f"{name}: crashed\n{out}")
        self.assertNotIn("verifier error", out, f"{name}: unexpected exception\n{out}")

    def tamper(self, src, name, step, change):
        """Copy src, apply change(folder) (skip if it returns False), expect FAIL step."""
        folder = self.copy(src)
        with self.subTest(evidence=src, tamper=name):
            if change(folder) is False:
                return
            self.assert_fails(folder, step, name)

    def test_samples_verify(self):
        for src in EVIDENCE_DIRS:
            with self.subTest(evidence=src):
                code, out = run_verifier(src)
                self.assertEqual(code, 0, out)
                self.assertNotIn("FAIL", out)
                for n in range(1, 12):
                    self.assertRegex(out, rf"(?m)^V{n} ")

    def test_tampered_files(self):
        for src in EVIDENCE_DIRS:
            self.tamper(src, "election.toml", "V7.3", self.edit_definition)
            self.tamper(src, "ca.pem", "V2", lambda d: flip(os.path.join(d, "ca.pem"), 100))
            self.tamper(src, "log-key.txt", "V3", lambda d: flip(os.path.join(d, "log-key.txt"), -5))
            self.tamper(src, "checkpoint root", "V4", self.edit_checkpoint_root)
            self.tamper(src, "checkpoint signature", "V4", lambda d: flip(os.path.join(d, "checkpoint"), -4))
            self.tamper(src, "hash tile", "V5.4", lambda d: self.flip_in(d, "tile/0", -1))
            self.tamper(src, "entry bundle hash", "V5.3", lambda d: self.flip_in(d, "tile/entries", -1))
            self.tamper(src, "entry bundle prefix", "V5.2", lambda d: self.flip_in(d, "tile/entries", 3))
            self.tamper(src, "extra tile", "V5.4", self.add_tile)
            self.tamper(src, "certificate", "V6", self.edit_certificate)
            self.tamper(src, "batch content", "V7.2", self.edit_batch)
            self.tamper(src, "batch signature", "V7.2",
                        lambda d: self.flip_in(d, "stations", -1, lambda n: n == "batches.export"))
            self.tamper(src, "truncated export", "V7.1", self.truncate_export)
            self.tamper(src, "garbage export", "V7.1", self.garbage_export)
            self.tamper(src, "fork file", "V8", self.edit_fork)
            self.tamper(src, "standing text", "V9.1", self.edit_standing)
            self.tamper(src, "standing missing", "V9.2", self.remove_standing)
            self.tamper(src, "results.json figure", "V10.1", self.edit_results)
            self.tamper(src, "results.json status", "V10.1", self.edit_status)
            self.tamper(src, "results.json contest missing", "V10.2", self.drop_contest)
            self.tamper(src, "results-nist.json figure", "V11", self.edit_nist)

    # ---- the changes -----------------------------------------------------

    @staticmethod
    def flip_in(folder, rel_dir, offset, predicate=lambda name: True):
        rel = first_file(folder, rel_dir, predicate)
        if rel is None:
            return False
        flip(os.path.join(folder, rel), offset)
        return True

    @staticmethod
    def edit_definition(folder):
        path = os.path.join(folder, "election.toml")
        with open(path, "ab") as f:
            f.write(b"\n# one more comment\n")  # still valid TOML; the digest changes
        return True

    @staticmethod
    def edit_checkpoint_root(folder):
        path = os.path.join(folder, "checkpoint")
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        root = bytearray(lines[2])
        root[0] = ord("A") if root[0] != ord("A") else ord("B")
        lines[2] = bytes(root)
        with open(path, "wb") as f:
            f.write(b"\n".join(lines))
        return True

    @staticmethod
    def add_tile(folder):
        # A hash tile the tree does not have: level 5.
        path = os.path.join(folder, "tile", "5", "000.p", "1")
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(bytes(32))
        return True

    @staticmethod
    def edit_certificate(folder):
        rel = first_file(folder, "stations", lambda n: n.endswith(".der"))
        if rel is None:
            return False
        flip(os.path.join(folder, rel), -1)  # the CA's signature over it
        return True

    @staticmethod
    def edit_batch(folder):
        rel = first_file(folder, "stations", lambda n: n == "batches.export")
        if rel is None:
            return False
        path = os.path.join(folder, rel)
        with open(path, "rb") as f:
            data = f.read()
        # A byte of batch 1's definition digest, found after the station id.
        batch = pv.decode("SignedBatch", pv.decode("StationExport", memoryview(data)[8:])["batches"][0])["batch"]
        at = data.index(batch) + len(batch) - 40
        flip(path, at)
        return True

    @staticmethod
    def truncate_export(folder):
        rel = first_file(folder, "stations", lambda n: n == "batches.export")
        if rel is None:
            return False
        path = os.path.join(folder, rel)
        size = os.path.getsize(path)
        os.truncate(path, size - 10)
        return True

    @staticmethod
    def garbage_export(folder):
        rel = first_file(folder, "stations", lambda n: n == "batches.export")
        if rel is None:
            return False
        with open(os.path.join(folder, rel), "wb") as f:
            f.write(b"PSYNCEX1" + b"\x22\xff\xff\xff\xff\x0f" + b"\x00" * 20)
        return True

    @staticmethod
    def edit_fork(folder):
        rel = first_file(folder, "forks")
        if rel is None:
            return False
        flip(os.path.join(folder, rel), -1)
        return True

    @staticmethod
    def edit_standing(folder):
        rel = first_file(folder, "standing")
        if rel is None:
            return False
        path = os.path.join(folder, rel)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data.replace(b"reason \"", b"reason \"X", 1))
        return True

    @staticmethod
    def remove_standing(folder):
        rel = first_file(folder, "standing")
        if rel is None:
            return False
        os.remove(os.path.join(folder, rel))
        return True

    @staticmethod
    def rewrite_json(folder, name, change):
        path = os.path.join(folder, name)
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        change(doc)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        return True

    def edit_results(self, folder):
        def change(doc):
            doc["contests"][0]["candidates"][0]["for"] += 1
        return self.rewrite_json(folder, "results.json", change)

    def edit_status(self, folder):
        def change(doc):
            c = doc["contests"][-1]
            c["status"] = "elected" if c["status"] != "elected" else "pending"
        return self.rewrite_json(folder, "results.json", change)

    def drop_contest(self, folder):
        return self.rewrite_json(folder, "results.json", lambda doc: doc["contests"].pop())

    def edit_nist(self, folder):
        def change(doc):
            sel = doc["Election"][0]["Contest"][0]["ContestSelection"][0]
            total = [vc for vc in sel["VoteCounts"] if vc.get("Type") == "total"]
            total[0]["Count"] += 1
        return self.rewrite_json(folder, "results-nist.json", change)


if __name__ == "__main__":
    unittest.main()
