//! A test-only station client for the hostile-input tests: it speaks
//! `pollsync.v1.StationSync` over mutual TLS like a real station, but lets the
//! test choose every byte it sends.
//!
//! - [`Rogue`]: one TLS connection, with the certificate of an enrollment bundle or
//!   any certificate and key (another CA's, say); says Hello and opens Push calls.
//! - [`Push`]: one Push call whose messages are raw bytes, so that it can carry
//!   well-formed `PushMessage`s, garbage that is no protobuf at all, and messages
//!   larger than `MAX_MESSAGE_BYTES`; acknowledgements are read back in order.
//! - [`Forger`]: builds batches and signs them with a bundle's key (or another
//!   one) through `pollsync_proto::envelope`, chained after a head of its choice.
//! - [`tampered`] and [`against_first_mark`]: change a signed batch's content and
//!   keep its signature.
//!
//! Nothing here is used by the real station: `station::sync::client` is the client
//! that users run.

use std::fmt;
use std::time::Duration;

use pollsync_election::StationEvent;
use pollsync_proto::chain::ChainWriter;
use pollsync_proto::convert::event_to_pb;
use pollsync_proto::identity::{self, IdentityError};
use pollsync_proto::limits::MAX_MESSAGE_BYTES;
use pollsync_proto::pb;
use pollsync_proto::pb::station_sync_client::StationSyncClient;
use pollsync_proto::{ChainHead, EnrollmentBundle, chain_hash, seal_batch, tls};
use prost::Message as _;
use prost::bytes::BufMut as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder, Streaming};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// How long any one answer (Hello reply, opening a call, an acknowledgement) may
/// take before the rogue gives up on it.
pub const ANSWER_TIMEOUT_MS: u64 = 30_000;
/// Largest message the rogue encodes: well above what the center accepts, so that
/// oversized messages really go out.
pub const MAX_ROGUE_MESSAGE_BYTES: usize = 4 * MAX_MESSAGE_BYTES;
/// Messages queued towards the center before `send` waits.
const OUTBOX_MESSAGES: usize = 8;
/// gRPC path of `StationSync.Push`.
const PUSH_PATH: &str = "/pollsync.v1.StationSync/Push";

/// What went wrong on the rogue's side of a call.
#[derive(Debug)]
pub enum RogueError {
    /// The connection could not be made.
    Connect(tonic::transport::Error),
    /// The center ended the call (or refused it) with this status.
    Status(Status),
    /// The call ended cleanly where an acknowledgement was due.
    Ended,
    /// The call is over: nothing more can be sent on it.
    Closed,
    /// No answer within [`ANSWER_TIMEOUT_MS`].
    Timeout(&'static str),
    /// A key or certificate of the rogue's own material does not parse.
    Identity(IdentityError),
    /// A signed batch's bytes do not decode (so they cannot be tampered with).
    Decode(prost::DecodeError),
}

impl fmt::Display for RogueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RogueError::Connect(e) => write!(f, "cannot connect: {e}"),
            RogueError::Status(s) => write!(f, "status {:?}: {}", s.code(), s.message()),
            RogueError::Ended => write!(f, "the call ended without an acknowledgement"),
            RogueError::Closed => write!(f, "the call is over; nothing more can be sent"),
            RogueError::Timeout(what) => {
                write!(f, "no {what} within {ANSWER_TIMEOUT_MS} ms")
            }
            RogueError::Identity(e) => write!(f, "rogue identity: {e}"),
            RogueError::Decode(e) => write!(f, "batch bytes do not decode: {e}"),
        }
    }
}

impl std::error::Error for RogueError {}

impl RogueError {
    /// The center's status, if that is what this is.
    pub fn status(&self) -> Option<&Status> {
        match self {
            RogueError::Status(s) => Some(s),
            _ => None,
        }
    }
}

async fn answer<T>(what: &'static str, future: impl Future<Output = T>) -> Result<T, RogueError> {
    tokio::time::timeout(Duration::from_millis(ANSWER_TIMEOUT_MS), future)
        .await
        .map_err(|_| RogueError::Timeout(what))
}

/// One mutual-TLS connection to the center's gRPC address (clones share it).
#[derive(Clone)]
pub struct Rogue {
    channel: Channel,
}

