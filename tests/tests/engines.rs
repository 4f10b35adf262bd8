//! The store's SQL means the same on both engines (SPEC §11, issue 16): the same
//! writes, through the writer's own statements (`store::apply`, the `IngestOps`
//! of each engine) on SQLite and on a real PostgreSQL server of the test's own,
//! read back through the one `Records` implementation, give the same stations,
//! keys, tallies, batches, alerts, fork evidence, log and checkpoints; and on
//! PostgreSQL a savepoint dropped or a transaction not committed leaves nothing,
//! a batch stored twice is refused, and a tally never goes below zero.

use std::collections::{BTreeMap, HashMap};

use pollsync_center::context::Context;
use pollsync_center::store::apply::Presence;
use pollsync_center::store::postgres::{PgConn, PgIngest};
use pollsync_center::store::schema::schema;
use pollsync_center::store::sql::{Dialect, Param, Sql};
use pollsync_center::store::state::{ContestDelta, Effects};
use pollsync_center::store::{
    EvidenceBatch, ForkEvidence, IngestOps, IngestStore as _, IngestTx as _, Records, Unit as _,
};
use pollsync_election::TallySheet;
use pollsync_tests::pg::PgServer;

fn context() -> Context {
    let text = include_str!("../fixtures/three-stations.toml");
    let def = pollsync_election::load("three-stations.toml", text).expect("definition");
    Context::new(def, pollsync_proto::definition_sha256(text.as_bytes()))
}

/// Stations and a key for each, as `center init` and `center enroll` leave them.
fn seed(sql: &dyn Sql, ctx: &Context) {
    for (n, s) in ctx.definition.stations.iter().enumerate() {
        sql.exec(
            "INSERT INTO stations (station, head_hash) VALUES (?1, ?2)",
            &[Param::Text(&s.id), Param::Blob(&[0; 32])],
        )
        .expect("station row");
        // RFC 8032's first test key: a valid Ed25519 point.
        let key = hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
            .expect("hex");
        sql.exec(
            "INSERT INTO station_keys (station, key_no, cert_der, public_key, current, enrolled_unix_ms)
             VALUES (?1, 1, ?2, ?3, 1, ?4)",
            &[
                Param::Text(&s.id),
                Param::Blob(b"cert"),
                Param::Blob(&key),
                Param::Int(1_000 + n as i64),
            ],
        )
        .expect("key row");
    }
}

/// Two batches for the first station (ballots, a cancel taking one back, a
/// write-in that comes and goes, a close), one for the second.
fn batches(ctx: &Context) -> Vec<(String, Effects)> {
    let first = &ctx.definition.stations[0];
    let second = &ctx.definition.stations[1];
    let contest = ctx.contest(&first.contests[0]).expect("contest");
    let candidates = contest.candidates.len();
    let delta = |returned: i64, f: i64, a: i64, write_in: i64| ContestDelta {
        issued: u64::try_from(returned.max(0)).unwrap_or(0) + 1,
        returned,
        valid: returned,
        void: 0,
        for_votes: (0..candidates)
            .map(|i| if i == 0 { f } else { 0 })
            .collect(),
        against: (0..candidates)
            .map(|i| if i == 1 { a } else { 0 })
            .collect(),
        write_in: BTreeMap::from([("李四".to_owned(), write_in)]),
    };
    let effects = |sequence: u64, d: ContestDelta, close: bool| {
        let mut sheet = TallySheet::for_contest(contest);
        sheet.issued = 7;
        Effects {
            sequence,
            hash: [sequence as u8; 32],
            key_no: 1,
            events: 3,
            ballots: 2,
            deltas: BTreeMap::from([(contest.id.clone(), d)]),
            closes: if close {
                vec![(contest.id.clone(), sheet)]
            } else {
                vec![]
            },
        }
    };
    vec![
        (first.id.clone(), effects(1, delta(3, 2, 1, 1), false)),
        (first.id.clone(), effects(2, delta(-1, -1, 0, -1), true)),
        (second.id.clone(), effects(1, delta(2, 1, 1, 0), false)),
    ]
}

