#!/usr/bin/env python3
"""Independent verifier of a pollsync election's public evidence.

usage: python3 pollsync_verify.py [--mode official|test] DIR

Runs the verification steps V1-V12 of docs/PROTOCOL.md section 10.2 on the
evidence folder DIR written by `center export-evidence`.  It prints one line per
step passed, `NOTE ...` lines for findings that are not failures, and at the
first failure one line

    FAIL <step> <file> <item>: <reason>

and exits 1.  Exit status 0 means every check held.  With --mode, evidence of
an election of the other mode fails at V1 (test and official never mix).

Written from docs/PROTOCOL.md, SPEC.md sections 6-7 and pollsync.proto alone: it
uses no code of pollsync.  Dependencies: the Python standard library (3.11+ for
tomllib) and the `cryptography` package (Ed25519, X.509).
"""

import base64
import hashlib
import json
import os
import re
import stat
import sys
import tomllib
import unicodedata

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

# --------------------------------------------------------------------------
# Limits (PROTOCOL.md section 11) and constants
# --------------------------------------------------------------------------

MODE_URI_PREFIX = "urn:pollsync:mode:"
MiB = 1024 * 1024
GiB = 1024 * MiB
MAX_EXPORT_BYTES = 1 * GiB
MAX_EXPORT_ENTRY_BYTES = MiB + 1024
MAX_BATCH_BYTES = MiB
MAX_BATCH_EVENTS = 4096
MAX_REASON_CHARS = 200
MAX_ID_BYTES = 64
MAX_WRITE_INS = 10
MAX_WRITE_IN_CHARS = 50
MAX_NAME_BYTES = 256
MAX_MARKS = 1024
MAX_SMALL_FILE = 64 * MiB        # definition, certificates, keys, standing texts
MAX_JSON_FILE = 1 * GiB          # results files
MAX_TILE_FILE = 256 * (2 + 65536)  # an entry bundle: 256 length-prefixed records

SIGNATURE_PREFIX = b"pollsync/batch/v1\x00"
LEAF_PREFIX = b"pollsync/leaf/v1\x00"
EXPORT_MAGIC = b"PSYNCEX1"
GENESIS = bytes(32)
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT

LEAF_BATCH, LEAF_FORK, LEAF_STANDING = 1, 2, 3
LEAF_KIND_NAMES = {LEAF_BATCH: "batch", LEAF_FORK: "fork", LEAF_STANDING: "standing"}