impl Rogue {
    /// Connects to `address` (`HOST:PORT`) with `tls`. With a client certificate
    /// the server refuses, this may still succeed: TLS 1.3 lets the client finish
    /// before the server has judged its certificate, so the refusal shows on the
    /// first call.
    pub async fn connect(address: &str, tls: ClientTlsConfig) -> Result<Rogue, RogueError> {
        let endpoint = Endpoint::from_shared(format!("https://{address}"))
            .map_err(RogueError::Connect)?
            .tls_config(tls)
            .map_err(RogueError::Connect)?
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS));
        let channel = answer("connection", endpoint.connect())
            .await?
            .map_err(RogueError::Connect)?;
        Ok(Rogue { channel })
    }

    /// Connects as the station of `bundle` (its certificate and key), trusting the
    /// bundle's CA, to `address` rather than the bundle's own center address.
    pub async fn as_station(address: &str, bundle: &EnrollmentBundle) -> Result<Rogue, RogueError> {
        Rogue::with_certificate(
            address,
            &bundle.ca_cert_pem,
            &bundle.station_cert_pem,
            &bundle.station_key_pem,
        )
        .await
    }

    /// Connects with any client certificate and key (PEM), trusting `ca_cert_pem`
    /// for the center's certificate.
    pub async fn with_certificate(
        address: &str,
        ca_cert_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Rogue, RogueError> {
        tls::install_crypto_provider();
        let config = tls::client_tls_config(
            ca_cert_pem,
            cert_pem,
            key_pem,
            &identity::server_name_of(address),
        );
        Rogue::connect(address, config).await
    }

    /// Says Hello with whatever `request` holds.
    pub async fn hello(&self, request: pb::HelloRequest) -> Result<pb::HelloReply, RogueError> {
        let mut client = StationSyncClient::new(self.channel.clone());
        answer("Hello reply", client.hello(request))
            .await?
            .map(tonic::Response::into_inner)
            .map_err(RogueError::Status)
    }

    /// Opens a Push call.
    pub async fn push(&self) -> Result<Push, RogueError> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone())
            .max_encoding_message_size(MAX_ROGUE_MESSAGE_BYTES)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        answer("channel ready", grpc.ready())
            .await?
            .map_err(|e| RogueError::Status(Status::unavailable(e.to_string())))?;
        let (tx, rx) = mpsc::channel::<Vec<u8>>(OUTBOX_MESSAGES);
        let request = tonic::Request::new(ReceiverStream::new(rx));
        let acks = answer(
            "Push call",
            grpc.streaming(request, PathAndQuery::from_static(PUSH_PATH), RawCodec),
        )
        .await?
        .map_err(RogueError::Status)?
        .into_inner();
        Ok(Push { tx: Some(tx), acks })
    }
}

/// One open Push call: raw messages go out, acknowledgements come back.
pub struct Push {
    tx: Option<mpsc::Sender<Vec<u8>>>,
    acks: Streaming<pb::Ack>,
}

impl Push {
    /// Sends `bytes` as one gRPC message, whatever they are.
    pub async fn send_raw(&self, bytes: Vec<u8>) -> Result<(), RogueError> {
        let tx = self.tx.as_ref().ok_or(RogueError::Closed)?;
        answer("room to send", tx.send(bytes))
            .await?
            .map_err(|_| RogueError::Closed)
    }

    /// Sends a `PushMessage`.
    pub async fn send(&self, message: &pb::PushMessage) -> Result<(), RogueError> {
        self.send_raw(message.encode_to_vec()).await
    }

    /// Sends one signed batch.
    pub async fn send_batch(&self, batch: pb::SignedBatch) -> Result<(), RogueError> {
        self.send(&pb::PushMessage::batch(batch)).await
    }

    /// The next item of the acknowledgement stream; `Ok(None)` when the call
    /// ended cleanly.
    pub async fn next(&mut self) -> Result<Option<pb::Ack>, RogueError> {
        answer("acknowledgement", self.acks.message())
            .await?
            .map_err(RogueError::Status)
    }

    /// The next acknowledgement; an error if the call ended instead.
    pub async fn ack(&mut self) -> Result<pb::Ack, RogueError> {
        self.next().await?.ok_or(RogueError::Ended)
    }

    /// Sends one batch and waits for its acknowledgement.
    pub async fn push(&mut self, batch: pb::SignedBatch) -> Result<pb::Ack, RogueError> {
        self.send_batch(batch).await?;
        self.ack().await
    }

    /// Sends every message of `messages` without waiting (more than the center's
    /// window may be under way), and reads one acknowledgement per message.
    pub async fn pipeline(&mut self, messages: Vec<Vec<u8>>) -> Result<Vec<pb::Ack>, RogueError> {
        let tx = self.tx.clone().ok_or(RogueError::Closed)?;
        let count = messages.len();
        // A task sends while this one reads: the center stops reading beyond its
        // window until acknowledgements are taken.
        let sender = tokio::spawn(async move {
            for m in messages {
                if tx.send(m).await.is_err() {
                    break;
                }
            }
        });
        let mut acks = Vec::with_capacity(count);
        let read = async {
            while acks.len() < count {
                acks.push(self.ack().await?);
            }
            Ok::<(), RogueError>(())
        }
        .await;
        sender.abort();
        read.map(|()| acks)
    }

