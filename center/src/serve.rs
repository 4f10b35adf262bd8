//! `center serve`'s gRPC side: the `StationSync` service over TLS 1.3 with client
//! certificates required. A thin layer: it authenticates the peer from its
//! certificate, hands Hello and every batch to the ingest writer, and streams the
//! acknowledgements back in the order the batches came.
//!
//! Connections come through [`crate::listen`] (TLS 1.3 only, caps, handshake
//! timeout, TCP keepalive); HTTP/2 keepalive pings find a peer that vanished
//! silently within [`HTTP2_KEEPALIVE_INTERVAL_MS`] + [`HTTP2_KEEPALIVE_TIMEOUT_MS`].
//!
//! Limits (G7): each message is at most `MAX_MESSAGE_BYTES`; a station has at most
//! `MAX_IN_FLIGHT` batches waiting for acknowledgement (beyond that its stream is
//! simply not read, so HTTP/2 flow control holds it back); at most
//! `MAX_CONNECTIONS_PER_STATION` push streams per station, **the newest replacing
//! the oldest** (a link that died silently never locks its station out); a push
//! stream that sends nothing for [`PUSH_IDLE_TIMEOUT_MS`] while owed nothing is
//! ended. A revoked or quarantined station's open stream, or one whose key was
//! replaced or retired meanwhile, is ended within `REFUSAL_CHECK_INTERVAL_MS`.
//!
//! Every RPC (Hello, Push, Fetch) admits a peer only if its certificate's key is the
//! station's current enrolled key (`IngestHandle::check_peer`).
//!
//! Logged: each Hello accepted (info: station, key, peer address) and each call
//! refused (warn, at most [`REFUSAL_LOGS_PER_WINDOW`] a minute: station if known,
//! reason, detail); a push stream cut because its station is refused (warn), or
//! ended on an error (warn); push streams opening and closing (debug).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pollsync_proto::limits::{MAX_IN_FLIGHT, MAX_MESSAGE_BYTES};
use pollsync_proto::pb::station_sync_server::{StationSync, StationSyncServer};
use pollsync_proto::pb::{
    self, Ack, FetchRequest, FetchedBatch, HelloReply, HelloRequest, ProveReply, ProveRequest,
    PushMessage,
};
use pollsync_proto::tls;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::ingest::{HelloRefusal, IngestHandle, Peer, RefusalCode};
use crate::listen::{self, Limits};
use crate::logging::{Throttle, text};

/// Push streams one station may hold open at once; a newer one ends the oldest.
pub const MAX_CONNECTIONS_PER_STATION: usize = 2;
/// A push stream silent this long (no batch, no heartbeat) while nothing is owed
/// to it is ended: stations send a heartbeat every `HEARTBEAT_INTERVAL_MS`.
pub const PUSH_IDLE_TIMEOUT_MS: u64 = 4 * pollsync_proto::limits::HEARTBEAT_INTERVAL_MS;
/// Bytes of pushed batches that all streams together may have handed to the ingest
/// and not yet seen acknowledged (G7, P7). A stream whose next batch does not fit
/// waits (reading nothing more, so HTTP/2 flow control holds its sender back) while
/// it goes on answering; so memory is this budget plus at most one message being
/// read per stream.
pub const MAX_PUSH_BYTES_IN_FLIGHT: usize = 128 * 1024 * 1024;
/// The budget's unit.
const BUDGET_UNIT_BYTES: usize = 1024;
// Every batch in flight holds at least one unit, so the network alone can never
// fill the writer's queue.
const _: () =
    assert!(MAX_PUSH_BYTES_IN_FLIGHT / BUDGET_UNIT_BYTES < crate::ingest::MAX_QUEUED_JOBS);

/// The budget a batch's bytes take (at least one unit; a batch can never need more
/// than the whole budget).
fn budget_units(batch: Option<&pb::SignedBatch>) -> u32 {
    let bytes = batch.map_or(0, |b| b.batch.len() + b.signature.len());
    let units = bytes.div_ceil(BUDGET_UNIT_BYTES).max(1);
    u32::try_from(units.min(MAX_PUSH_BYTES_IN_FLIGHT / BUDGET_UNIT_BYTES)).unwrap_or(1)
}

/// HTTP/2 ping interval on every gRPC connection.
pub const HTTP2_KEEPALIVE_INTERVAL_MS: u64 = 10_000;
/// How long a ping may go unanswered before the connection is closed.
pub const HTTP2_KEEPALIVE_TIMEOUT_MS: u64 = 10_000;
/// How often an open stream checks whether its station was revoked or quarantined.
pub const REFUSAL_CHECK_INTERVAL_MS: u64 = 500;

