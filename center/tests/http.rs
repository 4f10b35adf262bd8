//! The operators' HTTP side (SPEC §8) in process: a center store with real signed
//! batches applied through the ingest, `http::serve_http` on loopback, and plain
//! HTTP/1.1 requests over TCP. Checks that the API says exactly what the
//! `center status|results|alerts` commands say, that the event stream reports
//! each durable decision, that `/metrics` counts them, that the token is enforced
//! and required beyond loopback, and that stopping the center ends open streams.

mod support;

use pollsync_center::store::Records as _;
use std::time::Duration;

use pollsync_center::http::{HttpError, Token, serve_http};
use pollsync_center::ingest::{self, IngestHandle};
use pollsync_center::store::Store;
use pollsync_center::{commands, results, status};
use pollsync_election::{Mark, StationEvent, TallySheet};
use pollsync_proto::pb::{self, AckKind};
use pollsync_proto::tlog::{self, Leaf};
use serde_json::Value;
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use Mark::{Against as X, For as F, None as O};
use support::{ballot, close, issued};

const DEADLINE: Duration = Duration::from_secs(20);
const TOKEN: &str = "operators-token-0123456789";

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {DEADLINE:?}"))
}

/// A center store with its ingest running and the HTTP side served on loopback.
struct Served {
    center: support::Center,
    ingest: IngestHandle,
    writer: Option<std::thread::JoinHandle<()>>,
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), HttpError>>>,
}

impl Served {
    async fn start(token: Option<&str>) -> Served {
        let center = support::Center::new();
        let (ingest, writer) = ingest::start(&center.data).expect("ingest starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_http(
            center.data.clone(),
            ingest.clone(),
            listener,
            token.map(|t| Token::new(t).expect("token")),
            async {
                let _ = stopped.await;
            },
        ));
        Served {
            center,
            ingest,
            writer: Some(writer),
            addr,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Submits a batch as its station and returns the acknowledgement.
    async fn submit(&self, station: &str, batch: pb::SignedBatch) -> pb::Ack {
        within("ack", self.ingest.submit(station, batch))
            .await
            .expect("the ingest answers")
    }

    fn store(&self) -> Store {
        Store::open(&self.center.data).expect("store opens")
    }

    /// Stops the HTTP server (must end even with event streams open), then the
    /// ingest.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            within("HTTP shutdown", server)
                .await
                .expect("server task")
                .expect("served without error");
        }
        self.ingest.shutdown();
        if let Some(w) = self.writer.take() {
            tokio::task::spawn_blocking(move || w.join().expect("writer"))
                .await
                .expect("join");
        }
    }
}

/// A whole HTTP/1.1 exchange of `request`: status code, head, and body as bytes.
async fn exchange_bytes(addr: std::net::SocketAddr, request: &str) -> (u16, String, Vec<u8>) {
    let mut tcp = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    within("response", tcp.read_to_end(&mut raw))
        .await
        .expect("read");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head and body");
    let head = String::from_utf8(raw[..end].to_vec()).expect("utf-8 head");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (code, head, raw[end + 4..].to_vec())
}

/// A whole HTTP/1.1 exchange of `request` (its head and body as text): status
/// code, head and body.
async fn exchange(addr: std::net::SocketAddr, request: &str) -> (u16, String, String) {
    let (code, head, body) = exchange_bytes(addr, request).await;
    (code, head, String::from_utf8(body).expect("utf-8 body"))
}

/// `GET path` with no credentials: status code, head, body as bytes.
async fn get_bytes(addr: std::net::SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    exchange_bytes(addr, &req).await
}

/// `GET path` with the Host of the bound address and `extra` header lines.
async fn get_with(addr: std::net::SocketAddr, path: &str, extra: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    let (code, _, body) = exchange(addr, &req).await;
    (code, body)
}

/// A whole `GET` exchange, with a bearer token if given: status code and body.
async fn get(addr: std::net::SocketAddr, path: &str, auth: Option<&str>) -> (u16, String) {
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    get_with(addr, path, &auth).await
}

async fn get_json(addr: std::net::SocketAddr, path: &str) -> Value {
    let (code, body) = get(addr, path, None).await;
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}"))
}

/// An open `/api/events` stream, read as it arrives.
struct Events {
    tcp: TcpStream,
    seen: String,
}

impl Events {
    async fn open(addr: std::net::SocketAddr) -> Events {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut events = Events {
            tcp,
            seen: String::new(),
        };
        events.read_until("text/event-stream").await;
        events
    }

