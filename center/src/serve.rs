//! `center serve`'s gRPC side: the `StationSync` service over TLS 1.3 with client
//! certificates required. A thin layer: it authenticates the peer from its
//! certificate, hands Hello and every batch to the ingest writer, and streams the
//! acknowledgements back in the order the batches came.
//!
//! Limits (G7): each message is at most `MAX_MESSAGE_BYTES`; a station has at most
//! `MAX_IN_FLIGHT` batches waiting for acknowledgement (beyond that its stream is
//! simply not read, so HTTP/2 flow control holds it back); at most
//! `MAX_CONNECTIONS_PER_STATION` push streams per station. A revoked or quarantined
//! station's open stream, or one whose key was replaced or retired meanwhile, is
//! ended within `REFUSAL_CHECK_INTERVAL_MS`.
//!
//! Every RPC (Hello, Push, Fetch) admits a peer only if its certificate's key is the
//! station's current enrolled key (`IngestHandle::check_peer`).

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pollsync_proto::limits::{MAX_IN_FLIGHT, MAX_MESSAGE_BYTES};
use pollsync_proto::pb::station_sync_server::{StationSync, StationSyncServer};
use pollsync_proto::pb::{
    self, Ack, FetchRequest, FetchedBatch, HelloReply, HelloRequest, PushMessage,
};
use pollsync_proto::tls;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::ingest::{HelloRefusal, IngestHandle, Peer, RefusalCode};

/// Push streams one station may hold open at once.
pub const MAX_CONNECTIONS_PER_STATION: usize = 2;
/// How often an open stream checks whether its station was revoked or quarantined.
pub const REFUSAL_CHECK_INTERVAL_MS: u64 = 500;

/// The PEM material the gRPC server presents and trusts.
pub struct TlsPems {
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub ca_cert_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("TLS configuration: {0}")]
    Tls(tonic::transport::Error),
    #[error("gRPC server: {0}")]
    Transport(tonic::transport::Error),
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Serve `StationSync` on `listener` until `shutdown` resolves, with the standard
/// gRPC health service (`grpc.health.v1`, reporting `pollsync.v1.StationSync`
/// serving) and server reflection (`grpc.reflection.v1` and `v1alpha`) beside it. Every call,
/// these included, needs a client certificate of the election's CA.
pub async fn serve_grpc(
    ingest: IngestHandle,
    tls_pems: &TlsPems,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    tls::install_crypto_provider();
    let config = tls::server_tls_config(
        &tls_pems.server_cert_pem,
        &tls_pems.server_key_pem,
        &tls_pems.ca_cert_pem,
    );
    let service = StationSyncServer::new(SyncService {
        ingest,
        streams: Arc::default(),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<StationSyncServer<SyncService>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pollsync_proto::FILE_DESCRIPTOR_SET)
    };
    // v1alpha beside v1: older grpcurl and grpc_cli only speak v1alpha.
    let (reflection_v1, reflection_v1alpha) =
        (reflection().build_v1()?, reflection().build_v1alpha()?);
    tonic::transport::Server::builder()
        .tls_config(config)
        .map_err(ServeError::Tls)?
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(tls::tcp_incoming(listener), shutdown)
        .await
        .map_err(ServeError::Transport)
}

struct SyncService {
    ingest: IngestHandle,
    /// Open push streams per station.
    streams: Arc<Mutex<HashMap<String, usize>>>,
}

fn refusal_status(r: HelloRefusal) -> Status {
    match r.code {
        RefusalCode::Unauthenticated => Status::unauthenticated(r.detail),
        RefusalCode::PermissionDenied => Status::permission_denied(r.detail),
        RefusalCode::FailedPrecondition => Status::failed_precondition(r.detail),
    }
}

/// Counts a push stream against its station's limit while it lives.
struct StreamSlot {
    station: String,
    streams: Arc<Mutex<HashMap<String, usize>>>,
}

impl StreamSlot {
    fn take(
        streams: &Arc<Mutex<HashMap<String, usize>>>,
        station: &str,
    ) -> Result<StreamSlot, Status> {
        let mut open = streams
            .lock()
            .map_err(|_| Status::internal("stream table poisoned"))?;
        let count = open.entry(station.to_string()).or_default();
        if *count >= MAX_CONNECTIONS_PER_STATION {
            return Err(Status::resource_exhausted(format!(
                "station {station} already has {MAX_CONNECTIONS_PER_STATION} open push streams"
            )));
        }
        *count += 1;
        Ok(StreamSlot {
            station: station.to_string(),
            streams: streams.clone(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.streams.lock()
            && let Some(count) = open.get_mut(&self.station)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.station);
            }
        }
    }
}

fn ends_the_call(ack: &Ack) -> bool {
    ack.kind == pb::AckKind::Rejected as i32
        && [
            pb::RejectReason::Revoked as i32,
            pb::RejectReason::Quarantined as i32,
            pb::RejectReason::StaleKey as i32,
        ]
        .contains(&ack.reason)
}

