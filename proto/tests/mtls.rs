//! A real mutual-TLS handshake over loopback with the certificates of
//! `pollsync_proto::identity` and the configurations of `pollsync_proto::tls`:
//! an enrolled station is let in and identified by its certificate; a client
//! certificate from another CA is refused on its first RPC; a batch signed with
//! the station's TLS key verifies with the key from its certificate.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pollsync_proto::chain::ChainWriter;
use pollsync_proto::pb::station_sync_client::StationSyncClient;
use pollsync_proto::pb::station_sync_server::{StationSync, StationSyncServer};
use pollsync_proto::{ElectionCa, EnrollmentBundle, envelope, pb, tls};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};

#[derive(Default, Clone)]
struct Seen {
    hello_from: Arc<Mutex<Vec<String>>>,
}

struct Sync {
    seen: Seen,
}

#[tonic::async_trait]
impl StationSync for Sync {
    async fn hello(
        &self,
        request: Request<pb::HelloRequest>,
    ) -> Result<Response<pb::HelloReply>, Status> {
        let station = tls::peer_station_id(&request)?;
        if station != request.get_ref().station_id {
            return Err(Status::permission_denied(
                "station_id is not the certificate's station",
            ));
        }
        self.seen
            .hello_from
            .lock()
            .map_err(|_| Status::internal("poisoned"))?
            .push(station);
        Ok(Response::new(pb::HelloReply {
            center_head_sequence: 0,
            center_head_hash: envelope::GENESIS_HASH.to_vec(),
            max_in_flight: pollsync_proto::limits::MAX_IN_FLIGHT as u32,
            max_message_bytes: pollsync_proto::limits::MAX_MESSAGE_BYTES as u32,
            max_batch_events: pollsync_proto::limits::MAX_BATCH_EVENTS as u32,
            heartbeat_interval_ms: pollsync_proto::limits::HEARTBEAT_INTERVAL_MS as u32,
            evidence_sequence: 0,
        }))
    }

    type FetchStream = ReceiverStream<Result<pb::FetchedBatch, Status>>;

    async fn fetch(
        &self,
        _request: Request<pb::FetchRequest>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        Err(Status::unimplemented("this test server keeps no batches"))
    }

    async fn prove(
        &self,
        _request: Request<pb::ProveRequest>,
    ) -> Result<Response<pb::ProveReply>, Status> {
        Err(Status::unimplemented("this test server keeps no log"))
    }

    type PushStream = ReceiverStream<Result<pb::Ack, Status>>;