/// Refused calls logged per minute at most (the rest are counted, and the count
/// is told with the next one logged): a refused device may retry all day.
pub const REFUSAL_LOGS_PER_WINDOW: u64 = 30;
/// The window of [`REFUSAL_LOGS_PER_WINDOW`].
const REFUSAL_LOG_WINDOW_MS: u64 = 60_000;
static REFUSAL_LOGS: Throttle = Throttle::new(REFUSAL_LOGS_PER_WINDOW, REFUSAL_LOG_WINDOW_MS);

/// Logs a station RPC refused before anything else happened on it.
fn log_refused(
    rpc: &'static str,
    station: Option<&str>,
    addr: Option<SocketAddr>,
    reason: &str,
    detail: &str,
) {
    let Some(suppressed) = REFUSAL_LOGS.admit() else {
        return;
    };
    let peer = addr.map(|a| a.to_string()).unwrap_or_default();
    match station {
        Some(station) => tracing::warn!(
            rpc,
            station = text(station),
            peer = %peer,
            reason,
            detail = text(detail),
            suppressed,
            "station refused"
        ),
        None => tracing::warn!(
            rpc,
            peer = %peer,
            reason,
            detail = text(detail),
            suppressed,
            "connection refused: no usable client certificate"
        ),
    }
}

/// Logs `refusal` of `rpc` from `peer`, and turns it into the status to answer.
fn refused(
    rpc: &'static str,
    peer: &Peer,
    addr: Option<SocketAddr>,
    refusal: HelloRefusal,
) -> Status {
    let station = (!peer.station.is_empty()).then_some(peer.station.as_str());
    log_refused(rpc, station, addr, refusal.code.name(), &refusal.detail);
    refusal_status(refusal)
}

/// The peer its client certificate proves, or the refusal (logged).
fn authenticated<T>(rpc: &'static str, request: &Request<T>) -> Result<Peer, Status> {
    peer_of(request).inspect_err(|status| {
        log_refused(
            rpc,
            None,
            request.remote_addr(),
            "UNAUTHENTICATED",
            status.message(),
        );
    })
}

/// The PEM material the gRPC server presents and trusts.
pub struct TlsPems {
    /// The center's server certificate (PEM), issued by the election CA.
    pub server_cert_pem: String,
    /// The server certificate's private key (PEM).
    pub server_key_pem: String,
    /// The election CA's certificate (PEM); station client certificates must chain to it.
    pub ca_cert_pem: String,
}

/// Why the gRPC server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The TLS configuration could not be built from the PEM material.
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    /// The gRPC transport failed (bind, accept or serve).
    #[error("gRPC server: {0}")]
    Transport(tonic::transport::Error),
    /// The reflection service could not be built.
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
    serve_grpc_with(ingest, tls_pems, listener, Limits::from_process(), shutdown).await
}