/// Everything else the writer writes: an alert, fork evidence, log leaves and
/// hashes, a standing change, a checkpoint, a quarantine, presence.
fn the_rest(ops: &dyn IngestOps, ctx: &Context) {
    let first = &ctx.definition.stations[0].id;
    let second = &ctx.definition.stations[1].id;
    ops.insert_alert(second, "GAP", 4, "batches 2 to 3 are missing", 5_000)
        .expect("alert");
    let batch = |n: u8| EvidenceBatch {
        hash: [n; 32],
        batch: vec![n; 10],
        signature: vec![n; 64],
        key_no: 1,
    };
    let fork = ForkEvidence {
        station: first.clone(),
        sequence: 2,
        stored: batch(2),
        other: batch(9),
        unix_ms: 6_000,
    };
    ops.insert_fork_evidence(&fork).expect("fork");
    ops.insert_fork_evidence(&fork)
        .expect("the same fork again is nothing new");
    ops.quarantine(first).expect("quarantine");
    for leaf in 0..3u64 {
        let hashes: Vec<[u8; 32]> = (0..=leaf).map(|i| [(leaf * 10 + i) as u8; 32]).collect();
        ops.log_put(leaf, &[leaf as u8; 48], leaf * 3, &hashes)
            .expect("leaf");
    }
    ops.put_standing_record(2, second, "REVOKED text")
        .expect("standing");
    ops.log_put_checkpoint(3, b"checkpoint note")
        .expect("checkpoint");
    ops.write_presence(&HashMap::from([(
        second.clone(),
        Presence {
            last_seen_unix_ms: 7_000,
            local_head_sequence: 5,
            sealed_unacknowledged: 4,
            connections: 1,
        },
    )]))
    .expect("presence");
}

/// What `Records` reads, as text to compare.
fn read_all(records: &dyn Records, ctx: &Context) -> Vec<String> {
    let first = &ctx.definition.stations[0].id;
    let mut out = vec![
        format!("{:?}", records.stations().expect("stations")),
        format!("{:?}", records.alerts().expect("alerts")),
        format!("{:?}", records.tallies().expect("tallies")),
        format!("{:?}", records.tally_map().expect("tally map")),
        format!("{:?}", records.batches(None).expect("batches")),
        format!(
            "{:?}",
            records.batches(Some(first)).expect("batches of one")
        ),
        format!("{:?}", records.fork_evidence().expect("forks")),
        format!("{:?}", records.keys_of(first).expect("keys")),
        format!("{:?}", records.head(first).expect("head")),
        format!("{:?}", records.stored_hash(first, 2).expect("hash")),
        format!("{:?}", records.stored_batch(first, 1).expect("batch")),
        format!("{:?}", records.batch_leaf(first, 2).expect("leaf")),
        format!("{:?}", records.log_size().expect("log size")),
        format!("{:?}", records.log_entries(0, 3).expect("entries")),
        format!(
            "{:?}",
            records.log_hashes(&[0, 1, 4, 8, 9]).expect("hashes")
        ),
        format!("{:?}", records.latest_checkpoint().expect("checkpoint")),
        format!("{:?}", records.checkpoint_of_size(3).expect("checkpoint 3")),
        format!("{:?}", records.standing_records().expect("standing")),
        format!(
            "{:?}",
            records
                .station_now(first)
                .expect("state")
                .map(|(s, k)| (s, k.map(|k| k.key_no)))
        ),
    ];
    let mut counts: Vec<_> = records
        .batch_counts()
        .expect("counts")
        .into_iter()
        .collect();
    counts.sort();
    out.push(format!("{counts:?}"));
    out
}

/// A [`Records`] over a bare SQLite connection.
struct SqliteRecords(rusqlite::Connection);

impl pollsync_center::store::records::AsSql for SqliteRecords {
    fn sql(&self) -> &dyn Sql {
        &self.0
    }
}