/// The peer its client certificate proves: station id and key.
fn peer_of<T>(request: &Request<T>) -> Result<Peer, Status> {
    let (station, key) = tls::peer_station(request)?;
    Ok(Peer {
        station,
        key: key.to_bytes(),
    })
}

type AckStream = Pin<Box<dyn Stream<Item = Result<Ack, Status>> + Send>>;
type FetchStream = Pin<Box<dyn Stream<Item = Result<FetchedBatch, Status>> + Send>>;

#[tonic::async_trait]
impl StationSync for SyncService {
    async fn hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let peer = peer_of(&request)?;
        let reply = self
            .ingest
            .hello(&peer, request.into_inner())
            .await
            .map_err(refusal_status)?;
        Ok(Response::new(reply))
    }

    type PushStream = AckStream;

    async fn push(
        &self,
        request: Request<Streaming<PushMessage>>,
    ) -> Result<Response<AckStream>, Status> {
        let peer = peer_of(&request)?;
        self.ingest.check_peer(&peer).map_err(refusal_status)?;
        let slot = StreamSlot::take(&self.streams, &peer.station)?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        tokio::spawn(pump(self.ingest.clone(), peer, inbound, tx, slot));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type FetchStream = FetchStream;

    async fn fetch(&self, request: Request<FetchRequest>) -> Result<Response<FetchStream>, Status> {
        let peer = peer_of(&request)?;
        let want = request.into_inner();
        if want.from_sequence == 0 || want.to_sequence < want.from_sequence {
            return Err(Status::invalid_argument(format!(
                "fetch of batches {} to {}: the range must start at 1 or later and not end before it starts",
                want.from_sequence, want.to_sequence
            )));
        }
        let ingest = self.ingest.clone();
        let batches = tokio::task::spawn_blocking(move || {
            ingest.fetch(&peer, want.from_sequence, want.to_sequence)
        })
        .await
        .map_err(|_| Status::internal("the fetch task failed"))?
        .map_err(refusal_status)?;
        Ok(Response::new(Box::pin(tokio_stream::iter(
            batches.into_iter().map(Ok),
        ))))
    }
}

/// One push stream: read batches while fewer than `MAX_IN_FLIGHT` await their
/// acknowledgement, forward acknowledgements in order, end the call on refusal.
async fn pump(
    ingest: IngestHandle,
    peer: Peer,
    mut inbound: Streaming<PushMessage>,
    tx: mpsc::Sender<Result<Ack, Status>>,
    _slot: StreamSlot,
) {
    let station = peer.station.clone();
    ingest.connection(&station, true);
    let mut waiting: VecDeque<tokio::sync::oneshot::Receiver<Ack>> = VecDeque::new();
    let mut check = tokio::time::interval(Duration::from_millis(REFUSAL_CHECK_INTERVAL_MS));
    let mut reading = true;
    // Why the station's side ended, when it was an error (e.g. an oversized message):
    // told to the station after the acknowledgements already due.
    let mut failure: Option<Status> = None;
    loop {
        tokio::select! {
            biased;
            ack = async { waiting.front_mut().expect("guarded by the branch condition").await }, if !waiting.is_empty() => {
                waiting.pop_front();
                let Ok(ack) = ack else {
                    let _ = tx.send(Err(Status::unavailable("the center is shutting down"))).await;
                    break;
                };
                let last = ends_the_call(&ack);
                if tx.send(Ok(ack)).await.is_err() || last {
                    break;
                }
            }
            message = inbound.message(), if reading && waiting.len() < MAX_IN_FLIGHT => match message {
                Ok(Some(PushMessage { kind: Some(pb::push_message::Kind::Batch(batch)) })) => {
                    waiting.push_back(ingest.submit_from(&peer, batch));
                }
                Ok(Some(PushMessage { kind: Some(pb::push_message::Kind::Heartbeat(hb)) })) => ingest.heartbeat(&station, &hb),
                Ok(Some(PushMessage { kind: None })) => {
                    let _ = tx.send(Err(Status::invalid_argument("a push message with neither batch nor heartbeat"))).await;
                    break;
                }
                // The station closed its side: answer what is in flight, then end.
                Ok(None) => reading = false,
                // A message that broke a limit or the connection: answer what is in
                // flight, then end with the reason.
                Err(status) => {
                    failure = Some(status);
                    reading = false;
                }
            },
            _ = check.tick() => {
                if let Some(reason) = ingest.refused(&peer) {
                    let _ = tx.send(Err(Status::permission_denied(format!("station {station} is refused: {}", reason.as_str_name())))).await;
                    break;
                }
            }
        }
        if !reading && waiting.is_empty() {
            if let Some(status) = failure.take() {
                let _ = tx.send(Err(status)).await;
            }
            break;
        }
    }
    ingest.connection(&station, false);
}