# Ed25519 group order and field prime, for the strict checks of PROTOCOL.md section 3.
ED25519_L = 2**252 + 27742317777372353535851937790883648493
ED25519_P = 2**255 - 19
# y coordinates (mod p) of the 8 points of small order (libsodium's blocklist).
SMALL_ORDER_Y = {
    0,
    1,
    ED25519_P - 1,
    int.from_bytes(bytes.fromhex(
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"),
    int.from_bytes(bytes.fromhex(
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"), "little"),
}


class Fail(Exception):
    """A verification failure: step (e.g. "V7.2"), file, item, reason."""

    def __init__(self, step, file, item, reason):
        super().__init__(reason)
        self.step, self.file, self.item, self.reason = step, file, item, reason

    def line(self):
        where = self.file or "-"
        if self.item:
            where += " " + self.item
        return f"FAIL {self.step} {where}: {self.reason}"


def esc(text):
    """Show text from the evidence safely: control and format characters escaped."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", "backslashreplace")
    out = []
    for ch in str(text):
        if unicodedata.category(ch)[0] in ("C", "Z") and ch != " ":
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return "".join(out)


def sha256(data):
    return hashlib.sha256(data).digest()


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------

def read_file(ctx, rel, step, limit):
    """Read evidence file `rel` (relative to the folder), at most `limit` bytes."""
    path = os.path.join(ctx.root, rel)
    try:
        st = os.stat(path)
    except OSError as e:
        raise Fail(step, rel, "", f"cannot read: {e.strerror}")
    if not stat.S_ISREG(st.st_mode):
        raise Fail(step, rel, "", "not a regular file")
    if st.st_size > limit:
        raise Fail(step, rel, "", f"file of {st.st_size} bytes exceeds the limit of {limit}")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise Fail(step, rel, "", f"cannot read: {e.strerror}")
    if len(data) > limit:
        raise Fail(step, rel, "", f"file exceeds the limit of {limit} bytes")
    return data


def list_dir(ctx, rel, step):
    """Sorted names in folder `rel`, or [] when it does not exist."""
    path = os.path.join(ctx.root, rel)
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise Fail(step, rel, "", "not a folder")
        return []
    try:
        return sorted(os.listdir(path))
    except OSError as e:
        raise Fail(step, rel, "", f"cannot list: {e.strerror}")


def list_files(ctx, rel, step):
    """Every regular file under folder `rel`, as paths relative to the evidence folder."""
    out = []
    base = os.path.join(ctx.root, rel)
    if not os.path.isdir(base):
        return out
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            out.append(os.path.relpath(full, ctx.root).replace(os.sep, "/"))
    return out


# --------------------------------------------------------------------------
# A small protobuf reader and writer (varint and length-delimited fields)
# --------------------------------------------------------------------------

class ProtoError(Exception):
    pass


def read_varint(buf, i):
    """Decode a varint at buf[i]; return (value, next index)."""
    value = shift = 0
    for n in range(10):
        if i >= len(buf):
            raise ProtoError("truncated varint")
        b = buf[i]
        i += 1
        if n == 9 and b > 1:
            raise ProtoError("varint overflows 64 bits")
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i
    raise ProtoError("varint longer than 10 bytes")


def raw_fields(buf):
    """Yield (field number, wire type, value) of one message; wire types 0 and 2 only."""
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtoError("field number 0")
        if wire == 0:
            value, i = read_varint(buf, i)
        elif wire == 2:
            n, i = read_varint(buf, i)
            if n > len(buf) - i:
                raise ProtoError(f"field {number}: length {n} runs past the end")
            value = buf[i:i + n]
            i += n
        else:
            raise ProtoError(f"field {number}: unexpected wire type {wire}")
        yield number, wire, value


# Message layouts from pollsync.proto: number -> (name, type, repeated).
SCHEMAS = {
    "StationExport": {1: ("format_version", "uint32", False), 2: ("election_id", "string", False),
                      3: ("station_id", "string", False), 4: ("batches", "SignedBatch", True)},
    "SignedBatch": {1: ("batch", "bytes", False), 2: ("signature", "bytes", False)},
    "Batch": {1: ("election_id", "string", False), 2: ("station_id", "string", False),
              3: ("sequence", "uint64", False), 4: ("prev_hash", "bytes", False),
              5: ("definition_sha256", "bytes", False), 6: ("events", "Event", True),
              7: ("mode", "string", False)},
    "Event": {1: ("ballot", "Ballot", False), 2: ("issued", "Issued", False),
              3: ("cancel", "Cancel", False), 4: ("close", "Close", False),
              5: ("zero_report", "ZeroReport", False)},
    "Ballot": {1: ("id", "bytes", False), 2: ("contest", "string", False),
               3: ("marks", "bytes", False), 4: ("write_in", "string", True)},
    "Issued": {1: ("contest", "string", False), 2: ("count", "uint64", False)},
    "Cancel": {1: ("ballot_id", "bytes", False), 2: ("reason", "string", False)},
    "Close": {1: ("contest", "string", False), 2: ("sheet", "TallySheet", False)},
    "TallySheet": {1: ("issued", "uint64", False), 2: ("returned", "uint64", False),
                   3: ("valid", "uint64", False), 4: ("void", "uint64", False),
                   5: ("for_votes", "CandidateCount", True), 6: ("against", "CandidateCount", True),
                   7: ("write_in", "WriteInCount", True)},
    "CandidateCount": {1: ("candidate", "string", False), 2: ("votes", "uint64", False)},
    "WriteInCount": {1: ("name", "string", False), 2: ("votes", "uint64", False)},
    "ZeroReport": {1: ("contests", "string", True)},
}
SCALAR_DEFAULTS = {"uint64": 0, "uint32": 0, "string": "", "bytes": b""}
ONEOFS = {"Event": ("ballot", "issued", "cancel", "close", "zero_report")}
# Nested messages are decoded lazily only where needed; SignedBatch entries of an
# export keep their raw bytes (memoryview) so that the exact bytes are verified.


def decode(msg, buf, max_repeated=None):
    """Decode `buf` as message `msg` (strict: no unknown fields, a singular field at
    most once, wire types as declared, valid UTF-8).  Message fields become dicts
    (or None when absent), repeated fields lists."""
    schema = SCHEMAS[msg]
    out = {}
    for name, typ, repeated in schema.values():
        out[name] = [] if repeated else (SCALAR_DEFAULTS.get(typ) if typ in SCALAR_DEFAULTS else None)
    seen = set()
    for number, wire, value in raw_fields(buf):
        if number not in schema:
            raise ProtoError(f"{msg}: unknown field {number}")
        name, typ, repeated = schema[number]
        if not repeated:
            if number in seen:
                raise ProtoError(f"{msg}.{name}: field appears twice")
            seen.add(number)
        want_wire = 0 if typ in ("uint64", "uint32") else 2
        if wire != want_wire:
            raise ProtoError(f"{msg}.{name}: wire type {wire}, expected {want_wire}")
        if typ == "uint32":
            if value > 0xFFFFFFFF:
                raise ProtoError(f"{msg}.{name}: value exceeds 32 bits")
        elif typ == "string":
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise ProtoError(f"{msg}.{name}: not valid UTF-8")
        elif typ == "bytes":
            value = bytes(value) if msg != "StationExport" else value
        elif typ in SCHEMAS:
            if msg == "StationExport":
                value = value  # a SignedBatch entry: decoded by the caller
            else:
                value = decode(typ, value, max_repeated)
        if repeated:
            out[name].append(value)
            if max_repeated is not None and len(out[name]) > max_repeated:
                raise ProtoError(f"{msg}.{name}: more than {max_repeated} entries")
        else:
            out[name] = value
    if msg in ONEOFS:
        set_kinds = [k for k in ONEOFS[msg] if out[k] is not None]
        if len(set_kinds) != 1:
            raise ProtoError(f"{msg}: {len(set_kinds)} kinds set, expected exactly one")
    return out


def encode_varint(value):
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode(msg, obj):
    """Canonical encoding of a decoded message (PROTOCOL.md section 2.6)."""
    out = bytearray()
    for number in sorted(SCHEMAS[msg]):
        name, typ, repeated = SCHEMAS[msg][number]
        values = obj[name] if repeated else [obj[name]]
        for value in values:
            if typ in ("uint64", "uint32"):
                if value == 0 and not repeated:
                    continue
                out += encode_varint(number << 3) + encode_varint(value)
                continue
            if typ == "string":
                data = value.encode("utf-8")
            elif typ == "bytes":
                data = bytes(value)
            else:
                if value is None:
                    continue
                data = encode(typ, value)
            if typ in SCALAR_DEFAULTS and not data and not repeated:
                continue
            out += encode_varint((number << 3) | 2) + encode_varint(len(data)) + data
    return bytes(out)


# --------------------------------------------------------------------------
# Verification state
# --------------------------------------------------------------------------

class Context:
    """Everything learned so far about the evidence folder."""

    def __init__(self, root):
        self.root = root
        self.step = "V1"
        self.file = ""
        self.notes = []
        # V1
        self.election_id = None
        self.mode = None
        self.definition = None
        self.contests = {}      # contest id -> contest table
        self.contest_order = []
        self.stations = {}      # station id -> station table
        self.D = None
        # V2, V3, V4
        self.ca_key = None
        self.log_name = None
        self.log_key = None
        self.tree_size = None
        self.tree_root = None
        # V5
        self.leaves = []        # (kind, station, sequence, hash) per leaf index
        # V6
        self.certs = {}         # station id -> [(k, public key, der sha256)]
        # V7
        self.accepted = {}      # station id -> {sequence: batch bytes}
        self.folds = {}         # (station, contest) -> Fold
        self.closed = {}        # (station, contest) -> TallySheet dict
        # V8, V9
        self.standing = {}      # leaf index -> parsed standing record

    def note(self, text):
        self.notes.append(text)
        print(f"NOTE {text}")


# --------------------------------------------------------------------------
# V1 Definition
# --------------------------------------------------------------------------

def step_v1_definition(ctx):
    """V1: election.toml parses, names the election, mode, contests and stations."""
    rel = "election.toml"
    data = read_file(ctx, rel, "V1", MAX_SMALL_FILE)
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise Fail("V1", rel, "", f"does not parse as TOML: {e}")
    election = doc.get("election")
    if not isinstance(election, dict):
        raise Fail("V1", rel, "[election]", "missing")
    eid = election.get("id")
    if not isinstance(eid, str) or not re.fullmatch(r"[a-z0-9-]+", eid):
        raise Fail("V1", rel, "[election] id", "missing or not [a-z0-9-]")
    mode = election.get("mode")
    if mode not in ("official", "test"):
        raise Fail("V1", rel, "[election] mode", f"{esc(mode)!s} is not official or test")
    rules = election.get("rules", "prc-direct")
    if rules != "prc-direct":
        raise Fail("V1", rel, "[election] rules", f"rule set {esc(rules)} is not prc-direct, "
                   "the only one this verifier recounts")
    contests, order = {}, []
    for n, c in enumerate(doc.get("contest", []) if isinstance(doc.get("contest", []), list) else []):
        item = f"contest #{n + 1}"
        if not isinstance(c, dict) or not isinstance(c.get("id"), str):
            raise Fail("V1", rel, item, "no id")
        cid = c["id"]
        if cid in contests:
            raise Fail("V1", rel, f"contest {esc(cid)}", "duplicate id")
        for key in ("seats", "registered"):
            if not isinstance(c.get(key), int) or isinstance(c.get(key), bool) or c[key] < 1:
                raise Fail("V1", rel, f"contest {esc(cid)}", f"{key} missing or < 1")
        cands = c.get("candidates")
        if not isinstance(cands, list) or not cands:
            raise Fail("V1", rel, f"contest {esc(cid)}", "no candidates")
        ids = []
        for cand in cands:
            if not isinstance(cand, dict) or not isinstance(cand.get("id"), str) \
                    or not isinstance(cand.get("name"), str):
                raise Fail("V1", rel, f"contest {esc(cid)}", "a candidate lacks id or name")
            ids.append(cand["id"])
        if len(set(ids)) != len(ids):
            raise Fail("V1", rel, f"contest {esc(cid)}", "duplicate candidate id")
        contests[cid] = c
        order.append(cid)
    if not contests:
        raise Fail("V1", rel, "[[contest]]", "no contests")
    stations = {}
    for n, s in enumerate(doc.get("station", []) if isinstance(doc.get("station", []), list) else []):
        if not isinstance(s, dict) or not isinstance(s.get("id"), str):
            raise Fail("V1", rel, f"station #{n + 1}", "no id")
        sid = s["id"]
        if sid in stations:
            raise Fail("V1", rel, f"station {esc(sid)}", "duplicate id")
        served = s.get("contests")
        if not isinstance(served, list) or not served or not all(isinstance(x, str) for x in served):
            raise Fail("V1", rel, f"station {esc(sid)}", "contests missing or empty")
        for cid in served:
            if cid not in contests:
                raise Fail("V1", rel, f"station {esc(sid)}", f"unknown contest {esc(cid)}")
        if len(set(served)) != len(served):
            raise Fail("V1", rel, f"station {esc(sid)}", "a contest listed twice")
        stations[sid] = s
    if not stations:
        raise Fail("V1", rel, "[[station]]", "no stations")
    ctx.election_id, ctx.mode, ctx.definition = eid, mode, doc
    ctx.contests, ctx.contest_order, ctx.stations = contests, order, stations
    ctx.D = sha256(data)
    print(f"V1 definition: election {eid} ({mode}), {len(contests)} contests, "
          f"{len(stations)} stations, D={ctx.D.hex()}")


# --------------------------------------------------------------------------
# V2 CA
# --------------------------------------------------------------------------

def subject_attr(cert, oid):
    values = cert.subject.get_attributes_for_oid(oid)
    if len(values) != 1:
        return None
    return values[0].value


def cert_mode(cert):
    """The one mode a certificate names (SAN URI urn:pollsync:mode:<mode>), or None."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except Exception:
        return None
    modes = [u[len(MODE_URI_PREFIX):] for u in san.get_values_for_type(x509.UniformResourceIdentifier)
             if u.startswith(MODE_URI_PREFIX)]
    return modes[0] if len(modes) == 1 and modes[0] in ("official", "test") else None


def ed25519_key_of(cert):
    key = cert.public_key()
    return key if isinstance(key, Ed25519PublicKey) else None


def step_v2_ca(ctx):
    """V2: ca.pem is a self-signed Ed25519 certificate whose OU is the election id."""
    rel = "ca.pem"
    data = read_file(ctx, rel, "V2", MAX_SMALL_FILE)
    try:
        cert = x509.load_pem_x509_certificate(data)
        key = ed25519_key_of(cert)
    except Exception as e:  # cryptography raises ValueError and others on bad input
        raise Fail("V2", rel, "", f"not an X.509 certificate: {esc(e)}")
    der = cert.public_bytes(serialization.Encoding.DER)
    body = base64.b64encode(der).decode("ascii")
    canonical = ("-----BEGIN CERTIFICATE-----\n"
                 + "".join(body[i:i + 64] + "\n" for i in range(0, len(body), 64))
                 + "-----END CERTIFICATE-----\n").encode("ascii")
    if data != canonical:
        raise Fail("V2", rel, "", "not exactly one certificate in PEM (BEGIN line, base64 "
                   "lines of 64, END line, each ending in a newline)")
    if key is None:
        raise Fail("V2", rel, "", "its key is not Ed25519")
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes)
    except InvalidSignature:
        raise Fail("V2", rel, "", "not signed by its own key (not self-signed)")
    ou = subject_attr(cert, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if ou != ctx.election_id:
        raise Fail("V2", rel, "subject OU", f"{esc(ou)} is not the election id {ctx.election_id}")
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    except Exception as e:
        raise Fail("V2", rel, "", f"bad extensions: {esc(e)}")
    if bc is None or not bc.ca:
        raise Fail("V2", rel, "basicConstraints", "not a CA certificate (CA:TRUE missing)")
    if cert_mode(cert) != ctx.mode:
        raise Fail("V2", rel, "subjectAltName", f"does not name mode {ctx.mode} "
                   f"(one URI {MODE_URI_PREFIX}{ctx.mode})")
    ctx.ca_key = key
    ctx.ca_subject = cert.subject
    print(f"V2 CA: {esc(cert.subject.rfc4514_string())}, self-signed Ed25519")


# --------------------------------------------------------------------------
# V3 Log key, V4 Checkpoint
# --------------------------------------------------------------------------

def key_id(name, public_key_bytes):
    return sha256(name.encode("utf-8") + b"\n\x01" + public_key_bytes)[:4]


def step_v3_log_key(ctx):
    """V3: log-key.txt is a signed-note verifier key `name+id+key` of the log."""
    rel = "log-key.txt"
    data = read_file(ctx, rel, "V3", 64 * 1024)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Fail("V3", rel, "", "not UTF-8")
    if text.endswith("\n"):
        text = text[:-1]
    if "\n" in text or "\r" in text:
        raise Fail("V3", rel, "", "not one line")
    # The name holds no "+" (C2SP signed-note); the base64 key may: split from the left.
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise Fail("V3", rel, "", "not of the form name+id+key")
    name, hex_id, b64 = parts
    if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
        raise Fail("V3", rel, "key id", "not 8 lowercase hex digits")
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        raise Fail("V3", rel, "key", "not base64")
    if len(raw) != 33 or raw[0] != 0x01:
        raise Fail("V3", rel, "key", "not algorithm 0x01 (Ed25519) with a 32-byte key")
    if key_id(name, raw[1:]).hex() != hex_id:
        raise Fail("V3", rel, "key id", "does not match SHA-256(name || \\n || key)")
    expected = f"pollsync/{ctx.election_id}/{ctx.mode}"
    if name != expected:
        raise Fail("V3", rel, "name", f"{esc(name)} is not {expected}")
    try:
        ctx.log_key = Ed25519PublicKey.from_public_bytes(raw[1:])
    except ValueError:
        raise Fail("V3", rel, "key", "not a valid Ed25519 public key")
    ctx.log_name, ctx.log_key_id = name, bytes.fromhex(hex_id)
    print(f"V3 log key: {name}+{hex_id}")


def read_signed_note(ctx, rel, step):
    """A C2SP signed note signed by the log key: its text (bytes, each line ending
    in a newline), after checking the log key's signature line."""
    data = read_file(ctx, rel, step, 1 * MiB)
    sep = data.find(b"\n\n")
    if sep < 0:
        raise Fail(step, rel, "", "no blank line between the note text and its signatures")
    body, sigs = data[:sep + 1], data[sep + 2:]
    try:
        sig_lines = sigs.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise Fail(step, rel, "", "not UTF-8")
    if not sig_lines or sig_lines[-1] != "":
        raise Fail(step, rel, "signatures", "the last signature line does not end in a newline")
    verified = False
    for n, line in enumerate(sig_lines[:-1]):
        m = re.fullmatch("\u2014 (\\S+) (\\S+)", line)
        if not m:
            raise Fail(step, rel, f"signature line {n + 1}", "not of the form '— name signature'")
        if m.group(1) != ctx.log_name:
            continue
        try:
            raw = base64.b64decode(m.group(2), validate=True)
        except ValueError:
            raise Fail(step, rel, f"signature line {n + 1}", "not base64")
        if len(raw) != 68 or raw[:4] != ctx.log_key_id:
            continue
        try:
            ctx.log_key.verify(raw[4:], body)
            verified = True
        except InvalidSignature:
            raise Fail(step, rel, f"signature line {n + 1}", "does not verify under the log key")
    if not verified:
        raise Fail(step, rel, "", "no signature by the log key")
    return body


def step_v4_checkpoint(ctx):
    """V4: checkpoint is a note of origin the key's name, signed by the log key."""
    rel = "checkpoint"
    body = read_signed_note(ctx, rel, "V4")
    try:
        lines = body.decode("utf-8").split("\n")[:-1]
    except UnicodeDecodeError:
        raise Fail("V4", rel, "", "not UTF-8")
    if len(lines) != 3:
        raise Fail("V4", rel, "", f"the note text has {len(lines)} lines, expected 3 "
                   "(origin, size, root)")
    origin, size_text, root_text = lines
    if origin != ctx.log_name:
        raise Fail("V4", rel, "origin", f"{esc(origin)} is not the log key's name {ctx.log_name}")
    if not re.fullmatch(r"0|[1-9][0-9]{0,19}", size_text):
        raise Fail("V4", rel, "size", f"{esc(size_text)} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except ValueError:
        raise Fail("V4", rel, "root", "not base64")
    if len(root) != 32:
        raise Fail("V4", rel, "root", "not 32 bytes")
    ctx.tree_size, ctx.tree_root = int(size_text), root
    print(f"V4 checkpoint: size {ctx.tree_size}, root {root.hex()}, signature ok")


# --------------------------------------------------------------------------
# V5 Log: entry bundles, leaf records, root, hash tiles
# --------------------------------------------------------------------------

def tile_index_path(n):
    """`<N>` of a tile path: groups of three digits, all but the last prefixed x."""
    text = f"{n:03d}"
    groups = []
    while len(text) > 3:
        groups.insert(0, text[-3:])
        text = text[:-3]
    groups.insert(0, text.zfill(3))
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def parse_tile_path(rel):
    """(level or 'entries', index, width) of a file under tile/, or None if not a tile path."""
    m = re.fullmatch(r"tile/(entries|0|[1-9][0-9]*)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]*))?", rel)
    if not m:
        return None
    level = m.group(1) if m.group(1) == "entries" else int(m.group(1))
    index = int(m.group(2).replace("x", "").replace("/", ""))
    if tile_index_path(index) != m.group(2):
        return None
    width = int(m.group(3)) if m.group(3) else TILE_WIDTH
    if m.group(3) and width >= TILE_WIDTH:
        return None
    return level, index, width


def tile_rel(level, index, width):
    path = f"tile/{level}/{tile_index_path(index)}"
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


def parse_leaf_record(record):
    """(kind, station, sequence, hash) of a leaf record (PROTOCOL.md section 13.1)."""
    if len(record) < 17 + 2 + 8 + 32 or record[:17] != LEAF_PREFIX:
        raise ValueError("not a pollsync leaf record (prefix or length)")
    kind, slen = record[17], record[18]
    if kind not in LEAF_KIND_NAMES:
        raise ValueError(f"unknown leaf kind {kind}")
    if not 1 <= slen <= 64:
        raise ValueError(f"station length {slen} is not 1 to 64")
    if len(record) != 19 + slen + 8 + 32:
        raise ValueError(f"record of {len(record)} bytes, expected {19 + slen + 40}")
    try:
        station = bytes(record[19:19 + slen]).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("station is not UTF-8")
    seq = int.from_bytes(record[19 + slen:27 + slen], "big")
    return kind, station, seq, bytes(record[27 + slen:])


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def tree_levels(leaf_hashes):
    """levels[k][i]: the root of the complete subtree of leaves [i*2^k, (i+1)*2^k)."""
    levels = [leaf_hashes]
    while len(levels[-1]) >= 2:
        below = levels[-1]
        levels.append([node_hash(below[2 * i], below[2 * i + 1]) for i in range(len(below) // 2)])
    return levels


def tree_root(levels, n):
    """RFC 6962 root of the first n leaves, from the complete subtrees."""
    if n == 0:
        return sha256(b"")
    parts, start = [], 0
    for k in range(n.bit_length() - 1, -1, -1):
        if n & (1 << k):
            parts.append(levels[k][start >> k])
            start += 1 << k
    root = parts[-1]
    for h in reversed(parts[:-1]):
        root = node_hash(h, root)
    return root


def step_v5_log(ctx):
    """V5: the entry bundles hold the N leaf records, whose tree has root R; the hash
    tiles are that tree's."""
    n = ctx.tree_size
    files = list_files(ctx, "tile", "V5")
    entry_files, hash_files = {}, {}
    for rel in files:
        parsed = parse_tile_path(rel)
        if parsed is None:
            raise Fail("V5.1", rel, "", "not a tile path of PROTOCOL.md section 13.4")
        level, index, width = parsed
        (entry_files if level == "entries" else hash_files)[rel] = parsed
    # V5.1, V5.2: the bundles of the tree of n leaves, in order.
    records = []
    for index in range((n + TILE_WIDTH - 1) // TILE_WIDTH):
        width = min(TILE_WIDTH, n - index * TILE_WIDTH)
        rel = tile_rel("entries", index, width)
        if rel not in entry_files:
            raise Fail("V5.1", rel, "", f"missing: the checkpoint's {n} leaves need it")
        records.extend(read_entry_bundle(ctx, rel, width, index))
    # Other bundle files (an older partial bundle) must agree with these records.
    for rel, (_, index, width) in entry_files.items():
        start = index * TILE_WIDTH
        if start + width > n:
            raise Fail("V5.1", rel, "", f"holds leaves beyond the checkpoint's {n}")
        got = read_entry_bundle(ctx, rel, width, index)
        if got != records[start:start + width]:
            raise Fail("V5.1", rel, "", "differs from the bundle of the same leaves")
    if len(records) != n:
        raise Fail("V5.1", "tile/entries", "", f"{len(records)} records, checkpoint says {n}")
    leaves = []
    for i, rec in enumerate(records):
        try:
            leaves.append(parse_leaf_record(rec))
        except ValueError as e:
            rel = tile_rel("entries", i // TILE_WIDTH, min(TILE_WIDTH, n - (i // TILE_WIDTH) * TILE_WIDTH))
            raise Fail("V5.2", rel, f"leaf {i}", str(e))
    # V5.3: the root.
    levels = tree_levels([sha256(b"\x00" + r) for r in records])
    root = tree_root(levels, n)
    if root != ctx.tree_root:
        raise Fail("V5.3", "checkpoint", "root",
                   f"the tree of the {n} records has root {root.hex()}, the checkpoint says "
                   f"{ctx.tree_root.hex()}")
    # V5.4: every hash tile, and every hash tile the tree has, is present and right.
    required = set()
    level = 0
    while (n >> (TILE_HEIGHT * level)) > 0:
        count = n >> (TILE_HEIGHT * level)
        for index in range((count + TILE_WIDTH - 1) // TILE_WIDTH):
            required.add(tile_rel(level, index, min(TILE_WIDTH, count - index * TILE_WIDTH)))
        level += 1
    for rel in sorted(required):
        if rel not in hash_files:
            raise Fail("V5.4", rel, "", "missing: a hash tile of the checkpoint's tree")
    for rel, (level, index, width) in sorted(hash_files.items()):
        k = TILE_HEIGHT * level
        start = index * TILE_WIDTH
        have = levels[k] if k < len(levels) else []
        if start + width > len(have):
            raise Fail("V5.4", rel, "", f"a tile beyond the tree of {n} leaves")
        data = read_file(ctx, rel, "V5.4", TILE_WIDTH * 32)
        expected = b"".join(have[start:start + width])
        if data != expected:
            if len(data) != len(expected):
                reason = f"{len(data)} bytes, expected {len(expected)} ({width} hashes)"
            else:
                bad = next(j for j in range(width) if data[32 * j:32 * j + 32] != expected[32 * j:32 * j + 32])
                reason = f"hash {bad} (tree level {k} index {start + bad}) is not the tree's"
            raise Fail("V5.4", rel, "", reason)
    ctx.leaves = leaves
    ctx.leaf_levels = levels
    print(f"V5 log: {n} leaves in {len(entry_files)} entry bundle(s), root ok, "
          f"{len(hash_files)} hash tile(s) ok")


def read_entry_bundle(ctx, rel, width, index):
    """The `width` records of an entry bundle (each preceded by a 2-byte length)."""
    data = read_file(ctx, rel, "V5.1", MAX_TILE_FILE)
    records, i = [], 0
    while i < len(data):
        if len(data) - i < 2:
            raise Fail("V5.1", rel, f"leaf {index * TILE_WIDTH + len(records)}", "truncated length")
        length = int.from_bytes(data[i:i + 2], "big")
        i += 2
        if length > len(data) - i:
            raise Fail("V5.1", rel, f"leaf {index * TILE_WIDTH + len(records)}", "truncated record")
        records.append(data[i:i + length])
        i += length
    if len(records) != width:
        raise Fail("V5.1", rel, "", f"holds {len(records)} records, expected {width}")
    return records


# --------------------------------------------------------------------------
# V6 Certificates
# --------------------------------------------------------------------------

def step_v6_certificates(ctx):
    """V6: every station certificate is issued by the CA to that station."""
    count = 0
    for sid in list_dir(ctx, "stations", "V6"):
        folder = f"stations/{sid}"
        if sid not in ctx.stations:
            raise Fail("V6", folder, "", f"station {esc(sid)} is not in the definition")
        names = list_dir(ctx, folder, "V6")
        ks = []
        for name in names:
            m = re.fullmatch(r"cert-([1-9][0-9]*)\.der", name)
            if m:
                ks.append(int(m.group(1)))
            elif name != "batches.export":
                ctx.note(f"V6 {folder}/{esc(name)}: a file the evidence format does not define; ignored")
        ks.sort()
        if ks != list(range(1, len(ks) + 1)):
            raise Fail("V6", folder, "", f"certificates {ks} are not numbered 1, 2, ... without gaps")
        if not ks:
            raise Fail("V6", folder, "", "the station has a folder but no certificate")
        certs = []
        for k in ks:
            rel = f"{folder}/cert-{k}.der"
            data = read_file(ctx, rel, "V6", MAX_SMALL_FILE)
            certs.append((k, check_station_cert(ctx, rel, data, sid), sha256(data)))
            count += 1
        ctx.certs[sid] = certs
    print(f"V6 certificates: {count} certificate(s) of {len(ctx.certs)} station(s), issued by the CA")


def check_station_cert(ctx, rel, data, sid):
    """Check one station certificate; return its Ed25519 public key."""
    try:
        cert = x509.load_der_x509_certificate(data)
        key = ed25519_key_of(cert)
    except Exception as e:
        raise Fail("V6", rel, "", f"not an X.509 DER certificate: {esc(e)}")
    if key is None:
        raise Fail("V6", rel, "", "its key is not Ed25519")
    try:
        ctx.ca_key.verify(cert.signature, cert.tbs_certificate_bytes)
    except InvalidSignature:
        raise Fail("V6", rel, "", "not signed by the CA's key")
    if cert.issuer != ctx.ca_subject:
        raise Fail("V6", rel, "issuer", "is not the CA's subject")
    cn = subject_attr(cert, NameOID.COMMON_NAME)
    if cn != sid:
        raise Fail("V6", rel, "subject CN", f"{esc(cn)} is not the station {esc(sid)}")
    ou = subject_attr(cert, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if ou != ctx.election_id:
        raise Fail("V6", rel, "subject OU", f"{esc(ou)} is not the election id {ctx.election_id}")
    if cert_mode(cert) != ctx.mode:
        raise Fail("V6", rel, "subjectAltName", f"does not name mode {ctx.mode} "
                   f"(one URI {MODE_URI_PREFIX}{ctx.mode})")
    return key


# --------------------------------------------------------------------------
# Batches: export container, signature, decoding
# --------------------------------------------------------------------------

def read_export(ctx, rel, step, station):
    """Read an export container (section 8): the list of (batch bytes, signature)."""
    data = read_file(ctx, rel, step, MAX_EXPORT_BYTES)
    if data[:8] != EXPORT_MAGIC:
        raise Fail(step, rel, "", "missing magic PSYNCEX1: not a pollsync export file")
    body = memoryview(data)[8:]
    entries = []
    try:
        # Each entry is bounded before it is decoded.
        for number, wire, value in raw_fields(body):
            if number == 4 and wire == 2 and len(value) > MAX_EXPORT_ENTRY_BYTES:
                raise ProtoError(f"entry {len(entries) + 1} of {len(value)} bytes exceeds "
                                 f"{MAX_EXPORT_ENTRY_BYTES}")
            if number == 4:
                entries.append(value)
        export = decode("StationExport", body)
    except ProtoError as e:
        raise Fail(step, rel, "", f"malformed container: {e}")
    if export["format_version"] != 1:
        raise Fail(step, rel, "format_version", f"{export['format_version']} is not 1")
    if export["election_id"] != ctx.election_id:
        raise Fail(step, rel, "election_id", f"{esc(export['election_id'])} is not {ctx.election_id}")
    if export["station_id"] != station:
        raise Fail(step, rel, "station_id", f"{esc(export['station_id'])} is not {esc(station)}")
    out = []
    for n, entry in enumerate(export["batches"]):
        try:
            signed = decode("SignedBatch", entry)
        except ProtoError as e:
            raise Fail(step, rel, f"entry {n + 1}", f"malformed SignedBatch: {e}")
        out.append((signed["batch"], signed["signature"]))
    return out


def verify_strict(key_bytes, key, signature, message):
    """Ed25519 verification with the strict checks of PROTOCOL.md section 3."""
    if len(signature) != 64:
        return False
    if int.from_bytes(signature[32:], "little") >= ED25519_L:
        return False
    for point in (signature[:32], key_bytes):
        if (int.from_bytes(point, "little") & ((1 << 255) - 1)) % ED25519_P in SMALL_ORDER_Y:
            return False
    try:
        key.verify(signature, message)
        return True
    except InvalidSignature:
        return False


def signing_cert(ctx, station, batch_bytes, signature, min_k=1):
    """The lowest certificate number >= min_k whose key verifies the batch, or None."""
    for k, key, _ in ctx.certs.get(station, []):
        if k < min_k:
            continue
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if verify_strict(raw, key, signature, SIGNATURE_PREFIX + batch_bytes):
            return k
    return None


def decode_batch(ctx, rel, item, step, batch_bytes, station):
    """V7.3: decode a batch canonically; it names the election, station and D."""
    if len(batch_bytes) > MAX_BATCH_BYTES:
        raise Fail(step, rel, item, f"batch of {len(batch_bytes)} bytes exceeds 1 MiB")
    try:
        batch = decode("Batch", batch_bytes, max_repeated=MAX_BATCH_EVENTS)
        if encode("Batch", batch) != batch_bytes:
            raise ProtoError("not the canonical encoding (PROTOCOL.md section 2.6)")
    except ProtoError as e:
        raise Fail(step, rel, item, f"does not decode as a Batch: {e}")
    if len(batch["prev_hash"]) != 32 or len(batch["definition_sha256"]) != 32:
        raise Fail(step, rel, item, "prev_hash or definition_sha256 is not 32 bytes")
    if batch["sequence"] == 0:
        raise Fail(step, rel, item, "sequence 0")
    if batch["election_id"] != ctx.election_id:
        raise Fail(step, rel, item, f"names election {esc(batch['election_id'])}")
    if batch["station_id"] != station:
        raise Fail(step, rel, item, f"names station {esc(batch['station_id'])}")
    if batch["definition_sha256"] != ctx.D:
        raise Fail(step, rel, item, "definition_sha256 is not SHA-256 of election.toml")
    if batch["mode"] != ctx.mode:
        raise Fail(step, rel, item, f"is of mode {esc(batch['mode'])}, the election of mode {ctx.mode}")
    return batch


# --------------------------------------------------------------------------
# Event rules (PROTOCOL.md section 6) and the fold of section 10.3
# --------------------------------------------------------------------------

class Fold:
    """One station's figures for one contest, from its events."""

    def __init__(self, contest):
        self.issued = 0
        self.ballots = {}       # ballot id -> (marks, write-ins)
        self.cancelled = set()
        self.sheet = None

    def figures(self, contest):
        """issued, returned, valid, void, for/against per candidate, for per write-in."""
        seats = contest["seats"]
        cands = [c["id"] for c in contest["candidates"]]
        f = {"issued": self.issued, "returned": 0, "valid": 0, "void": 0,
             "for": dict.fromkeys(cands, 0), "against": dict.fromkeys(cands, 0), "write_in": {}}
        for bid, (marks, write_ins) in self.ballots.items():
            if bid in self.cancelled:
                continue
            f["returned"] += 1
            if marks.count(1) + len(write_ins) > seats:
                f["void"] += 1
                continue
            f["valid"] += 1
            for cid, mark in zip(cands, marks):
                if mark == 1:
                    f["for"][cid] += 1
                elif mark == 2:
                    f["against"][cid] += 1
            for name in write_ins:
                f["write_in"][name] = f["write_in"].get(name, 0) + 1
        return f


class StationLog:
    """The state of one station's log while its events are replayed in order."""

    def __init__(self, ctx, station):
        self.ctx = ctx
        self.station = station
        self.served = ctx.stations[station]["contests"]
        self.ballot_contest = {}   # ballot id -> contest
        self.cancelled = set()
        self.closed = set()
        for cid in self.served:
            ctx.folds[(station, cid)] = Fold(ctx.contests[cid])

    def fold(self, cid):
        return self.ctx.folds[(self.station, cid)]

    def check_open(self, cid, what):
        if cid not in self.served:
            raise ValueError(f"{what}: contest {esc(cid)} is not served by the station")
        if cid in self.closed:
            raise ValueError(f"{what}: contest {esc(cid)} is already closed (AFTER_CLOSE)")

    def apply(self, event):
        """Check one event against section 6 and fold it; ValueError if it breaks a rule."""
        if event["ballot"] is not None:
            self.apply_ballot(event["ballot"])
        elif event["issued"] is not None:
            e = event["issued"]
            self.check_open(e["contest"], "issued")
            if e["count"] < 1:
                raise ValueError("issued: count is 0")
            self.fold(e["contest"]).issued += e["count"]
        elif event["cancel"] is not None:
            self.apply_cancel(event["cancel"])
        elif event["close"] is not None:
            self.apply_close(event["close"])
        # A zero report is checked by V7.7 (check_zero_report); it counts nothing.

    def apply_ballot(self, b):
        cid = b["contest"]
        self.check_open(cid, "ballot")
        if len(b["id"]) != 16:
            raise ValueError("ballot: id is not 16 bytes")
        if b["id"] in self.ballot_contest:
            raise ValueError(f"ballot {b['id'].hex()}: id recorded twice")
        contest = self.ctx.contests[cid]
        cands = contest["candidates"]
        marks = b["marks"]
        if len(marks) != len(cands):
            raise ValueError(f"ballot {b['id'].hex()}: {len(marks)} marks, contest has {len(cands)} candidates")
        if any(m > 2 for m in marks):
            raise ValueError(f"ballot {b['id'].hex()}: a mark is not 0, 1 or 2")
        names = b["write_in"]
        if len(names) > MAX_WRITE_INS:
            raise ValueError(f"ballot {b['id'].hex()}: more than {MAX_WRITE_INS} write-ins")
        formal = {c["id"] for c in cands} | {c["name"] for c in cands}
        for name in names:
            why = write_in_problem(name, formal)
            if why:
                raise ValueError(f"ballot {b['id'].hex()}: write-in {esc(name)!r}: {why}")
        if len(set(names)) != len(names):
            raise ValueError(f"ballot {b['id'].hex()}: a write-in name twice")
        self.ballot_contest[b["id"]] = cid
        self.fold(cid).ballots[b["id"]] = (bytes(marks), list(names))

    def apply_cancel(self, c):
        bid = c["ballot_id"]
        if len(bid) != 16:
            raise ValueError("cancel: ballot_id is not 16 bytes")
        if bid not in self.ballot_contest:
            raise ValueError(f"cancel: ballot {bid.hex()} was not recorded before")
        if bid in self.cancelled:
            raise ValueError(f"cancel: ballot {bid.hex()} is already cancelled")
        reason = c["reason"]
        if not reason.strip():
            raise ValueError(f"cancel of {bid.hex()}: blank reason")
        if len(reason) > MAX_REASON_CHARS:
            raise ValueError(f"cancel of {bid.hex()}: reason longer than {MAX_REASON_CHARS} characters")
        cid = self.ballot_contest[bid]
        self.check_open(cid, "cancel")
        self.cancelled.add(bid)
        self.fold(cid).cancelled.add(bid)

    def apply_close(self, c):
        cid = c["contest"]
        self.check_open(cid, "close")
        sheet = c["sheet"]
        if sheet is None:
            raise ValueError(f"close of {esc(cid)}: no tally sheet")
        cands = {x["id"] for x in self.ctx.contests[cid]["candidates"]}
        for entry in sheet["for_votes"] + sheet["against"]:
            if entry["candidate"] not in cands:
                raise ValueError(f"close of {esc(cid)}: {esc(entry['candidate'])} is not a "
                                 "formal candidate of the contest")
        self.closed.add(cid)
        self.fold(cid).sheet = sheet


def write_in_problem(name, formal):
    """Why a write-in name breaks section 6, or None."""
    if not name:
        return "empty"
    if name != name.strip():
        return "not trimmed"
    if len(name) > MAX_WRITE_IN_CHARS:
        return f"longer than {MAX_WRITE_IN_CHARS} characters"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"longer than {MAX_NAME_BYTES} bytes"
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
        return "holds a control or invisible formatting character"
    if name in formal:
        return "is a formal candidate's name or id"
    return None


# --------------------------------------------------------------------------
# V7 Batches
# --------------------------------------------------------------------------

def batch_leaves(ctx, kind):
    """{(station, sequence): [(leaf index, hash)]} of the log's leaves of one kind."""
    out = {}
    for i, (k, station, seq, h) in enumerate(ctx.leaves):
        if k == kind:
            out.setdefault((station, seq), []).append((i, h))
    return out


def step_v7_batches(ctx):
    """V7: every station's accepted batches: signatures, chain, content, log leaves."""
    leaves = batch_leaves(ctx, LEAF_BATCH)
    matched = set()
    total = 0
    for sid in sorted(ctx.certs):
        rel = f"stations/{sid}/batches.export"
        log = StationLog(ctx, sid)
        if not os.path.exists(os.path.join(ctx.root, rel)):
            ctx.accepted[sid] = {}
            continue
        ctx.file = rel
        entries = read_export(ctx, rel, "V7.1", sid)
        accepted = {}
        min_k, prev_seq, prev_hash = 1, 0, GENESIS
        for n, (batch_bytes, signature) in enumerate(entries):
            item = f"batch {n + 1}"
            # V7.2 signature, with a certificate number that never goes down.
            k = signing_cert(ctx, sid, batch_bytes, signature, min_k)
            if k is None:
                if signing_cert(ctx, sid, batch_bytes, signature) is not None:
                    raise Fail("V7.2", rel, item, f"signed by a certificate older than cert-{min_k} "
                               "that signed an earlier batch")
                raise Fail("V7.2", rel, item, f"signature does not verify under any certificate of {esc(sid)}")
            min_k = k
            # V7.3 decoding.
            batch = decode_batch(ctx, rel, item, "V7.3", batch_bytes, sid)
            seq = batch["sequence"]
            item = f"batch {seq}"
            # V7.4 sequence, V7.5 chain.
            if seq != prev_seq + 1:
                raise Fail("V7.4", rel, item, f"sequence {seq} after {prev_seq}, expected {prev_seq + 1}")
            if batch["prev_hash"] != prev_hash:
                raise Fail("V7.5", rel, item, f"prev_hash {batch['prev_hash'].hex()} is not the chain "
                           f"hash {prev_hash.hex()} of batch {prev_seq}")
            chain_hash = sha256(batch_bytes)
            # V7.6 event rules, V7.7 zero report.
            check_zero_report(ctx, rel, item, sid, seq, batch["events"])
            for e_n, event in enumerate(batch["events"]):
                try:
                    log.apply(event)
                except ValueError as e:
                    raise Fail("V7.6", rel, f"{item} event {e_n + 1}", str(e))
            # V7.8 the log's batch leaf.
            found = leaves.get((sid, seq), [])
            if not any(h == chain_hash for _, h in found):
                raise Fail("V7.8", rel, item, f"the log holds no batch leaf ({esc(sid)}, {seq}, "
                           f"{chain_hash.hex()})")
            matched.update(i for i, h in found if h == chain_hash)
            accepted[seq] = batch_bytes
            prev_seq, prev_hash = seq, chain_hash
            total += 1
        if 1 in accepted:
            first = decode("Batch", accepted[1])["events"]
            if not first or first[0]["zero_report"] is None:
                ctx.note(f"V7.7 {rel}: batch 1 does not start with a zero report")
        ctx.accepted[sid] = accepted
    # V7.9 every batch leaf is one of these batches.
    for (station, seq), found in sorted(leaves.items()):
        for i, h in found:
            if i not in matched:
                raise Fail("V7.9", "tile/entries", f"leaf {i}",
                           f"batch leaf ({esc(station)}, {seq}, {h.hex()}) is no batch of the evidence")
    ctx.file = ""
    print(f"V7 batches: {total} batch(es) of {len(ctx.accepted)} station(s): signatures, chains, "
          f"events and log leaves ok")


def check_zero_report(ctx, rel, item, station, seq, events):
    """V7.7: a zero report is only the first event of batch 1 and lists the station's
    contests, in the definition's order."""
    for n, event in enumerate(events):
        zr = event["zero_report"]
        if zr is None:
            continue
        if seq != 1 or n != 0:
            raise Fail("V7.7", rel, f"{item} event {n + 1}", "a zero report that is not the first "
                       "event of batch 1")
        expected = list(ctx.stations[station]["contests"])
        if zr["contests"] != expected:
            raise Fail("V7.7", rel, f"{item} event 1", f"zero report lists {[esc(c) for c in zr['contests']]}, "
                       f"the station's contests are {expected}")


# --------------------------------------------------------------------------
# V8 Forks
# --------------------------------------------------------------------------

def step_v8_forks(ctx):
    """V8: every fork file is signed evidence matching a fork leaf, and vice versa."""
    leaves = batch_leaves(ctx, LEAF_FORK)
    matched = set()
    names = list_dir(ctx, "forks", "V8")
    for name in names:
        rel = f"forks/{name}"
        m = re.fullmatch(r"(.+)-([1-9][0-9]*)-([1-9][0-9]*)\.export", name)
        if not m:
            raise Fail("V8.1", rel, "", "not named <station>-<sequence>-<n>.export")
        sid, seq = m.group(1), int(m.group(2))
        if sid not in ctx.stations:
            raise Fail("V8.1", rel, "", f"station {esc(sid)} is not in the definition")
        ctx.file = rel
        entries = read_export(ctx, rel, "V8.1", sid)
        if len(entries) != 2:
            raise Fail("V8.1", rel, "", f"{len(entries)} batches, expected 2")
        for n, (batch_bytes, signature) in enumerate(entries):
            item = f"batch {n + 1}"
            if signing_cert(ctx, sid, batch_bytes, signature) is None:
                raise Fail("V8.1", rel, item, f"signature does not verify under any certificate of {esc(sid)}")
            batch = decode_batch(ctx, rel, item, "V8.1", batch_bytes, sid)
            if batch["sequence"] != seq:
                raise Fail("V8.1", rel, item, f"sequence {batch['sequence']}, the file name says {seq}")
        if entries[0][0] == entries[1][0]:
            raise Fail("V8.1", rel, "", "the two batches have the same bytes")
        if ctx.accepted.get(sid, {}).get(seq) != entries[0][0]:
            raise Fail("V8.2", rel, "batch 1", f"is not the accepted batch {seq} of {esc(sid)}")
        other = sha256(entries[1][0])
        found = [i for i, h in leaves.get((sid, seq), []) if h == other]
        if not found:
            raise Fail("V8.3", rel, "", f"the log holds no fork leaf ({esc(sid)}, {seq}, {other.hex()})")
        matched.update(found)
    for (station, seq), found in sorted(leaves.items()):
        for i, h in found:
            if i not in matched:
                raise Fail("V8.4", "forks", f"leaf {i}",
                           f"fork leaf ({esc(station)}, {seq}, {h.hex()}) has no fork file")
    ctx.file = ""
    print(f"V8 forks: {len(names)} fork file(s), each matching a fork leaf")


# --------------------------------------------------------------------------
# V9 Standing changes
# --------------------------------------------------------------------------

STANDING_RE = re.compile(
    r"pollsync/standing/v1\n"
    r"station (?P<station>[A-Za-z0-9._-]{1,64})\n"
    r"change (?P<change>REVOKED|REPLACED|RELEASED)\n"
    r"head_sequence (?P<head>0|[1-9][0-9]{0,19})\n"
    r"new_cert_sha256 (?P<cert>[0-9a-f]{64})?\n"
    r"unix_ms (?P<ms>0|[1-9][0-9]{0,19})\n"
    r"reason (?P<reason>\"[^\n]*\")\n")


def parse_standing(text):
    """The fields of a standing record (section 13.2), or ValueError."""
    m = STANDING_RE.fullmatch(text)
    if not m:
        raise ValueError("not a standing record of PROTOCOL.md section 13.2")
    try:
        reason = json.loads(m.group("reason"))
    except json.JSONDecodeError:
        reason = None
    if not isinstance(reason, str):
        raise ValueError("reason is not a JSON string")
    if (m.group("change") == "REPLACED") != (m.group("cert") is not None):
        raise ValueError("new_cert_sha256 must be given for REPLACED and only then")
    return {"station": m.group("station"), "change": m.group("change"),
            "head_sequence": int(m.group("head")), "new_cert_sha256": m.group("cert"),
            "reason": reason}


def step_v9_standing(ctx):
    """V9: every standing text is a standing leaf of the log, and vice versa."""
    names = list_dir(ctx, "standing", "V9")
    for name in names:
        rel = f"standing/{name}"
        m = re.fullmatch(r"(0|[1-9][0-9]*)\.txt", name)
        if not m:
            raise Fail("V9.1", rel, "", "not named <leaf>.txt")
        index = int(m.group(1))
        data = read_file(ctx, rel, "V9.1", 64 * 1024)
        if index >= len(ctx.leaves):
            raise Fail("V9.1", rel, "", f"leaf {index} is beyond the log's {len(ctx.leaves)} leaves")
        kind, station, seq, h = ctx.leaves[index]
        if kind != LEAF_STANDING:
            raise Fail("V9.1", rel, "", f"leaf {index} is a {LEAF_KIND_NAMES[kind]} leaf")
        if h != sha256(data):
            raise Fail("V9.1", rel, "", f"SHA-256 of the text is not the hash of leaf {index}")
        try:
            rec = parse_standing(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise Fail("V9.1", rel, "", str(e))
        if rec["station"] != station:
            raise Fail("V9.1", rel, "station", f"{esc(rec['station'])}, leaf {index} names {esc(station)}")
        if rec["head_sequence"] != seq:
            raise Fail("V9.1", rel, "head_sequence", f"{rec['head_sequence']}, leaf {index} has sequence {seq}")
        if rec["change"] == "REPLACED":
            digests = [d.hex() for _, _, d in ctx.certs.get(station, [])]
            if rec["new_cert_sha256"] not in digests:
                raise Fail("V9.1", rel, "new_cert_sha256", f"is no certificate of {esc(station)} in the evidence")
        ctx.standing[index] = rec
    for i, (kind, station, seq, _) in enumerate(ctx.leaves):
        if kind == LEAF_STANDING and i not in ctx.standing:
            raise Fail("V9.2", f"standing/{i}.txt", "", f"missing: leaf {i} is a standing change of {esc(station)}")
    print(f"V9 standing changes: {len(ctx.standing)} record(s), each matching its leaf")


# --------------------------------------------------------------------------
# V10 Recount (SPEC section 6, rule set prc-direct)
# --------------------------------------------------------------------------

def cut_off_stations(ctx):
    """Stations revoked, or quarantined (a fork leaf with no later RELEASED)."""
    cut = {}
    for i, (kind, station, _, _) in enumerate(ctx.leaves):
        if kind == LEAF_FORK:
            cut.setdefault(station, set()).add("quarantined")
        elif kind == LEAF_STANDING:
            change = ctx.standing[i]["change"]
            if change == "REVOKED":
                cut.setdefault(station, set()).add("revoked")
            elif change == "RELEASED":
                cut.get(station, set()).discard("quarantined")
    return {s for s, why in cut.items() if why}


def sheet_figures(sheet):
    """The tally sheet as the same shape as Fold.figures (a missing candidate counts 0)."""
    return {"issued": sheet["issued"], "returned": sheet["returned"], "valid": sheet["valid"],
            "void": sheet["void"],
            "for": {x["candidate"]: x["votes"] for x in sheet["for_votes"]}}


def discrepancies(ctx, contest, sid, figures):
    """Differences between a station's tally sheet and its ballots (section 10.3)."""
    sheet = sheet_figures(ctx.folds[(sid, contest["id"])].sheet)
    diffs = [key for key in ("issued", "returned", "valid", "void") if sheet[key] != figures[key]]
    for c in contest["candidates"]:
        if sheet["for"].get(c["id"], 0) != figures["for"][c["id"]]:
            diffs.append(f"for {c['id']}")
    return diffs


def decide(contest, issued, votes):
    """SPEC section 6.5: (status among tie/runoff/elected, elected set, runoff).

    `votes` lists (key, FOR votes) in a stable order: formal candidates in the
    definition's order, then write-in names sorted.  Keys of the runoff list are
    candidate ids and write-in names."""
    seats = contest["seats"]
    order = {key: n for n, (key, _) in enumerate(votes)}
    ranked = sorted(votes, key=lambda kv: (-kv[1], order[kv[0]]))
    passed = [(key, v) for key, v in ranked if v * 2 > issued]
    if len(passed) > seats and passed[seats][1] == passed[seats - 1][1]:
        last = passed[seats - 1][1]
        above = {key for key, v in passed if v > last}
        tied = [key for key, v in passed if v == last]
        return "tie", above, {"seats": seats - len(above), "candidates": [runoff_name(k) for k in tied]}
    elected = {key for key, _ in passed[:seats]}
    if len(elected) == seats:
        return "elected", elected, None
    # A further ballot: the next best, twice the open seats (ties at the end of the
    # list are all taken in: an assumption, SPEC section 6.5 does not say).
    open_seats = seats - len(elected)
    rest = [(key, v) for key, v in ranked if key not in elected]
    size = min(2 * open_seats, len(rest))
    if size:
        cutoff = rest[size - 1][1]
        rest = [(key, v) for n, (key, v) in enumerate(rest) if n < size or v == cutoff]
    return "runoff", elected, {"seats": open_seats, "candidates": [runoff_name(k) for k, _ in rest]}


def runoff_name(key):
    return key[1] if isinstance(key, tuple) else key


def recount_contest(ctx, cid, cut):
    """The recount of one contest: figures, status and who is elected."""
    contest = ctx.contests[cid]
    cands = [c["id"] for c in contest["candidates"]]
    expected = [sid for sid in ctx.stations if cid in ctx.stations[sid]["contests"]]
    total = {"issued": 0, "returned": 0, "valid": 0, "void": 0,
             "for": dict.fromkeys(cands, 0), "against": dict.fromkeys(cands, 0), "write_in": {}}
    reporting, discrepant, closed = [], [], []
    for sid in expected:
        fold = ctx.folds.get((sid, cid))
        if fold is None:       # a station with no certificate: nothing of it
            continue
        f = fold.figures(contest)
        for key in ("issued", "returned", "valid", "void"):
            total[key] += f[key]
        for c in cands:
            total["for"][c] += f["for"][c]
            total["against"][c] += f["against"][c]
        for name, v in f["write_in"].items():
            total["write_in"][name] = total["write_in"].get(name, 0) + v
        if fold.sheet is not None:
            closed.append(sid)
        if fold.sheet is not None and sid not in cut:
            reporting.append(sid)
            if discrepancies(ctx, contest, sid, f):
                discrepant.append(sid)
    votes = [(c, total["for"][c]) for c in cands] + \
        [(("write_in", name), v) for name, v in sorted(total["write_in"].items())]
    elected, runoff = set(), None
    if len(reporting) < len(expected):
        status = "pending"
    elif discrepant:
        status = "discrepancy"
    elif total["returned"] > total["issued"]:
        status = "void"
    elif total["issued"] * 2 <= contest["registered"]:
        status = "invalid"
    else:
        status, elected, runoff = decide(contest, total["issued"], votes)
    return {"total": total, "closed": len(closed), "expected": len(expected),
            "status": status, "elected": elected, "runoff": runoff}


def step_v10_recount(ctx):
    """V10: recount every contest and compare with results.json."""
    rel = "results.json"
    ctx.file = rel
    data = read_file(ctx, rel, "V10", MAX_JSON_FILE)
    try:
        results = json.loads(data.decode("utf-8"))
        contests = results["contests"]
        if not isinstance(contests, list):
            raise TypeError("contests is not a list")
        by_id = {}
        for c in contests:
            if c["id"] in by_id:
                raise Fail("V10.2", rel, f"contest {esc(c['id'])}", "listed twice")
            by_id[c["id"]] = c
    except Fail:
        raise
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise Fail("V10", rel, "", f"not the results shape of SPEC section 7: {esc(e)}")
    if results.get("election") != ctx.election_id:
        raise Fail("V10.1", rel, "election", f"{esc(results.get('election'))} is not {ctx.election_id}")
    cut = cut_off_stations(ctx)
    ctx.recount = {}
    for cid in ctx.contest_order:
        if cid not in by_id:
            raise Fail("V10.2", rel, f"contest {esc(cid)}", "missing")
        mine = recount_contest(ctx, cid, cut)
        ctx.recount[cid] = mine
        try:
            compare_contest(ctx, rel, ctx.contests[cid], mine, by_id[cid])
        except (KeyError, TypeError) as e:
            raise Fail("V10.1", rel, f"contest {esc(cid)}", f"not the results shape of SPEC section 7: "
                       f"missing or bad {esc(e)}")
    for cid in by_id:
        if cid not in ctx.contests:
            raise Fail("V10.2", rel, f"contest {esc(cid)}", "not a contest of the definition")
    statuses = {}
    for r in ctx.recount.values():
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    ctx.file = ""
    summary = ", ".join(f"{v} {k}" for k, v in sorted(statuses.items()))
    print(f"V10 recount: {len(ctx.recount)} contest(s) ({summary}) agree with results.json")


def same_number(a, b):
    return isinstance(a, int) and not isinstance(a, bool) and a == b


def compare_contest(ctx, rel, contest, mine, theirs):
    """V10.1: compare one contest's figures with results.json."""
    cid = contest["id"]
    item = f"contest {esc(cid)}"

    def check(what, got, want):
        if isinstance(want, bool):
            ok = got is want
        elif isinstance(want, int):
            ok = same_number(got, want)
        else:
            ok = got == want
        if not ok:
            raise Fail("V10.1", rel, f"{item} {what}", f"says {esc(json.dumps(got, ensure_ascii=False))}, "
                       f"the recount gives {esc(json.dumps(want, ensure_ascii=False))}")

    # From the definition (not listed in V10.1, but a difference is plainly wrong).
    check("seats", theirs["seats"], contest["seats"])
    check("registered", theirs["registered"], contest["registered"])
    check("stations.expected", theirs["stations"]["expected"], mine["expected"])
    # V10.1: closed counts the stations whose close is among their accepted batches.
    check("stations.closed", theirs["stations"]["closed"], mine["closed"])
    for key in ("issued", "returned", "valid", "void"):
        check(f"ballots.{key}", theirs["ballots"][key], mine["total"][key])
    listed = {c["id"]: c for c in theirs["candidates"]}
    if len(listed) != len(theirs["candidates"]) or set(listed) != {c["id"] for c in contest["candidates"]}:
        raise Fail("V10.1", rel, f"{item} candidates", "are not the contest's formal candidates")
    for c in contest["candidates"]:
        got = listed[c["id"]]
        check(f"candidate {c['id']} for", got["for"], mine["total"]["for"][c["id"]])
        check(f"candidate {c['id']} against", got["against"], mine["total"]["against"][c["id"]])
        check(f"candidate {c['id']} elected", got["elected"], c["id"] in mine["elected"])
    written = {}
    for w in theirs["write_ins"]:
        if w["name"] in written:
            raise Fail("V10.1", rel, f"{item} write-in {esc(w['name'])}", "listed twice")
        written[w["name"]] = w
    recounted = mine["total"]["write_in"]
    for name in sorted(set(written) | set(recounted)):
        got = written.get(name, {"for": 0, "elected": False})
        check(f"write-in {esc(name)!r} for", got["for"], recounted.get(name, 0))
        check(f"write-in {esc(name)!r} elected", got["elected"], ("write_in", name) in mine["elected"])
    check("status", theirs["status"], mine["status"])
    # Not among V10.1's figures: a difference is reported, not failed.
    if theirs.get("runoff") != mine["runoff"]:
        ctx.note(f"V10 {rel} {item}: runoff is {esc(json.dumps(theirs.get('runoff'), ensure_ascii=False))}, "
                 f"the recount gives {esc(json.dumps(mine['runoff'], ensure_ascii=False))}")


# --------------------------------------------------------------------------
# V11 NIST
# --------------------------------------------------------------------------

def step_v11_nist(ctx):
    """V11: results-nist.json's total per candidate is the recount's FOR votes."""
    rel = "results-nist.json"
    ctx.file = rel
    data = read_file(ctx, rel, "V11", MAX_JSON_FILE)
    try:
        report = json.loads(data.decode("utf-8"))
        elections = report["Election"]
        if not isinstance(elections, list) or len(elections) != 1:
            raise TypeError("Election is not a list of one election")
        election = elections[0]
        names = {}
        for cand in election.get("Candidate", []):
            texts = cand.get("BallotName", {}).get("Text", [])
            names[cand["@id"]] = texts[0]["Content"] if texts else None
        contests = {c["@id"]: c for c in election["Contest"]}
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        raise Fail("V11", rel, "", f"not an NIST SP 1500-100 election report: {esc(e)}")
    checked = 0
    for cid in ctx.contest_order:
        item = f"contest {esc(cid)}"
        contest = contests.get(f"contest-{cid}")
        if contest is None:
            raise Fail("V11", rel, item, f"no CandidateContest of @id contest-{esc(cid)}")
        try:
            checked += compare_nist_contest(ctx, rel, item, cid, contest, names)
        except (KeyError, TypeError, IndexError, AttributeError) as e:
            raise Fail("V11", rel, item, f"not the NIST shape: missing or bad {esc(e)}")
    ctx.file = ""
    print(f"V11 NIST: {checked} candidate total(s) agree with the recount")


def compare_nist_contest(ctx, rel, item, cid, contest, names):
    """Compare one NIST contest's per-candidate totals with the recount."""
    total = ctx.recount[cid]["total"]
    district = contest.get("ElectionDistrictId")
    want = {("formal", c["id"]): total["for"][c["id"]] for c in ctx.contests[cid]["candidates"]}
    for name, v in total["write_in"].items():
        want[("write_in", name)] = v
    seen = {}
    for sel in contest.get("ContestSelection", []):
        ids = sel["CandidateIds"]
        if len(ids) != 1:
            raise Fail("V11", rel, f"{item} selection {esc(sel.get('@id'))}", "not one candidate")
        if sel.get("IsWriteIn"):
            key = ("write_in", names.get(ids[0]))
        elif ids[0].startswith("cand-"):
            key = ("formal", ids[0][len("cand-"):])
        else:
            key = ("unknown", ids[0])
        if key not in want and not (key[0] == "write_in" and key[1] is not None):
            raise Fail("V11", rel, f"{item} selection {esc(sel.get('@id'))}",
                       f"candidate {esc(ids[0])} is not of the contest")
        counts = [vc for vc in sel.get("VoteCounts", []) if vc.get("Type") == "total"]
        at_district = sum(vc["Count"] for vc in counts if vc.get("GpUnitId") == district)
        elsewhere = sum(vc["Count"] for vc in counts if vc.get("GpUnitId") != district)
        seen[key] = seen.get(key, 0) + 1
        expected = want.get(key, 0)
        label = f"{item} candidate {esc(key[1])}"
        if any(vc.get("GpUnitId") == district for vc in counts) and at_district != expected:
            raise Fail("V11", rel, label, f"total at {esc(district)} is {at_district}, "
                       f"the recount's FOR votes are {expected}")
        if elsewhere != expected:
            raise Fail("V11", rel, label, f"totals of the stations sum to {elsewhere}, "
                       f"the recount's FOR votes are {expected}")
    for key, v in want.items():
        if seen.get(key, 0) == 0 and (key[0] == "formal" or v > 0):
            raise Fail("V11", rel, f"{item} candidate {esc(key[1])}", "has no CandidateSelection")
        if seen.get(key, 0) > 1:
            raise Fail("V11", rel, f"{item} candidate {esc(key[1])}", "has more than one CandidateSelection")
    return len(seen)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------



def step_v12_signed_results(ctx):
    """V12: results.sig, signed by the log key, names the SHA-256 of both results files."""
    rel = "results.sig"
    body = read_signed_note(ctx, rel, "V12")
    try:
        lines = body.decode("utf-8").split("\n")[:-1]
    except UnicodeDecodeError:
        raise Fail("V12", rel, "", "not UTF-8")
    if not lines or lines[0] != "pollsync results v1":
        raise Fail("V12", rel, "", "its first line is not 'pollsync results v1'")
    named = {}
    for line in lines[1:]:
        name, _, digest = line.partition(" ")
        named[name] = digest
    for name in ("results.json", "results-nist.json"):
        data = read_file(ctx, name, "V12", MAX_SMALL_FILE)
        if named.get(name) != sha256(data).hex():
            raise Fail("V12", name, "", "its SHA-256 is not the one results.sig signs")
    print("V12 signed results: results.json and results-nist.json as the log key signed them")


STEPS = [
    ("V1", step_v1_definition), ("V2", step_v2_ca), ("V3", step_v3_log_key),
    ("V4", step_v4_checkpoint), ("V5", step_v5_log), ("V6", step_v6_certificates),
    ("V7", step_v7_batches), ("V8", step_v8_forks), ("V9", step_v9_standing),
    ("V10", step_v10_recount), ("V11", step_v11_nist),
    ("V12", step_v12_signed_results),
]


def verify(root, expected_mode=None):
    """Run V1-V12 on the evidence folder; return the exit status (0 ok, 1 failure).
    With expected_mode, evidence of the other mode fails at V1."""
    ctx = Context(root)
    for name, step in STEPS:
        ctx.step, ctx.file = name, ""
        try:
            step(ctx)
            if name == "V1" and expected_mode is not None and ctx.mode != expected_mode:
                raise Fail("V1", "election.toml", "[election] mode",
                           f"the evidence is of a {ctx.mode} election, not of a {expected_mode} one: "
                           "test and official elections never mix")
        except Fail as f:
            print(f.line())
            return 1
        except (MemoryError, RecursionError) as e:
            print(Fail(name, ctx.file, "", f"input too large to check: {type(e).__name__}").line())
            return 1
        except Exception as e:  # a bug here must still not pass as success
            print(Fail(name, ctx.file, "", f"cannot check (verifier error {type(e).__name__}: "
                       f"{esc(e)})").line())
            return 1
    print(f"OK: every check of V1-V12 holds for {esc(root)}"
          + (f" ({len(ctx.notes)} note(s))" if ctx.notes else ""))
    return 0


def main(argv):
    args = argv[1:]
    expected_mode = None
    if len(args) == 3 and args[0] == "--mode" and args[1] in ("official", "test"):
        expected_mode, args = args[1], args[2:]
    if len(args) != 1 or args[0] in ("-h", "--help") or args[0].startswith("--"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    if not os.path.isdir(args[0]):
        print(f"FAIL V1 {esc(args[0])}: not a folder")
        return 1
    return verify(args[0], expected_mode)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
