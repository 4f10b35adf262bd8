//! G1 and all-or-nothing across processes: the real `station` binary killed with
//! SIGKILL at arbitrary moments, and several processes writing at once.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Instant;

use pollsync_proto::pb;
use prost::Message;
use support::{contest, enrolled};

/// Ballots in the import file of the kill test.
const IMPORT_BALLOTS: u64 = 20_000;

/// A JSON-lines file of `n` ballots for D-001 and T-001, with known totals.
fn import_file(n: u64) -> (String, u64, u64) {
    let mut text = String::new();
    let (mut d1, mut t2) = (0, 0);
    for i in 0..n {
        if i % 3 == 0 {
            text.push_str("{\"contest\": \"T-001\", \"for\": [\"T-001-2\"]}\n");
            t2 += 1;
        } else {
            text.push_str("{\"contest\": \"D-001\", \"for\": [\"D-001-1\"], \"against\": [\"D-001-2\"], \"write_in\": []}\n");
            d1 += 1;
        }
    }
    (text, d1, t2)
}

/// Kill `station import` at many moments across its run; afterwards the store holds
/// the whole file or none of it, and stays usable.
#[test]
fn an_import_killed_at_any_moment_leaves_all_of_the_file_or_none() {
    let s = enrolled("S-0001");
    let (text, d1, t2) = import_file(IMPORT_BALLOTS);
    let file = s.path("ballots.jsonl");
    support::write(&file, &text);
    let file = file.display().to_string();

    // How long an import takes here, to spread the kills over it.
    let probe = enrolled("S-0001");
    let started = Instant::now();
    probe.ok(&["import", &file]);
    let full_run = started.elapsed();

    let runs = 24u32;
    let mut outcomes = HashMap::new();
    let mut imports_done = 0u64;
    for run in 0..runs {
        // Kill points spread from "at once" to past the end of a whole run.
        let delay = full_run.mul_f64(f64::from(run) / f64::from(runs - 4));
        let mut child = s
            .command(&["import", &file])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; it may have finished already
        let status = child.wait().expect("wait");

        let t = s.tally();
        let returned = contest(&t, "D-001")["returned"].as_u64().expect("returned")
            + contest(&t, "T-001")["returned"].as_u64().expect("returned");
        assert_eq!(
            returned % IMPORT_BALLOTS,
            0,
            "run {run}: {returned} ballots is not a whole number of files (exit {status:?})"
        );
        let now = returned / IMPORT_BALLOTS;
        assert!(
            now == imports_done || now == imports_done + 1,
            "run {run}: {now} files after {imports_done}"
        );
        if status.success() {
            assert_eq!(
                now,
                imports_done + 1,
                "run {run}: import said yes but its ballots are missing"
            );
        }
        *outcomes.entry(now > imports_done).or_insert(0) += 1;
        imports_done = now;
        assert_eq!(
            contest(&t, "D-001")["for"]["D-001-1"].as_u64(),
            Some(d1 * imports_done)
        );
        assert_eq!(
            contest(&t, "D-001")["against"]["D-001-2"].as_u64(),
            Some(d1 * imports_done)
        );
        assert_eq!(
            contest(&t, "T-001")["for"]["T-001-2"].as_u64(),
            Some(t2 * imports_done)
        );
    }
    eprintln!("kills that left the file whole / absent: {:?}", outcomes);
    // The store is still fine for more work.
    s.ok(&["record", "--contest", "D-001"]);
    s.ok(&["seal"]);
}

/// `station record` prints a ballot id only after the ballot is durable: killing the
/// process the moment the id appears loses nothing.
#[test]
fn a_ballot_reported_as_recorded_survives_sigkill() {
    let s = enrolled("S-0001");
    let mut reported = Vec::new();
    for i in 0..20 {
        let mut child = s
            .command(&[
                "record",
                "--contest",
                "T-001",
                "--for",
                if i % 2 == 0 { "T-001-1" } else { "T-001-2" },
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read id");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(line.trim().len(), 32, "record printed {line:?}");
        reported.push(line.trim().to_string());
    }
    let t = s.tally();
    assert_eq!(contest(&t, "T-001")["returned"], 20);
    assert_eq!(contest(&t, "T-001")["for"]["T-001-1"], 10);
    // Each reported id is in the log: cancelling it works (and only once).
    for id in &reported {
        s.ok(&["cancel", id, "--reason", "check"]);
    }
    assert_eq!(contest(&s.tally(), "T-001")["returned"], 0);
}

/// Several processes record at once while another keeps sealing: every ballot ends in
/// exactly one sealed batch, and the chain is whole.
#[test]
fn concurrent_records_and_a_sealer_put_every_ballot_in_exactly_one_batch() {
    let s = enrolled("S-0003");
    let writers = 4;
    let per_writer = 25;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sealer = {
        let cmd_data = s.data.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let out = std::process::Command::new(support::station_bin())
                    .arg("--data")
                    .arg(&cmd_data)
                    .arg("seal")
                    .output()
                    .expect("seal runs");
                assert!(
                    out.status.success(),
                    "seal failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                rounds += 1;
            }
            rounds
        })
    };
    let recorded: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let s = &s;
                scope.spawn(move || {
                    (0..per_writer)
                        .map(|i| {
                            let contest = if (w + i) % 2 == 0 { "D-001" } else { "T-002" };
                            s.ok(&["record", "--contest", contest]).trim().to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("writer"))
            .collect()
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let rounds = sealer.join().expect("sealer");
    s.ok(&["seal"]);
    assert!(rounds > 0);

    let out = s.path("all.export");
    s.ok(&["export", "--out", &out.display().to_string()]);
    let export = pollsync_proto::read_export(&out).expect("export");
    pollsync_proto::check_chain("test-2021", "S-0003", &export.batches)
        .expect("one unbroken chain");
    let mut seen: HashMap<String, u32> = HashMap::new();
    for signed in &export.batches {
        let batch = pb::Batch::decode(signed.batch.as_slice()).expect("batch");
        for e in batch.events {
            if let Some(pb::event::Kind::Ballot(b)) = e.kind {
                *seen.entry(hex(&b.id)).or_default() += 1;
            }
        }
    }
    assert_eq!(recorded.len(), writers * per_writer);
    for id in &recorded {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "ballot {id} must be in exactly one batch"
        );
    }
    assert_eq!(
        seen.len(),
        recorded.len(),
        "no ballot appears that was not recorded"
    );
    assert_eq!(s.status()["events"]["pending"], 0);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