    /// Reads until `needle` has arrived; returns everything read so far.
    async fn read_until(&mut self, needle: &str) -> String {
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            let n = within(
                &format!("event stream showing {needle:?}"),
                self.tcp.read(&mut buf),
            )
            .await
            .expect("read");
            assert!(n > 0, "stream ended before {needle:?}; got: {}", self.seen);
            self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        self.seen.clone()
    }

    /// Reads until the server closes the stream.
    async fn read_to_end(&mut self) {
        let mut rest = Vec::new();
        within("the event stream to end", self.tcp.read_to_end(&mut rest))
            .await
            .expect("read");
    }
}

/// A day at a station collecting D-001 and T-001 (S-0001 or S-0002).
fn day_of() -> Vec<StationEvent> {
    vec![
        issued("D-001", 5),
        ballot(1, "D-001", &[F, F, O], &[]),
        ballot(2, "D-001", &[F, O, X], &[]),
        ballot(3, "D-001", &[O, F, F], &[]),
        ballot(4, "T-001", &[F, O], &[]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_says_what_the_commands_say() {
    let served = Served::start(None).await;
    let mut chain = served.center.chain("S-0001");
    let ack = served.submit("S-0001", chain.batch(&day_of())).await;
    assert_eq!(ack.kind(), AckKind::Accepted, "{ack:?}");
    // A tampered batch: an alert the API must show.
    let mut bad = chain.batch(&[ballot(9, "D-001", &[F, O, O], &[])]);
    bad.signature[0] ^= 1;
    let ack = served.submit("S-0001", bad).await;
    assert_eq!(ack.kind(), AckKind::Rejected, "{ack:?}");

    let store = served.store();
    let status_now = status::compute(&store).expect("status");
    let results_now = results::compute(&store, None).expect("results").to_json();
    let alerts_now = commands::alerts::to_json(&store.alerts().expect("alerts"));
    drop(store);

    // Presence (last seen, online) moves with the clock; the rest must match.
    let mut api_status = get_json(served.addr, "/api/status").await;
    let mut cli_status = status_now;
    for v in [&mut api_status, &mut cli_status] {
        for s in v["stations"]["list"].as_array_mut().expect("stations") {
            s["last_seen_unix_ms"] = Value::Null;
        }
    }
    assert_eq!(api_status, cli_status);
    assert_eq!(get_json(served.addr, "/api/results").await, results_now);
    let api_alerts = get_json(served.addr, "/api/alerts").await;
    assert_eq!(api_alerts, alerts_now);
    assert_eq!(api_alerts.as_array().map(Vec::len), Some(1), "{api_alerts}");
    assert_eq!(api_alerts[0]["station"], "S-0001");

    // The figures are the batch's: three D-001 ballots, two FOR D-001-1.
    let d = get_json(served.addr, "/api/results?contest=D-001").await;
    let contest = &d["contests"][0];
    assert_eq!(contest["ballots"]["returned"], 3, "{d}");
    assert_eq!(contest["candidates"][0]["for"], 2, "{d}");
    assert_eq!(contest["status"], "pending", "{d}");

    let (code, body) = get(served.addr, "/api/results?contest=NOPE", None).await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("NOPE"), "{body}");

    // The dashboard's one view says the same: its summary is the results' totals,
    // each contest row the contest's figures and status.
    let o = get_json(served.addr, "/api/overview").await;
    let counted: u64 = results_now["contests"]
        .as_array()
        .expect("contests")
        .iter()
        .map(|c| c["ballots"]["returned"].as_u64().expect("returned"))
        .sum();
    assert_eq!(o["summary"]["ballots"]["counted"], counted, "{o}");
    assert_eq!(
        o["summary"]["ballots"]["issued"],
        results_now["totals"]["issued"]
    );
    assert_eq!(
        o["summary"]["seats"]["total"],
        results_now["totals"]["seats"]
    );
    assert_eq!(
        o["summary"]["seats"]["decided"],
        results_now["totals"]["elected"]
    );
    assert_eq!(
        o["summary"]["contests"]["by_status"],
        results_now["totals"]["contests_by_status"]
    );
    assert_eq!(o["summary"]["alerts"], 1);
    assert_eq!(o["alerts"], api_alerts);
    for (row, c) in o["contests"]
        .as_array()
        .expect("rows")
        .iter()
        .zip(results_now["contests"].as_array().expect("contests"))
    {
        assert_eq!(row["id"], c["id"]);
        assert_eq!(row["status"], c["status"]);
        assert_eq!(row["counted"], c["ballots"]["returned"]);
        assert_eq!(row["stations"], c["stations"]);
    }
    assert_eq!(
        o["stations"][0]["batches"], 1,
        "S-0001's accepted batch: {}",
        o["stations"][0]
    );
    // The pace ends at the ballots counted.
    let points = o["pace"]["points"].as_array().expect("pace");
    assert_eq!(
        points.last().map(|p| p[1].clone()),
        Some(counted.into()),
        "{points:?}"
    );

    let (code, page) = get(served.addr, "/", None).await;
    assert_eq!(code, 200);
    assert!(page.contains("/api/events") && page.contains("/api/overview"));
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_report_each_durable_decision_and_metrics_count_them() {
    let served = Served::start(None).await;
    let mut events = Events::open(served.addr).await;
    let mut chain = served.center.chain("S-0002");
    let first = chain.batch(&day_of());
    assert_eq!(
        served.submit("S-0002", first.clone()).await.kind(),
        AckKind::Accepted
    );
    let seen = events.read_until("event: accepted").await;
    let data = seen
        .lines()
        .skip_while(|l| *l != "event: accepted")
        .find_map(|l| l.strip_prefix("data: "))
        .expect("data line");
    let event: Value = serde_json::from_str(data).expect("event JSON");
    assert_eq!(event["station"], "S-0002");
    assert_eq!(event["sequence"], 1);
    assert_eq!(event["ballots"], 4);

    // The same batch again: a duplicate, counted once.
    assert_eq!(
        served.submit("S-0002", first).await.kind(),
        AckKind::Duplicate
    );
    events.read_until("event: duplicate").await;
    // A close: the event names the contest closed.
    let mut sheet = TallySheet::default();
    sheet.add_issued(0);
    let ack = served
        .submit("S-0002", chain.batch(&[close("T-001", sheet)]))
        .await;
    assert_eq!(ack.kind(), AckKind::Accepted, "{ack:?}");
    events.read_until("\"closed\":[\"T-001\"]").await;
    // S-0002's batch pushed over S-0001's connection: not signed by S-0001's key.
    let ack = served
        .submit("S-0001", served.center.chain("S-0002").batch(&[]))
        .await;
    assert_eq!(ack.kind(), AckKind::Rejected, "{ack:?}");
    events.read_until("event: rejected").await;

    let (code, metrics) = get(served.addr, "/metrics", None).await;
    assert_eq!(code, 200);
    // A Prometheus text-format parser reads the whole exposition.
    let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses");
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("no {name} {label:?} in:\n{metrics}"));
        match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a single value"),
        }
    };
    let histogram = |name: &str| -> Vec<(f64, f64)> {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .unwrap_or_else(|| panic!("no histogram {name} in:\n{metrics}"));
        let prometheus_parse::Value::Histogram(buckets) = &s.value else {
            panic!("{name} is not a histogram");
        };
        buckets.iter().map(|b| (b.less_than, b.count)).collect()
    };
    assert_eq!(value("pollsync_batches_accepted_total", None), 2.0);
    assert_eq!(value("pollsync_ballots_counted_total", None), 4.0);
    assert_eq!(value("pollsync_batches_duplicate_total", None), 1.0);
    assert_eq!(
        value(
            "pollsync_batches_rejected_total",
            Some(("reason", "BAD_SIGNATURE"))
        ),
        1.0
    );
    assert_eq!(value("pollsync_stations", Some(("state", "all"))), 3.0);
    assert_eq!(value("pollsync_batches_held", None), 2.0);
    // Histograms: every acknowledged batch timed, every accepted one sized.
    for (name, at_least) in [
        ("pollsync_ingest_seconds", 4.0),
        ("pollsync_batch_ballots", 2.0),
        ("pollsync_group_commit_seconds", 1.0),
    ] {
        let buckets = histogram(name);
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name}: {buckets:?}"
        );
        let all = buckets.last().expect("a +Inf bucket");
        assert!(
            all.0.is_infinite() && all.1 >= at_least,
            "{name}: {buckets:?}"
        );
    }
    let ballots = histogram("pollsync_batch_ballots");
    assert_eq!(
        ballots.last().map(|b| b.1),
        Some(2.0),
        "two accepted batches"
    );
    // From the store: every contest by status, every alert by kind.
    let contests: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "pollsync_contests")
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => v,
            _ => 0.0,
        })
        .sum();
    let definition = Store::open(&served.center.data)
        .expect("store")
        .meta()
        .expect("meta")
        .definition()
        .expect("definition");
    assert_eq!(contests, definition.contests.len() as f64, "{metrics}");
    let stored_alerts = Store::open(&served.center.data)
        .expect("store")
        .alerts()
        .expect("alerts");
    for kind in stored_alerts.iter().map(|a| a.kind.as_str()) {
        let n = stored_alerts.iter().filter(|a| a.kind == kind).count();
        assert_eq!(value("pollsync_alerts", Some(("kind", kind))), n as f64);
    }
    // Stopping the center ends the open event stream (or shutdown would hang).
    served.stop().await;
    events.read_to_end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_enforced_when_set_and_required_beyond_loopback() {
    let served = Served::start(Some(TOKEN)).await;
    for path in [
        "/api/status",
        "/api/results",
        "/api/alerts",
        "/metrics",
        "/api/events",
    ] {
        let (code, _) = get(served.addr, path, None).await;
        assert_eq!(code, 401, "{path} without a token");
        let (code, _) = get(served.addr, path, Some("operators-token-0123456780")).await;
        assert_eq!(code, 401, "{path} with a wrong token");
    }
    // The page itself holds no data: it loads, then signs in.
    let (code, page) = get(served.addr, "/", None).await;
    assert_eq!(code, 200);
    assert!(page.contains("/api/session"), "the page signs in");
    let (code, _) = get(served.addr, "/api/status", Some(TOKEN)).await;
    assert_eq!(code, 200);
    // A token in a URL is never taken (it would end up in logs and history).
    let (code, _) = get(served.addr, &format!("/metrics?token={TOKEN}"), None).await;
    assert_eq!(code, 401, "no token from the query string");
    // Signing in: a wrong token gets nothing, the right one a strict cookie.
    let login = |token: &str| {
        let body = format!("{{\"token\":\"{token}\"}}");
        format!(
            "POST /api/session HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            served.addr,
            body.len()
        )
    };
    let (code, head, _) = exchange(served.addr, &login("operators-token-0123456780")).await;
    assert_eq!(code, 401);
    assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
    let (code, head, _) = exchange(served.addr, &login(TOKEN)).await;
    assert_eq!(code, 204, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .expect("a session cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(TOKEN), "the cookie is not the token");
    let session = cookie.split(';').next().expect("name=value");
    for path in ["/api/status", "/metrics"] {
        let (code, _) = get_with(served.addr, path, &format!("Cookie: {session}\r\n")).await;
        assert_eq!(code, 200, "{path} with the session cookie");
    }
    let (code, _) = get_with(
        served.addr,
        "/api/status",
        "Cookie: pollsync_session=00ff\r\n",
    )
    .await;
    assert_eq!(code, 401, "an unknown session");
    // Another Host (DNS rebinding): refused whatever the credentials.
    let (code, _, body) = exchange(
        served.addr,
        &format!("GET /api/status HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(code, 421, "{body}");
    served.stop().await;

    // Bound beyond loopback with no token: refused before serving anything.
    let center = support::Center::new();
    let (ingest, writer) = ingest::start(&center.data).expect("ingest");
    let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let refused = serve_http(center.data.clone(), ingest.clone(), listener, None, async {
    })
    .await;
    assert!(
        matches!(refused, Err(HttpError::TokenRequired { .. })),
        "{refused:?}"
    );
    ingest.shutdown();
    tokio::task::spawn_blocking(move || writer.join().expect("writer"))
        .await
        .expect("join");
}

/// At most `MAX_EVENT_STREAMS` event streams at once: one more is answered 503 and
/// the open ones keep streaming; a slot comes back when a stream closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped() {
    let served = Served::start(None).await;
    let mut open = Vec::new();
    for _ in 0..pollsync_center::http::MAX_EVENT_STREAMS {
        open.push(Events::open(served.addr).await);
    }
    let (code, body) = get(served.addr, "/api/events", None).await;
    assert_eq!(code, 503, "{body}");
    drop(open.pop());
    // The slot is back once the server sees the closed stream.
    let start = std::time::Instant::now();
    loop {
        let mut tcp = TcpStream::connect(served.addr).await.expect("connect");
        let req = format!("GET /api/events HTTP/1.1\r\nHost: {}\r\n\r\n", served.addr);
        tcp.write_all(req.as_bytes()).await.expect("write");
        let mut buf = [0u8; 64];
        let n = within("status line", tcp.read(&mut buf))
            .await
            .expect("read");
        if String::from_utf8_lossy(&buf[..n]).contains(" 200 ") {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(open);
    served.stop().await;
}

/// Beyond loopback the operators' side is HTTPS only, with the center's own
/// certificate; without a certificate it does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_it_is_served_over_https_with_the_centers_certificate() {
    use pollsync_center::http::{HttpConfig, serve_http_with};
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    pollsync_proto::tls::install_crypto_provider();
    let center = support::Center::new();
    let meta = Store::open(&center.data)
        .expect("store")
        .meta()
        .expect("meta");
    let (ingest, writer) = ingest::start(&center.data).expect("ingest");
    let plain = HttpConfig {
        token: Some(Token::new(TOKEN).expect("token")),
        ..HttpConfig::default()
    };
    let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let refused = serve_http_with(
        center.data.clone(),
        ingest.clone(),
        listener,
        plain,
        async {},
    )
    .await;
    assert!(
        matches!(refused, Err(HttpError::HttpsRequired { .. })),
        "{refused:?}"
    );

    let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let config = HttpConfig {
        token: Some(Token::new(TOKEN).expect("token")),
        tls: Some((meta.server_cert_pem.clone(), meta.server_key_pem.clone())),
        hosts: vec![],
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_http_with(
        center.data.clone(),
        ingest.clone(),
        listener,
        config,
        async {
            let _ = stopped.await;
        },
    ));
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(meta.ca_cert_pem.as_bytes()).expect("CA"))
        .expect("root");
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut tls = within(
        "TLS handshake",
        connector.connect(ServerName::try_from("127.0.0.1").expect("name"), tcp),
    )
    .await
    .expect("HTTPS with the center's certificate");
    let req = format!(
        "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let _ = within("response", tls.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // Plain HTTP to the same port gets no answer.
    let mut tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    tcp.write_all(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = within("plain answer", tcp.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"));
    let _ = stop.send(());
    within("HTTPS shutdown", server)
        .await
        .expect("task")
        .expect("served");
    ingest.shutdown();
    tokio::task::spawn_blocking(move || writer.join().expect("writer"))
        .await
        .expect("join");
}

/// The public log of a served center, read over HTTP with no credentials.
struct PublicLog {
    addr: std::net::SocketAddr,
    verifier_key: String,
}

impl PublicLog {
    /// The newest checkpoint, verified with the log key.
    async fn checkpoint(&self) -> tlog::Checkpoint {
        let (code, head, note) = get_bytes(self.addr, "/log/checkpoint").await;
        assert_eq!(code, 200, "{head}");
        tlog::open_checkpoint(&note, &self.verifier_key)
            .expect("a checkpoint signed by the log key")
    }

    /// Waits (polling, bounded by the test deadline) for a checkpoint of `size`.
    async fn checkpoint_of(&self, size: u64) -> tlog::Checkpoint {
        within(&format!("a checkpoint of {size} leaves"), async {
            loop {
                let checkpoint = self.checkpoint().await;
                assert!(checkpoint.size() <= size, "more leaves than recorded");
                if checkpoint.size() == size {
                    return checkpoint;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
    }

    async fn fetch(&self, tile: &tlog::Tile) -> Vec<u8> {
        let path = format!("/log/{}", tlog::tile_path(tile));
        let (code, head, body) = get_bytes(self.addr, &path).await;
        assert_eq!(code, 200, "{path}: {head}");
        assert!(
            head.contains("immutable"),
            "{path}: tiles are cacheable: {head}"
        );
        body
    }
}

/// The tiles of a tree, fetched over HTTP beforehand (the tile reader is sync).
struct FetchedTiles(std::collections::HashMap<tlog::Tile, Vec<u8>>);

impl tlog::tlog_tiles::TileReader for FetchedTiles {
    fn height(&self) -> u8 {
        tlog::TILE_HEIGHT
    }

    fn read_tiles(&self, tiles: &[tlog::Tile]) -> Result<Vec<Vec<u8>>, tlog::tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                self.0
                    .get(t)
                    .cloned()
                    .ok_or(tlog::tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }

    fn save_tiles(&self, _: &[tlog::Tile], _: &[Vec<u8>]) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_log_holds_every_accepted_batch_fork_and_standing_change() {
    // A token is set: the log is still public.
    let served = Served::start(Some(TOKEN)).await;
    let log = PublicLog {
        addr: served.addr,
        verifier_key: served.store().meta().expect("meta").log_verifier_key,
    };
    let empty = log.checkpoint_of(0).await;
    assert_eq!(empty.origin(), "pollsync/test-2021/test");

    let mut s1 = served.center.chain("S-0001");
    let mut s2 = served.center.chain("S-0002");
    let mut expected = Vec::new();
    // More than a full tile of leaves, from two stations interleaved.
    for i in 0..150u64 {
        for (station, chain) in [("S-0001", &mut s1), ("S-0002", &mut s2)] {
            let batch = chain.batch(&[issued("D-001", 1 + i % 3)]);
            let hash = pollsync_proto::chain_hash(&batch.batch);
            assert_eq!(
                served.submit(station, batch).await.kind(),
                AckKind::Accepted
            );
            expected.push(Leaf::batch(station, i + 1, hash));
        }
    }
    // A resend and a gap add nothing.
    let mut resend = s1.clone();
    resend.resume(150, resend.prev());
    let mut ahead = s2.clone();
    ahead.resume(160, [7; 32]);
    assert_eq!(
        served
            .submit("S-0002", ahead.batch(&[issued("D-001", 1)]))
            .await
            .kind(),
        AckKind::Rejected
    );
    // A fork of S-0001's last batch: signed evidence, a leaf of its own.
    let mut clone = s1.clone();
    let at_149 = served.store().stored_hash("S-0001", 149).unwrap().unwrap();
    clone.resume(150, at_149);
    let other = clone.batch(&[issued("T-001", 9)]);
    let other_hash = pollsync_proto::chain_hash(&other.batch);
    let fork = served.submit("S-0001", other).await;
    assert_eq!(fork.reason(), pb::RejectReason::Fork, "{}", fork.detail);
    expected.push(Leaf::fork("S-0001", 150, other_hash));
    // A standing change by an offline command while the center serves.
    assert!(
        Store::open(&served.center.data)
            .unwrap()
            .revoke("S-0002", "device lost")
            .unwrap()
    );
    let record = served.store().standing_records().unwrap();
    assert_eq!(record.len(), 1);
    assert!(record[0].2.contains("change REVOKED\n") && record[0].2.contains("\"device lost\""));
    let size = expected.len() as u64 + 1;

    let checkpoint = log.checkpoint_of(size).await;
    // The entry bundles say exactly what happened, in order.
    let mut leaves = Vec::new();
    for tile in tlog::Tile::new_tiles(tlog::TILE_HEIGHT, 0, size) {
        if tile.level() != 0 {
            continue;
        }
        let mut data = tile;
        data.set_is_data();
        let bundle = log.fetch(&data).await;
        for entry in tlog::parse_entry_bundle(&bundle).expect("an entry bundle") {
            leaves.push(Leaf::from_bytes(entry).expect("a leaf record"));
        }
    }
    assert_eq!(leaves.len() as u64, size);
    assert_eq!(&leaves[..expected.len()], &expected[..]);
    let standing = leaves.last().unwrap();
    assert_eq!(
        (standing.kind, standing.station.as_str()),
        (tlog::LeafKind::Standing, "S-0002")
    );
    assert_eq!(
        standing.hash,
        <[u8; 32]>::from(sha2::Sha256::digest(record[0].2.as_bytes()))
    );

    // The hash tiles authenticate against the checkpoint, and prove each leaf.
    let mut fetched = std::collections::HashMap::new();
    for tile in tlog::Tile::new_tiles(tlog::TILE_HEIGHT, 0, size) {
        fetched.insert(tile, log.fetch(&tile).await);
    }
    let tiles = FetchedTiles(fetched);
    let reader = tlog::tlog_tiles::TileHashReader::new(size, *checkpoint.hash(), &tiles);
    assert_eq!(
        tlog::tlog_tiles::tree_hash(size, &reader).expect("tiles verify"),
        *checkpoint.hash()
    );
    for index in [0, 1, 255, 256, size - 1] {
        let proof = tlog::tlog_tiles::prove_record(size, index, &reader).expect("a proof");
        let leaf = leaves[index as usize].leaf_hash();
        tlog::check_inclusion(&proof, size, *checkpoint.hash(), index, leaf).expect("included");
    }

    // Nothing beyond the checkpoint, nothing that is not a tile path.
    for path in [
        format!("/log/tile/entries/{:03}", size / 256 + 1),
        "/log/tile/0/001".to_owned(),
        "/log/tile/0/000.p/0".to_owned(),
        "/log/tile/8/0/000".to_owned(),
        "/log/tile/../checkpoint".to_owned(),
    ] {
        let (code, head, _) = get_bytes(served.addr, &path).await;
        assert_eq!(code, 404, "{path}: {head}");
    }
    served.stop().await;
}