    async fn push(
        &self,
        request: Request<Streaming<pb::PushMessage>>,
    ) -> Result<Response<Self::PushStream>, Status> {
        let (station, key) = tls::peer_station(&request)?;
        let mut incoming = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            let mut head = envelope::ChainHead::GENESIS;
            while let Some(Ok(message)) = incoming.next().await {
                let Some(pb::push_message::Kind::Batch(signed)) = message.kind else {
                    continue;
                };
                let ack = match envelope::verify_batch(&key, &signed)
                    .and_then(|()| envelope::decode_batch(&signed))
                {
                    Err(e) => pb::Ack::rejected(
                        0,
                        pb::RejectReason::BadSignature,
                        &e.to_string(),
                        head.next_sequence(),
                    ),
                    Ok(batch) if batch.station_id != station => pb::Ack::rejected(
                        batch.sequence,
                        pb::RejectReason::WrongStation,
                        "not the certificate's station",
                        head.next_sequence(),
                    ),
                    Ok(batch) => match head.check_next(&batch, &signed.batch) {
                        Ok(next) => {
                            head = next;
                            pb::Ack::accepted(batch.sequence)
                        }
                        Err(e) => pb::Ack::rejected(
                            batch.sequence,
                            pb::RejectReason::BrokenChain,
                            &e.to_string(),
                            head.next_sequence(),
                        ),
                    },
                };
                if tx.send(Ok(ack)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct Center {
    addr: SocketAddr,
    seen: Seen,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start_center(ca: &ElectionCa) -> Center {
    tls::install_crypto_provider();
    let server = ca.issue_server(&["center.test".to_owned()]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let service = StationSyncServer::new(Sync { seen: seen.clone() });
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let tls_config = tls::server_tls_config(&server.cert_pem, &server.key_pem, ca.cert_pem());
    let task = tokio::spawn(async move {
        Server::builder()
            .tls_config(tls_config)
            .unwrap()
            .add_service(service)
            .serve_with_incoming_shutdown(tls::tcp_incoming(listener), async {
                let _ = shutdown_rx.await;
            })
            .await
            .unwrap();
    });
    Center {
        addr,
        seen,
        shutdown: Some(shutdown_tx),
        task,
    }
}

impl Center {
    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

async fn connect(
    addr: SocketAddr,
    tls_config: tonic::transport::ClientTlsConfig,
) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls_config)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
}

fn hello(station_id: &str) -> pb::HelloRequest {
    pb::HelloRequest {
        election_id: "e-1".into(),
        station_id: station_id.into(),
        definition_sha256: vec![0; 32],
        local_head_sequence: 0,
        local_head_hash: envelope::GENESIS_HASH.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolled_station_is_identified_and_its_batches_verify() {
    let ca = ElectionCa::generate("e-1", pollsync_election::Mode::Official).unwrap();
    let center = start_center(&ca).await;

    let bundle =
        EnrollmentBundle::issue(&ca, "S-0001", &[center.addr.to_string()], "[election]\n").unwrap();
    // The server name is the IP of the address: an IP SAN (127.0.0.1) of the server certificate.
    let channel = connect(center.addr, bundle.client_tls_config())
        .await
        .unwrap();
    let mut client = StationSyncClient::new(channel);
    let reply = client.hello(hello("S-0001")).await.unwrap().into_inner();
    assert_eq!(reply.center_head_sequence, 0);
    assert_eq!(
        *center.seen.hello_from.lock().unwrap(),
        vec!["S-0001".to_owned()]
    );

    // Claiming another station's id is refused by the handler.
    let err = client.hello(hello("S-0002")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);

    // Push: batches signed with the station's TLS key verify with the certificate's key.
    let mut chain = ChainWriter::from_bundle(&bundle).unwrap();
    assert_eq!((chain.election_id(), chain.station_id()), ("e-1", "S-0001"));
    let mut messages = Vec::new();
    for _ in 1..=3u64 {
        messages.push(pb::PushMessage::batch(chain.next(vec![])));
    }
    // A forged batch 4: signed by another key.
    let forged = chain.unsigned(vec![]);
    assert_eq!(forged.sequence, 4);
    let other_key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    messages.push(pb::PushMessage::batch(envelope::seal_batch(
        &other_key, &forged,
    )));
    messages.push(pb::PushMessage::heartbeat(4, 1));

    let acks: Vec<pb::Ack> = client
        .push(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let kinds: Vec<(u64, pb::AckKind)> = acks.iter().map(|a| (a.sequence, a.kind())).collect();
    assert_eq!(
        kinds,
        vec![
            (1, pb::AckKind::Accepted),
            (2, pb::AckKind::Accepted),
            (3, pb::AckKind::Accepted),
            (0, pb::AckKind::Rejected),
        ]
    );
    assert_eq!(acks[3].reason(), pb::RejectReason::BadSignature);
    assert_eq!(acks[3].expected_sequence, 4);

    center.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_another_ca_is_refused() {
    let ca = ElectionCa::generate("e-1", pollsync_election::Mode::Official).unwrap();
    let center = start_center(&ca).await;

    // Same station id, same election id, but another CA.
    let rogue_ca = ElectionCa::generate("e-1", pollsync_election::Mode::Official).unwrap();
    let rogue = rogue_ca.issue_station("S-0001").unwrap();
    let config =
        tls::client_tls_config(ca.cert_pem(), &rogue.cert_pem, &rogue.key_pem, "127.0.0.1");
    // connect() may succeed (the client finishes its side of TLS 1.3 before the
    // server checks the certificate): the refusal shows on the first RPC.
    match connect(center.addr, config).await {
        Err(_) => {}
        Ok(channel) => {
            let mut client = StationSyncClient::new(channel);
            let result = client.hello(hello("S-0001")).await;
            assert!(
                result.is_err(),
                "a rogue certificate got an answer: {result:?}"
            );
        }
    }
    assert!(center.seen.hello_from.lock().unwrap().is_empty());

    // A client trusting another CA refuses the center's certificate.
    let station = ca.issue_station("S-0001").unwrap();
    let config = tls::client_tls_config(
        rogue_ca.cert_pem(),
        &station.cert_pem,
        &station.key_pem,
        "127.0.0.1",
    );
    match connect(center.addr, config).await {
        Err(_) => {}
        Ok(channel) => {
            let result = StationSyncClient::new(channel).hello(hello("S-0001")).await;
            assert!(
                result.is_err(),
                "an untrusted server was accepted: {result:?}"
            );
        }
    }

    // A server name that is not in the certificate is refused.
    let config = tls::client_tls_config(
        ca.cert_pem(),
        &station.cert_pem,
        &station.key_pem,
        "wrong.example",
    );
    match connect(center.addr, config).await {
        Err(_) => {}
        Ok(channel) => {
            let result = StationSyncClient::new(channel).hello(hello("S-0001")).await;
            assert!(
                result.is_err(),
                "a wrong server name was accepted: {result:?}"
            );
        }
    }

    // The enrolled station still gets in, also by the DNS name of the certificate.
    let config = tls::client_tls_config(
        ca.cert_pem(),
        &station.cert_pem,
        &station.key_pem,
        "localhost",
    );
    let channel = connect(center.addr, config).await.unwrap();
    StationSyncClient::new(channel)
        .hello(hello("S-0001"))
        .await
        .unwrap();
    assert_eq!(
        *center.seen.hello_from.lock().unwrap(),
        vec!["S-0001".to_owned()]
    );

    center.stop().await;
}
