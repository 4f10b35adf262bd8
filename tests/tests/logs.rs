//! `center serve --log-format json` across processes: a real center, a test-only
//! rogue client (`pollsync_tests::rogue`) that connects as an enrolled station,
//! pushes a good batch, a batch signed with another station's key and a second
//! batch 1 (a fork), then says Hello again and is refused. Once the center is
//! stopped, every line it wrote to stderr must be one JSON object with a level and
//! a message, and each decision must be there with its station and batch.

use std::path::Path;
use std::time::Duration;

use pollsync_election::StationEvent;
use pollsync_proto::EnrollmentBundle;
use pollsync_proto::pb::{AckKind, RejectReason};
use pollsync_tests::rogue::{Forger, Rogue};
use pollsync_tests::{Center, Spawned, Station, small_election, wait_for};
use serde_json::Value;

/// Longest the server may take to start or to stop.
const STEP: Duration = Duration::from_secs(30);

fn issued(contest: &str, count: u64) -> StationEvent {
    StationEvent::Issued {
        contest: contest.to_string(),
        count,
    }
}

/// `center serve --log-format json` on free loopback ports, with `RUST_LOG`
/// unset (so the default filter holds); returns it and its gRPC address.
fn serve_json(center: &Center, logs: &Path) -> (Spawned, String) {
    let mut cmd = center.command();
    cmd.args([
        "serve",
        "--grpc",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ])
    .env_remove("RUST_LOG")
    .env_remove("POLLSYNC_INGEST_TRACE");
    let mut server = Spawned::start(cmd, "center serve json", logs);
    let address = wait_for("center serve to listen", STEP, || {
        assert!(server.running(), "center serve ended: {}", server.stderr());
        server
            .stdout()
            .lines()
            .find_map(|l| l.strip_prefix("gRPC listening on "))
            .map(|a| a.trim().to_string())
    });
    (server, address)
}

/// The events whose message is `message`.
fn events<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|v| v["fields"]["message"] == message)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_writes_one_json_object_per_line_with_station_and_batch_of_each_decision() {
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = small_election(root.path(), 7);
    let center = Center::init(root.path(), &file);
    let (a, b) = (&def.stations[0], &def.stations[1]);
    let contest = a.contests[0].clone();
    let bundle_a = EnrollmentBundle::read(&center.bundle(&a.id)).expect("bundle a");
    let bundle_b = EnrollmentBundle::read(&center.bundle(&b.id)).expect("bundle b");
    let (mut server, address) = serve_json(&center, &root.path().join("logs"));

    let rogue = Rogue::as_station(&address, &bundle_a)
        .await
        .expect("connects as a");
    let mut forger = Forger::new(&bundle_a);
    rogue.hello(forger.hello()).await.expect("hello accepted");
    let good = forger.seal(&[issued(&contest, 3)]).expect("batch 1");
    // Batch 2 signed with B's key; then another batch 1, signed with A's own key.
    let forged = forger
        .clone()
        .signing_as(&bundle_b)
        .seal(&[issued(&contest, 1)])
        .expect("batch 2");
    let fork = Forger::new(&bundle_a)
        .seal(&[issued(&contest, 4)])
        .expect("another batch 1");
    let mut push = rogue.push().await.expect("push call");
    let acks = push
        .push_all(&[good, forged, fork])
        .await
        .expect("every batch answered");
    let seen: Vec<(AckKind, RejectReason, u64)> = acks
        .iter()
        .map(|a| (a.kind(), a.reason(), a.sequence))
        .collect();
    assert_eq!(
        seen,
        vec![
            (AckKind::Accepted, RejectReason::Unspecified, 1),
            (AckKind::Rejected, RejectReason::BadSignature, 2),
            (AckKind::Rejected, RejectReason::Fork, 1),
        ]
    );
    drop(push);
    // Quarantined now: a Hello is refused.
    let refused = rogue.hello(Forger::new(&bundle_a).hello()).await;
    assert!(refused.is_err(), "a quarantined station's hello is refused");
    drop(rogue);

    let status = server.terminate(STEP);
    assert!(status.success(), "center serve stops cleanly: {status:?}");
    assert!(
        server.stdout().contains("gRPC listening on "),
        "stdout unchanged"
    );

    let stderr = server.stderr();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(v.is_object(), "not an object: {line}");
            assert!(
                ["ERROR", "WARN", "INFO"].contains(&v["level"].as_str().unwrap_or("")),
                "a level at info or above by default: {line}"
            );
            assert!(v["fields"]["message"].is_string(), "a message: {line}");
            assert!(v["timestamp"].is_string(), "a timestamp: {line}");
            v
        })
        .collect();

    let started = events(&lines, "center serving");
    assert_eq!(started.len(), 1, "{stderr}");
    assert_eq!(started[0]["level"], "INFO");
    assert_eq!(
        started[0]["fields"]["grpc"].as_str(),
        Some(address.as_str()),
        "{stderr}"
    );
    assert_eq!(events(&lines, "center stopped").len(), 1, "{stderr}");

    let connected = events(&lines, "station connected");
    assert_eq!(connected.len(), 1, "{stderr}");
    assert_eq!(connected[0]["level"], "INFO");
    assert_eq!(connected[0]["fields"]["station"], a.id.as_str());
    assert_eq!(connected[0]["fields"]["key_no"], 1);
    assert!(
        connected[0]["fields"]["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{stderr}"
    );

    // The accepted batch is at debug: not shown at the default level.
    assert!(events(&lines, "batch accepted").is_empty(), "{stderr}");
    let refusals = events(&lines, "batch refused");
    assert_eq!(refusals.len(), 1, "{stderr}");
    let r = refusals[0];
    assert_eq!(r["level"], "WARN");
    assert_eq!(r["fields"]["station"], a.id.as_str());
    assert_eq!(r["fields"]["sequence"], 2);
    assert_eq!(r["fields"]["reason"], "BAD_SIGNATURE");
    assert!(
        r["fields"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("batch 2")),
        "{stderr}"
    );

    let forks: Vec<&Value> = lines
        .iter()
        .filter(|v| v["fields"]["reason"] == "FORK")
        .collect();
    assert_eq!(forks.len(), 1, "{stderr}");
    assert_eq!(forks[0]["level"], "ERROR");
    assert_eq!(forks[0]["fields"]["station"], a.id.as_str());
    assert_eq!(forks[0]["fields"]["sequence"], 1);

    let hello_refused: Vec<&Value> = events(&lines, "station refused")
        .into_iter()
        .filter(|v| v["fields"]["rpc"] == "hello")
        .collect();
    assert_eq!(hello_refused.len(), 1, "{stderr}");
    assert_eq!(hello_refused[0]["level"], "WARN");
    assert_eq!(hello_refused[0]["fields"]["station"], a.id.as_str());
    assert_eq!(hello_refused[0]["fields"]["reason"], "FAILED_PRECONDITION");
    assert!(
        hello_refused[0]["fields"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("quarantined")),
        "{stderr}"
    );
}