    /// Sends every batch of `batches` pipelined and reads their acknowledgements.
    pub async fn push_all(
        &mut self,
        batches: &[pb::SignedBatch],
    ) -> Result<Vec<pb::Ack>, RogueError> {
        let messages = batches
            .iter()
            .map(|b| pb::PushMessage::batch(b.clone()).encode_to_vec())
            .collect();
        self.pipeline(messages).await
    }

    /// Half-closes the call and waits for the center to end it; `Ok` only if it
    /// ended cleanly with no acknowledgement left.
    pub async fn finish(mut self) -> Result<(), RogueError> {
        self.tx = None;
        match self.next().await? {
            None => Ok(()),
            Some(ack) => Err(RogueError::Status(Status::internal(format!(
                "an unexpected acknowledgement after the end: {ack:?}"
            )))),
        }
    }
}

/// Sends raw bytes as messages and decodes `Ack`s.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = pb::Ack;
    type Encoder = RawEncoder;
    type Decoder = AckDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> AckDecoder {
        AckDecoder
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct AckDecoder;

impl Decoder for AckDecoder {
    type Item = pb::Ack;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<pb::Ack>, Status> {
        pb::Ack::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("an Ack that does not decode: {e}")))
    }
}

/// Builds a station's batches and signs them like its device would, with any key
/// (`proto::chain::ChainWriter`, the station's own batch builder).
#[derive(Clone, Debug)]
pub struct Forger {
    chain: ChainWriter,
}

impl Forger {
    /// The station of `bundle`, signing with its key, from the genesis head.
    pub fn new(bundle: &EnrollmentBundle) -> Forger {
        Forger {
            chain: ChainWriter::from_bundle(bundle).expect("the bundle's station key parses"),
        }
    }

    /// Signs with the key of another bundle's station from now on.
    pub fn signing_as(mut self, other: &EnrollmentBundle) -> Forger {
        let key = other
            .signing_key()
            .expect("the other bundle's station key parses");
        self.chain = self.chain.signing_with(key);
        self
    }

    /// Chains the next batch after `head`.
    pub fn after(mut self, head: ChainHead) -> Forger {
        self.chain = self.chain.after(head);
        self
    }

    /// The head the next batch is chained after.
    pub fn head(&self) -> ChainHead {
        self.chain.head()
    }

    /// The next batch holding `events`, unsigned (the head does not move).
    pub fn batch(&self, events: &[StationEvent]) -> pb::Batch {
        self.chain
            .unsigned(events.iter().map(event_to_pb).collect())
    }

    /// Signs `batch` (whatever it holds) with this forger's key.
    pub fn sign(&self, batch: &pb::Batch) -> Result<pb::SignedBatch, RogueError> {
        Ok(seal_batch(self.chain.key(), batch))
    }

    /// The next batch holding `events`, signed; the head moves past it.
    pub fn seal(&mut self, events: &[StationEvent]) -> Result<pb::SignedBatch, RogueError> {
        Ok(self.chain.next(events.iter().map(event_to_pb).collect()))
    }

    /// The Hello of a device whose sealed head is this forger's head.
    pub fn hello(&self) -> pb::HelloRequest {
        self.chain.hello()
    }
}

/// The head a signed batch leads to: its sequence and chain hash.
pub fn head_of(signed: &pb::SignedBatch) -> Result<ChainHead, RogueError> {
    let batch = pb::Batch::decode(signed.batch.as_slice()).map_err(RogueError::Decode)?;
    Ok(ChainHead {
        sequence: batch.sequence,
        hash: chain_hash(&signed.batch),
    })
}

/// `signed` with its batch decoded, changed by `change` and encoded again; the
/// signature is kept as it was, so it no longer matches the bytes.
pub fn tampered(
    signed: &pb::SignedBatch,
    change: impl FnOnce(&mut pb::Batch),
) -> Result<pb::SignedBatch, RogueError> {
    let mut batch = pb::Batch::decode(signed.batch.as_slice()).map_err(RogueError::Decode)?;
    change(&mut batch);
    Ok(pb::SignedBatch {
        batch: batch.encode_to_vec(),
        signature: signed.signature.clone(),
    })
}

/// Turns the first mark of the first ballot into AGAINST (or, if it was AGAINST,
/// into no mark): the ballot stays valid, only what it says changes. Returns
/// false if the batch has no ballot with a mark.
pub fn against_first_mark(batch: &mut pb::Batch) -> bool {
    const NONE: u8 = 0;
    const AGAINST: u8 = 2;
    for event in &mut batch.events {
        if let Some(pb::event::Kind::Ballot(ballot)) = &mut event.kind
            && let Some(mark) = ballot.marks.first_mut()
        {
            *mark = if *mark == AGAINST { NONE } else { AGAINST };
            return true;
        }
    }
    false
}