#[test]
fn the_same_writes_read_back_the_same_on_sqlite_and_postgresql() {
    let ctx = context();
    let server = PgServer::start();

    let sqlite = rusqlite::Connection::open_in_memory().expect("sqlite");
    sqlite
        .execute_batch(&schema(Dialect::Sqlite))
        .expect("sqlite schema");
    seed(&sqlite, &ctx);
    for (station, effects) in batches(&ctx) {
        let bytes = vec![effects.sequence as u8; 20];
        sqlite
            .apply_effects(&ctx, &station, &bytes, &[1; 64], &effects, effects.sequence)
            .expect("sqlite apply");
    }
    the_rest(&sqlite, &ctx);
    let sqlite = SqliteRecords(sqlite);

    let pg = PgConn::connect(&server.create_database("engines")).expect("connect");
    pg.batch(&schema(Dialect::Postgres))
        .expect("postgres schema");
    seed(&pg, &ctx);
    let mut ingest = PgIngest::new(pg);
    {
        let mut tx = ingest.write().expect("write transaction");
        for (station, effects) in batches(&ctx) {
            let sp = tx.savepoint().expect("savepoint");
            let bytes = vec![effects.sequence as u8; 20];
            sp.ops()
                .apply_effects(&ctx, &station, &bytes, &[1; 64], &effects, effects.sequence)
                .expect("postgres apply");
            sp.commit().expect("release");
        }
        the_rest(tx.ops(), &ctx);
        tx.commit().expect("commit");
    }
    let pg_reader = PgConn::connect(&server.url("engines")).expect("reader");

    let (on_sqlite, on_pg) = (read_all(&sqlite, &ctx), read_all(&pg_reader, &ctx));
    for (a, b) in on_sqlite.iter().zip(&on_pg) {
        assert_eq!(a, b, "SQLite and PostgreSQL read back differently");
    }

    // A dropped savepoint and an uncommitted transaction leave nothing.
    let second = ctx.definition.stations[1].id.clone();
    let mut next = batches(&ctx).pop().expect("a batch").1;
    next.sequence = 2;
    next.hash = [42; 32];
    {
        let mut tx = ingest.write().expect("write");
        {
            let sp = tx.savepoint().expect("savepoint");
            sp.ops()
                .apply_effects(&ctx, &second, b"x", &[2; 64], &next, 9)
                .expect("applied inside the savepoint");
        }
        tx.commit().expect("commit");
    }
    {
        let tx = ingest.write().expect("write");
        tx.ops()
            .apply_effects(&ctx, &second, b"x", &[2; 64], &next, 9)
            .expect("applied inside the transaction");
    }
    assert_eq!(
        read_all(&pg_reader, &ctx),
        on_pg,
        "nothing of either stayed"
    );

    // A batch stored twice is refused by the database, whatever a writer believes.
    let (station, first_batch) = batches(&ctx).remove(0);
    let tx = ingest.write().expect("write");
    let twice = tx
        .ops()
        .apply_effects(&ctx, &station, b"again", &[3; 64], &first_batch, 10);
    assert!(twice.is_err(), "unique (station, sequence)");
    drop(tx);

    // A cancel of more than was counted is refused, on both engines alike.
    // A head moves only from the one the batch follows (compare-and-set), whatever
    // a writer believes the head is.
    let mut ahead = next.clone();
    ahead.sequence = 3;
    let tx = ingest.write().expect("write");
    let moved = tx
        .ops()
        .apply_effects(&ctx, &second, b"z", &[5; 64], &ahead, 12)
        .expect_err("not after the stored head");
    assert!(
        matches!(
            moved,
            pollsync_center::error::CenterError::HeadMoved { sequence: 3, .. }
        ),
        "{moved}"
    );
    drop(tx);

    let mut too_many = batches(&ctx).remove(2).1;
    too_many.sequence = 2;
    too_many.hash = [43; 32];
    for d in too_many.deltas.values_mut() {
        d.returned = -100;
    }
    let tx = ingest.write().expect("write");
    let refused = tx
        .ops()
        .apply_effects(&ctx, &second, b"y", &[4; 64], &too_many, 11)
        .expect_err("below zero");
    assert!(
        refused.to_string().contains("never goes below zero"),
        "{refused}"
    );
    drop(tx);
    assert_eq!(read_all(&pg_reader, &ctx), on_pg);

    // The store survives the server's crash and restart, and is read again.
    drop(pg_reader);
    drop(ingest);
    server.restart();
    let after = PgConn::connect(&server.url("engines")).expect("reconnect");
    assert_eq!(read_all(&after, &ctx), on_pg, "committed is durable");
}