/// `station run --log-format json`: every stderr line is a JSON object carrying
/// the station, the note's kind and its numbers; the summary on stdout is as before.
#[test]
fn station_run_writes_json_lines_naming_the_station() {
    let root = tempfile::tempdir().expect("tempdir");
    let (file, def) = small_election(root.path(), 8);
    let center = Center::init(root.path(), &file);
    let logs = root.path().join("logs");
    let (mut server, address) = serve_json(&center, &logs);
    let a = &def.stations[0];
    let station = Station::init(root.path(), &center, &a.id, &address);
    station.ok(&["issue", "--contest", &a.contests[0], "--count", "2"]);
    let mut cmd = station.command();
    cmd.args(["run", "--seal-interval-ms", "100", "--log-format", "json"])
        .env_remove("RUST_LOG");
    let mut agent = Spawned::start(cmd, "station run json", &logs);
    wait_for("the station to be caught up", STEP, || {
        station.caught_up(0).then_some(())
    });
    assert!(agent.terminate(STEP).success(), "{}", agent.stderr());
    assert!(server.terminate(STEP).success());
    assert!(agent.stdout().contains("stopped: the center holds 1 of 1"));

    let stderr = agent.stderr();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .collect();
    let connected: Vec<&Value> = lines
        .iter()
        .filter(|v| v["fields"]["event"] == "connected")
        .collect();
    assert!(!connected.is_empty(), "{stderr}");
    assert_eq!(connected[0]["level"], "INFO");
    assert_eq!(connected[0]["fields"]["station"], a.id.as_str());
    assert_eq!(connected[0]["fields"]["center"], address.as_str());
    let progress = lines
        .iter()
        .rfind(|v| v["fields"]["event"] == "progress")
        .unwrap_or_else(|| panic!("a progress note: {stderr}"));
    assert_eq!(progress["fields"]["acknowledged_through"], 1);
    assert!(
        lines
            .iter()
            .all(|v| v["fields"]["message"].is_string() && v["fields"]["station"] == a.id.as_str()),
        "every line names the station: {stderr}"
    );
}
