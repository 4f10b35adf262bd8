//! A benchmark station's connection to the center: its own mutual-TLS channel
//! with its enrolled certificate, a Hello, and a Push stream on which it sends
//! signed batches pipelined within the window the center announced, insisting that
//! every one is answered ACCEPTED. Lighter than `station run` (no store), so that
//! thousands fit in one process and the measured time is the center's.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, bail};
use pollsync_proto::pb::station_sync_client::StationSyncClient;
use pollsync_proto::pb::{self, AckKind, push_message};
use pollsync_proto::{ChainHead, EnrollmentBundle};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Endpoint;

/// Longest a connection may take to set up.
pub const CONNECT_TIMEOUT_MS: u64 = 60_000;

/// An open Push stream.
pub struct Link {
    pub station: String,
    tx: mpsc::Sender<pb::PushMessage>,
    acks: Streaming<pb::Ack>,
    window: usize,
}

impl Link {
    /// Connect to `address` as the bundle's station, say Hello with `head` (the
    /// station's sealed head), and open the Push stream.
    pub async fn open(
        address: &str,
        bundle: &EnrollmentBundle,
        head: ChainHead,
    ) -> anyhow::Result<Link> {
        let station = bundle.station_id.clone();
        let channel = Endpoint::from_shared(format!("https://{address}"))?
            .tls_config(bundle.client_tls_config())?
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("{station}: connect"))?;
        let mut client = StationSyncClient::new(channel)
            .max_decoding_message_size(pollsync_proto::limits::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(pollsync_proto::limits::MAX_MESSAGE_BYTES);
        let reply = client
            .hello(pollsync_proto::chain::hello_of(bundle, head))
            .await
            .with_context(|| format!("{station}: hello"))?
            .into_inner();
        let window = (reply.max_in_flight as usize).max(1);
        let (tx, rx) = mpsc::channel::<pb::PushMessage>(window);
        // A heartbeat at the announced interval, as a station sends when idle: the
        // center ends push streams that stay silent.
        // It holds the stream only weakly: dropping the link ends the stream.
        let beat = tx.downgrade();
        let every = Duration::from_millis(u64::from(reply.heartbeat_interval_ms).max(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(tx) = beat.upgrade() else { return };
                if tx.send(pb::PushMessage::heartbeat(0, 0)).await.is_err() {
                    return;
                }
            }
        });
        let acks = client
            .push(ReceiverStream::new(rx))
            .await
            .with_context(|| format!("{station}: push"))?
            .into_inner();
        Ok(Link {
            station,
            tx,
            acks,
            window,
        })
    }

    /// Send `count` copies of `batch` as fast as the window allows, reading the
    /// answers, whatever they are (a hostile station's flood). Returns how many
    /// were answered.
    pub async fn flood(&mut self, batch: &pb::SignedBatch, count: usize) -> anyhow::Result<usize> {
        let (mut sent, mut answered) = (0usize, 0usize);
        while answered < count {
            while sent < count && sent - answered < self.window {
                self.tx
                    .send(pb::PushMessage {
                        kind: Some(push_message::Kind::Batch(batch.clone())),
                    })
                    .await
                    .map_err(|_| anyhow::anyhow!("{}: the stream closed", self.station))?;
                sent += 1;
            }
            match self.acks.message().await {
                Ok(Some(_)) => answered += 1,
                Ok(None) | Err(_) => break,
            }
        }
        Ok(answered)
    }

    /// Send every batch, at most the window unanswered at once; each must be
    /// ACCEPTED, in order.
    pub async fn push_all(&mut self, batches: Vec<pb::SignedBatch>) -> anyhow::Result<()> {
        let mut unanswered: VecDeque<u64> = VecDeque::new();
        let mut batches = batches.into_iter();
        loop {
            while unanswered.len() < self.window {
                let Some(batch) = batches.next() else { break };
                let sequence = pollsync_proto::envelope::decode_batch_bytes(&batch.batch)
                    .map(|b| b.sequence)
                    .unwrap_or(0);
                self.tx
                    .send(pb::PushMessage {
                        kind: Some(push_message::Kind::Batch(batch)),
                    })
                    .await
                    .map_err(|_| anyhow::anyhow!("{}: the stream closed", self.station))?;
                unanswered.push_back(sequence);
            }
            let Some(expected) = unanswered.pop_front() else {
                return Ok(());
            };
            let ack = self
                .acks
                .message()
                .await
                .with_context(|| format!("{}: stream", self.station))?
                .with_context(|| format!("{}: the stream ended", self.station))?;
            if ack.kind() != AckKind::Accepted || ack.sequence != expected {
                bail!(
                    "{}: batch {expected} answered {:?} for batch {}: {}",
                    self.station,
                    ack.kind(),
                    ack.sequence,
                    ack.detail
                );
            }
        }
    }
}