/// A small election day with the center on PostgreSQL, over the real binaries
/// (`center --store postgres://… init | enroll | serve | results | audit |
/// export-evidence`): every station syncs, a station is revoked, and the counts
/// are exactly the ground truth, with no alert for honest stations, a clean audit,
/// and evidence that `pollsync-verify` accepts. Then the database server is
/// crashed and restarted under the serving center: a station that syncs after it
/// is counted once, and everything stays exact.
#[test]
fn a_day_with_the_center_on_postgresql_counts_exactly_the_truth() {
    use pollsync_sim::ballots::{self, USUAL};
    use pollsync_tests::{
        Center, Station, assert_no_alerts, center_tallies, drawn_for, ok, record_day,
        small_election, truth,
    };

    let root = tempfile::tempdir().expect("tempdir");
    let server = PgServer::start();
    let url = server.create_database("day");
    let (file, def) = small_election(root.path(), 71);
    let drawn = ballots::draw(&def, 71, &USUAL);
    let mut center = Center::init_on(root.path(), &file, &url);
    let again = pollsync_tests::run(center.command().args(["init", "--election"]).arg(&file));
    assert!(!again.status.success(), "a second init is refused");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("holds a pollsync store already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    center.serve();
    let ids: Vec<String> = def.stations.iter().take(3).map(|s| s.id.clone()).collect();
    let stations: Vec<Station> = ids
        .iter()
        .map(|id| Station::init(root.path(), &center, id, center.address()))
        .collect();
    for station in &stations[..2] {
        record_day(station, &drawn, root.path());
        station.ok(&["sync", "--timeout-s", "60"]);
    }
    let first_two: Vec<&str> = ids[..2].iter().map(String::as_str).collect();
    assert_eq!(
        center_tallies(&center),
        truth(&drawn_for(&drawn, &first_two))
    );

    // PostgreSQL crashes and comes back; the third station syncs after it.
    server.restart();
    record_day(&stations[2], &drawn, root.path());
    stations[2].ok(&["sync", "--timeout-s", "120"]);
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(center_tallies(&center), truth(&drawn_for(&drawn, &all)));
    assert_no_alerts(&center);

    center.kill();
    ok(center
        .command()
        .args(["revoke", &def.stations[3].id, "--reason", "device lost"]));
    let audit = center.json(&["audit", "--json"]);
    assert_eq!(audit["ok"], true, "{audit}");
    let evidence = root.path().join("evidence");
    ok(center
        .command()
        .args(["export-evidence", &evidence.display().to_string()]));
    let verified =
        ok(std::process::Command::new(pollsync_tests::bin("pollsync-verify")).arg(&evidence));
    assert!(verified.contains("V9 standing changes: 1"), "{verified}");
}

/// A new user's PostgreSQL asks for passwords: the center takes its store from
/// `POLLSYNC_STORE` and the password from `PGPASSWORD`, never from its command
/// line, and a missing or wrong password is named as such.
#[test]
fn a_password_protected_postgresql_is_used_from_the_environment() {
    use pollsync_tests::{bin, small_election};

    let root = tempfile::tempdir().expect("tempdir");
    let server = PgServer::start_with_passwords("admin-secret");
    let url = server.create_owned_database("pollsync", "pollsync", "center-secret");
    assert!(!url.contains("secret"), "{url}");
    let (file, def) = small_election(root.path(), 72);
    let center = |args: &[&str], password: Option<&str>| {
        let mut cmd = std::process::Command::new(bin("center"));
        cmd.args(args)
            .env("POLLSYNC_STORE", &url)
            .env_remove("PGPASSWORD")
            .current_dir(root.path());
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        let out = cmd.output().expect("center runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let election = file.display().to_string();
    let init = ["init", "--election", election.as_str()];

    let (ok, _, err) = center(&init, None);
    assert!(!ok);
    assert!(
        err.contains("password missing (give it in PGPASSWORD)"),
        "{err}"
    );
    let (ok, _, err) = center(&init, Some("wrong"));
    assert!(!ok);
    assert!(
        err.contains("28P01"),
        "the server's refusal is shown: {err}"
    );

    let (ok, out, err) = center(&init, Some("center-secret"));
    assert!(ok, "{err}");
    assert!(out.contains(&url) && !out.contains("secret"), "{out}");
    let (ok, _, err) = center(
        &["enroll", "--all", "--out-dir", "bundles"],
        Some("center-secret"),
    );
    assert!(ok, "{err}");
    let (ok, status, err) = center(&["status", "--json"], Some("center-secret"));
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    assert_eq!(
        status["stations"]["total"].as_u64(),
        Some(def.stations.len() as u64),
        "{status}"
    );
}

/// A database reached over TLS: the center verifies the server's certificate
/// against the CA in `PGSSLROOTCERT` (TLS 1.3), refuses another CA's, says what is
/// missing without one, and a plain connection is what the server refuses.
#[test]
fn a_database_over_tls_is_verified_and_used() {
    use pollsync_tests::{bin, small_election};
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    // The database's own CA and server certificate (ECDSA P-256: what a DBA's
    // OpenSSL makes), and a CA that did not sign it.
    let authority = || {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("CA certificate");
        (cert.pem(), Issuer::new(params, key))
    };
    let (db_ca_pem, db_ca) = authority();
    let (other_ca_pem, _) = authority();
    let server_key = KeyPair::generate().expect("server key");
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server params")
        .signed_by(&server_key, &db_ca)
        .expect("server certificate");
    let root = tempfile::tempdir().expect("tempdir");
    let server = PgServer::start_with_tls(&server_cert.pem(), &server_key.serialize_pem());
    let plain_url = server.create_database("tls");
    let url = format!("{plain_url}?sslmode=verify-full");
    let ca_file = root.path().join("db-ca.pem");
    std::fs::write(&ca_file, db_ca_pem).expect("CA file");
    let other_file = root.path().join("other-ca.pem");
    std::fs::write(&other_file, other_ca_pem).expect("CA file");
    let (file, _) = small_election(root.path(), 73);
    let center = |store: &str, roots: Option<&std::path::Path>, args: &[&str]| {
        let mut cmd = std::process::Command::new(bin("center"));
        cmd.args(["--store", store])
            .args(args)
            .env_remove("PGSSLROOTCERT")
            .current_dir(root.path());
        if let Some(r) = roots {
            cmd.env("PGSSLROOTCERT", r);
        }
        let out = cmd.output().expect("center runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let election = file.display().to_string();
    let init = ["init", "--election", election.as_str()];

    let (ok, err) = center(&url, None, &init);
    assert!(!ok);
    assert!(err.contains("set PGSSLROOTCERT"), "{err}");
    let (ok, err) = center(&url, Some(&other_file), &init);
    assert!(!ok, "another CA's trust is not this server's");
    assert!(err.contains("cannot connect"), "{err}");
    let (ok, err) = center(&plain_url, None, &init);
    assert!(!ok, "the server takes TLS only");
    assert!(
        err.contains("28000"),
        "the server's refusal is named: {err}"
    );

    let (ok, err) = center(&url, Some(&ca_file), &init);
    assert!(ok, "{err}");
    let (ok, err) = center(
        &url,
        Some(&ca_file),
        &["enroll", "--all", "--out-dir", "bundles"],
    );
    assert!(ok, "{err}");
    let (ok, err) = center(&url, Some(&ca_file), &["audit"]);
    assert!(ok, "{err}");
}