/// [`serve_grpc`] with chosen connection caps.
pub async fn serve_grpc_with(
    ingest: IngestHandle,
    tls_pems: &TlsPems,
    listener: TcpListener,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    tls::install_crypto_provider();
    let config = Arc::new(tls::server_rustls_config(
        &tls_pems.server_cert_pem,
        &tls_pems.server_key_pem,
        &tls_pems.ca_cert_pem,
    )?);
    let ingest_for_listen = ingest.clone();
    let service = StationSyncServer::new(SyncService {
        ingest,
        streams: Arc::default(),
        budget: Arc::new(Semaphore::new(MAX_PUSH_BYTES_IN_FLIGHT / BUDGET_UNIT_BYTES)),
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
    let incoming = listen::incoming(listener, config, limits, ingest_for_listen);
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_millis(HTTP2_KEEPALIVE_INTERVAL_MS)))
        .http2_keepalive_timeout(Some(Duration::from_millis(HTTP2_KEEPALIVE_TIMEOUT_MS)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(ServeError::Transport)
}

struct SyncService {
    ingest: IngestHandle,
    /// Open push streams per station, oldest first.
    streams: Streams,
    /// What is left of [`MAX_PUSH_BYTES_IN_FLIGHT`], in [`BUDGET_UNIT_BYTES`].
    budget: Arc<Semaphore>,
}

/// Per station, its open push streams (oldest first): an id and the way to end it.
type Streams = Arc<Mutex<HashMap<String, VecDeque<(u64, oneshot::Sender<()>)>>>>;

fn refusal_status(r: HelloRefusal) -> Status {
    match r.code {
        RefusalCode::Unauthenticated => Status::unauthenticated(r.detail),
        RefusalCode::PermissionDenied => Status::permission_denied(r.detail),
        RefusalCode::FailedPrecondition => Status::failed_precondition(r.detail),
        RefusalCode::NotFound => Status::not_found(r.detail),
        RefusalCode::Unavailable => Status::unavailable(r.detail),
    }
}

/// Counts a push stream against its station's limit while it lives.
struct StreamSlot {
    station: String,
    id: u64,
    streams: Streams,
}

/// Ids of push streams, in the order they opened.
static NEXT_STREAM_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl StreamSlot {
    /// A slot for a new push stream of `station`; if it has
    /// [`MAX_CONNECTIONS_PER_STATION`] already, the oldest is told to end (a link
    /// that died silently would otherwise hold its slot until keepalive notices).
    /// Returns the slot and the signal that ends this stream in turn.
    fn take(streams: &Streams, station: &str) -> (StreamSlot, oneshot::Receiver<()>) {
        let id = NEXT_STREAM_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (end, ended) = oneshot::channel();
        let mut open = streams.lock().unwrap_or_else(|p| p.into_inner());
        let mine = open.entry(station.to_string()).or_default();
        while mine.len() >= MAX_CONNECTIONS_PER_STATION {
            if let Some((_, oldest)) = mine.pop_front() {
                let _ = oldest.send(());
            }
        }
        mine.push_back((id, end));
        debug_assert!(mine.len() <= MAX_CONNECTIONS_PER_STATION);
        (
            StreamSlot {
                station: station.to_string(),
                id,
                streams: streams.clone(),
            },
            ended,
        )
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mine) = open.get_mut(&self.station) {
            mine.retain(|(id, _)| *id != self.id);
            if mine.is_empty() {
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
        let peer = authenticated("hello", &request)?;
        let addr = request.remote_addr();
        let hello = request.into_inner();
        let local_head = hello.local_head_sequence;
        let reply = self
            .ingest
            .hello(&peer, hello)
            .await
            .map_err(|r| refused("hello", &peer, addr, r))?;
        let station = text(&peer.station);
        let key_no = self.ingest.key_no(&peer.station).unwrap_or_default();
        let peer_addr = addr.map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(
            station = station.as_str(),
            key_no,
            peer = %peer_addr,
            local_head,
            center_head = reply.center_head_sequence,
            "station connected"
        );
        if reply.evidence_sequence > 0 {
            tracing::warn!(
                station = station.as_str(),
                sequence = reply.evidence_sequence,
                "the station's head differs from the center's batch: its signed batch is asked for (a fork is declared only if it verifies and differs)"
            );
        }
        Ok(Response::new(reply))
    }

    type PushStream = AckStream;

    async fn push(
        &self,
        request: Request<Streaming<PushMessage>>,
    ) -> Result<Response<AckStream>, Status> {
        let peer = authenticated("push", &request)?;
        let addr = request.remote_addr();
        self.ingest
            .check_peer(&peer)
            .map_err(|r| refused("push", &peer, addr, r))?;
        let (slot, replaced) = StreamSlot::take(&self.streams, &peer.station);
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        tokio::spawn(pump(
            self.ingest.clone(),
            peer,
            inbound,
            tx,
            slot,
            replaced,
            Arc::clone(&self.budget),
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type FetchStream = FetchStream;

    async fn fetch(&self, request: Request<FetchRequest>) -> Result<Response<FetchStream>, Status> {
        let peer = authenticated("fetch", &request)?;
        let addr = request.remote_addr();
        let want = request.into_inner();
        if want.from_sequence == 0 || want.to_sequence < want.from_sequence {
            return Err(Status::invalid_argument(format!(
                "fetch of batches {} to {}: the range must start at 1 or later and not end before it starts",
                want.from_sequence, want.to_sequence
            )));
        }
        let ingest = self.ingest.clone();
        let fetching = peer.clone();
        let batches = tokio::task::spawn_blocking(move || {
            ingest.fetch(&fetching, want.from_sequence, want.to_sequence)
        })
        .await
        .map_err(|_| Status::internal("the fetch task failed"))?
        .map_err(|r| refused("fetch", &peer, addr, r))?;
        tracing::info!(
            station = text(&peer.station),
            from = want.from_sequence,
            batches = batches.len(),
            "station fetched its stored batches (recovery)"
        );
        Ok(Response::new(Box::pin(tokio_stream::iter(
            batches.into_iter().map(Ok),
        ))))
    }

    async fn prove(&self, request: Request<ProveRequest>) -> Result<Response<ProveReply>, Status> {
        let peer = authenticated("prove", &request)?;
        let addr = request.remote_addr();
        let want = request.into_inner();
        let ingest = self.ingest.clone();
        let proving = peer.clone();
        let reply = tokio::task::spawn_blocking(move || {
            ingest.prove(&proving, want.sequence, want.known_size)
        })
        .await
        .map_err(|_| Status::internal("the proof task failed"))?;
        match reply {
            Ok(reply) => Ok(Response::new(reply)),
            // Not yet in a checkpoint, or no such batch: the station's own
            // question, not an attack; nothing to log beyond debug.
            Err(r) if matches!(r.code, RefusalCode::Unavailable | RefusalCode::NotFound) => {
                tracing::debug!(station = text(&peer.station), detail = %r.detail, "no receipt yet");
                Err(refusal_status(r))
            }
            Err(r) => Err(refused("prove", &peer, addr, r)),
        }
    }
}

/// One push stream: read batches while fewer than `MAX_IN_FLIGHT` await their
/// acknowledgement, forward acknowledgements in order, end the call on refusal.
async fn pump(
    ingest: IngestHandle,
    peer: Peer,
    mut inbound: Streaming<PushMessage>,
    tx: mpsc::Sender<Result<Ack, Status>>,
    slot: StreamSlot,
    mut replaced: oneshot::Receiver<()>,
    budget: Arc<Semaphore>,
) {
    let station = peer.station.clone();
    // A batch read but not yet handed on: it waits for its bytes' share of the
    // budget (while this stream goes on answering what it handed on before), and
    // nothing more is read meanwhile. An idle stream holds no budget.
    let mut unhanded: Option<pb::SignedBatch> = None;
    let idle_after = Duration::from_millis(PUSH_IDLE_TIMEOUT_MS);
    let mut heard = tokio::time::Instant::now();
    ingest.connection(&station, true);
    tracing::debug!(
        station = text(&station),
        stream = slot.id,
        "push stream opened"
    );
    // Each batch's acknowledgement to come, with the budget its bytes hold.
    let mut waiting: VecDeque<(oneshot::Receiver<Ack>, OwnedSemaphorePermit)> = VecDeque::new();
    let mut check = tokio::time::interval(Duration::from_millis(REFUSAL_CHECK_INTERVAL_MS));
    let mut reading = true;
    // Why the station's side ended, when it was an error (e.g. an oversized message):
    // told to the station after the acknowledgements already due.
    let mut failure: Option<Status> = None;
    loop {
        tokio::select! {
            biased;
            ack = async { (&mut waiting.front_mut().expect("guarded by the branch condition").0).await }, if !waiting.is_empty() => {
                waiting.pop_front();
                // The idle clock runs from the last thing either side said.
                heard = tokio::time::Instant::now();
                let Ok(ack) = ack else {
                    let _ = tx.send(Err(Status::unavailable("the center is shutting down"))).await;
                    break;
                };
                let last = ends_the_call(&ack);
                if tx.send(Ok(ack)).await.is_err() || last {
                    break;
                }
            }
            permit = Arc::clone(&budget).acquire_many_owned(budget_units(unhanded.as_ref())), if unhanded.is_some() => {
                let (Ok(held), Some(batch)) = (permit, unhanded.take()) else { break };
                waiting.push_back((ingest.submit_from(&peer, batch), held));
            }
            message = inbound.message(), if reading && unhanded.is_none() && waiting.len() < MAX_IN_FLIGHT => match message {
                Ok(Some(PushMessage { kind: Some(pb::push_message::Kind::Batch(batch)) })) => {
                    heard = tokio::time::Instant::now();
                    unhanded = Some(batch);
                }
                Ok(Some(PushMessage { kind: Some(pb::push_message::Kind::Heartbeat(hb)) })) => {
                    heard = tokio::time::Instant::now();
                    ingest.heartbeat(&station, &hb);
                }
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
            _ = &mut replaced => {
                tracing::debug!(station = text(&station), stream = slot.id, "push stream replaced by a newer one of the station");
                let _ = tx.send(Err(Status::aborted(format!("a newer push stream of station {station} replaced this one")))).await;
                break;
            }
            _ = tokio::time::sleep_until(heard + idle_after), if reading && waiting.is_empty() && unhanded.is_none() => {
                tracing::debug!(station = text(&station), stream = slot.id, "push stream idle: ended");
                let _ = tx.send(Err(Status::deadline_exceeded(format!("nothing received for {} s on this push stream", PUSH_IDLE_TIMEOUT_MS / 1_000)))).await;
                break;
            }
            _ = check.tick() => {
                if let Some(reason) = ingest.refused(&peer) {
                    tracing::warn!(
                        station = text(&station),
                        reason = crate::ingest::judge::reason_name(reason),
                        "push stream cut: the station is refused from now on"
                    );
                    let _ = tx.send(Err(Status::permission_denied(format!("station {station} is refused: {}", reason.as_str_name())))).await;
                    break;
                }
            }
        }
        if !reading && waiting.is_empty() && unhanded.is_none() {
            if let Some(status) = failure.take() {
                tracing::warn!(
                    station = text(&station),
                    code = ?status.code(),
                    error = text(status.message()),
                    "push stream ended on an error from the station's side"
                );
                let _ = tx.send(Err(status)).await;
            }
            break;
        }
    }
    ingest.connection(&station, false);
    tracing::debug!(
        station = text(&station),
        stream = slot.id,
        "push stream closed"
    );
}
