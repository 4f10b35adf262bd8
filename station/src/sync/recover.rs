//! `station recover`: bring back from the center the batches of this station that
//! this device lacks, after checking every one of them itself.
//!
//! Two cases, both on the center's chain (docs/PROTOCOL.md §7.3):
//! - a device restored from a backup is *behind* the center with the same hash at
//!   its head: it fetches the batches after its head, up to the center's head;
//! - a replacement device (`center enroll --replace`) starts its chain at the head
//!   its bundle carried: it fetches the station's batches before that, so that its
//!   own records (`station tally`, `close --from-records`) hold the whole day.
//!
//! A device whose chain differs from the center's (the center asks for evidence at
//! Hello) is a fork and cannot recover. Each fetched batch must be signed by a key
//! whose certificate the election CA issued to this station (a replaced device's
//! batches carry its old certificate), decode, name this election, station and
//! definition, and link to the one before; the last must hash to what the center's
//! Hello (or the bundle) said. Nothing is stored unless all of them check out, and
//! then in one transaction ([`Store::recover`]).

use std::path::Path;
use std::time::Duration;

use pollsync_proto::envelope::{self, ChainHead};
use pollsync_proto::limits::{MAX_FETCH_BATCHES, MAX_MESSAGE_BYTES};
use pollsync_proto::pb;
use pollsync_proto::pb::station_sync_client::StationSyncClient;
use pollsync_proto::{EnrollmentBundle, identity};
use tokio::time::timeout;
use tokio_stream::StreamExt as _;

use super::client::{CONNECT_TIMEOUT_MS, HELLO_TIMEOUT_MS, hello_request};
use super::connect::CenterLink;
use crate::error::StationError;
use crate::store::{
    META_CENTER_REACHED, Provisioned, Recovered, RecoveredBatch, Store, trying_order,
};
use tonic::transport::Channel;

/// Why a recovery did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The station's store or enrollment could not be used.
    #[error(transparent)]
    Station(#[from] StationError),
    /// Connecting, Hello or fetching failed or timed out.
    #[error("cannot reach the center at {center}: {reason}")]
    Unreachable {
        /// The center's address.
        center: String,
        /// Why it could not be reached.
        reason: String,
    },
    /// The center answered Hello or a fetch with an error status.
    #[error("the center at {center} refused this station: {message}")]
    Refused {
        /// The center's address.
        center: String,
        /// The status code and the center's words.
        message: String,
    },
    #[error(
        "this device's batch {sequence} is not the center's: the chains forked (a clone, or a backup that sealed anew). It cannot recover; `station sync` sends the center its signed batch as evidence. Call an operator"
    )]
    /// This device's chain differs from the center's.
    Forked {
        /// The sequence at which they differ.
        sequence: u64,
    },
    #[error(
        "batch {sequence} fetched from the center does not check out: {reason}; nothing was recovered"
    )]
    /// A fetched batch failed its checks.
    BadBatch {
        /// The batch's sequence.
        sequence: u64,
        /// Which check it failed.
        reason: String,
    },
    #[error("the center sent {got} of the batches {from} to {to}; nothing was recovered")]
    /// The center did not send exactly the batches asked for.
    Short {
        /// The first sequence asked for.
        from: u64,
        /// The last sequence asked for.
        to: u64,
        /// How many batches arrived (counting stops one past the range).
        got: u64,
    },
}

/// What `station recover` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecoverReport {
    /// The center's head for this station.
    pub center_head: u64,
    /// This device's head before.
    pub local_head_before: u64,
    /// This device's head after.
    pub local_head_after: u64,
    /// What was stored.
    pub recovered: Recovered,
}

/// Checks batches fetched from the center: each is signed under a certificate the
/// bundle's CA issued to this station, decodes, names this election, station and
/// definition, has the next sequence and links to `links_to`. Returns them with
/// the head they end at.
pub fn verify_fetched(
    bundle: &EnrollmentBundle,
    links_to: ChainHead,
    fetched: &[pb::FetchedBatch],
) -> Result<(Vec<RecoveredBatch>, ChainHead), RecoverError> {
    let ca_der = identity::cert_der_from_pem(&bundle.ca_cert_pem).map_err(StationError::from)?;
    let definition = bundle.definition_sha256();
    let mut head = links_to;
    let mut out = Vec::with_capacity(fetched.len());
    for f in fetched {
        let sequence = head.next_sequence();
        let bad = |reason: String| RecoverError::BadBatch { sequence, reason };
        let signed = f
            .batch
            .as_ref()
            .ok_or_else(|| bad("the center sent no batch".into()))?;
        identity::verify_issued_by(&f.signer_cert_der, &ca_der)
            .map_err(|e| bad(format!("its certificate is not from the election CA: {e}")))?;
        let cn = identity::station_id_from_cert_der(&f.signer_cert_der)
            .map_err(|e| bad(format!("its certificate: {e}")))?;
        if cn != bundle.station_id {
            return Err(bad(format!(
                "signed with station {cn:?}'s certificate, not this station's"
            )));
        }
        let key = identity::verifying_key_from_cert_der(&f.signer_cert_der)
            .map_err(|e| bad(format!("its certificate: {e}")))?;
        envelope::verify_batch(&key, signed).map_err(|e| bad(e.to_string()))?;
        let batch = envelope::decode_batch(signed).map_err(|e| bad(e.to_string()))?;
        if batch.election_id != bundle.election_id || batch.station_id != bundle.station_id {
            return Err(bad(format!(
                "it names election {:?} and station {:?}",
                batch.election_id, batch.station_id
            )));
        }
        if batch.definition_sha256.as_slice() != definition.as_slice() {
            return Err(bad("it was sealed under another election definition".into()));
        }
        if batch.sequence != sequence {
            return Err(bad(format!("it says it is batch {}", batch.sequence)));
        }
        if batch.prev_hash.as_slice() != head.hash.as_slice() {
            return Err(bad(format!(
                "it does not link to batch {} ({})",
                head.sequence,
                head.hash_hex()
            )));
        }
        let hash = envelope::chain_hash(&signed.batch);
        head = ChainHead { sequence, hash };
        out.push(RecoveredBatch {
            sequence,
            hash,
            signed: signed.clone(),
            events: batch.events,
        });
    }
    Ok((out, head))
}

/// Fetches batches `from..=to` of this station, `MAX_FETCH_BATCHES` per call, and
/// checks them against `links_to` and, at the end, `ends_at`.
async fn fetch_range(
    client: &mut StationSyncClient<tonic::transport::Channel>,
    bundle: &EnrollmentBundle,
    center: &str,
    links_to: ChainHead,
    to: u64,
    ends_at: [u8; 32],
) -> Result<Vec<RecoveredBatch>, RecoverError> {
    let from = links_to.next_sequence();
    let mut head = links_to;
    let mut all = Vec::new();
    while head.sequence < to {
        let first = head.next_sequence();
        let last = to.min(first + MAX_FETCH_BATCHES - 1);
        let call = client.fetch(pb::FetchRequest {
            from_sequence: first,
            to_sequence: last,
        });
        let wait = Duration::from_millis(HELLO_TIMEOUT_MS);
        let mut stream = timeout(wait, call)
            .await
            .map_err(|_| unreachable(center, "timed out asking for batches".into()))?
            .map_err(|s| refused(center, &s))?
            .into_inner();
        let mut got = Vec::new();
        while let Some(item) = timeout(wait, stream.next())
            .await
            .map_err(|_| unreachable(center, "timed out receiving batches".into()))?
        {
            got.push(item.map_err(|s| refused(center, &s))?);
            if got.len() as u64 > last - first + 1 {
                break;
            }
        }
        if got.len() as u64 != last - first + 1 {
            return Err(RecoverError::Short {
                from: first,
                to: last,
                got: got.len() as u64,
            });
        }
        let (checked, new_head) = verify_fetched(bundle, head, &got)?;
        head = new_head;
        all.extend(checked);
    }
    if head.hash != ends_at {
        return Err(RecoverError::BadBatch {
            sequence: to,
            reason: format!(
                "batches {from} to {to} end at chain hash {}, not the {} they must end at",
                head.hash_hex(),
                hex::encode(ends_at)
            ),
        });
    }
    Ok(all)
}

fn unreachable(center: &str, reason: String) -> RecoverError {
    RecoverError::Unreachable {
        center: center.to_owned(),
        reason,
    }
}

fn refused(center: &str, status: &tonic::Status) -> RecoverError {
    RecoverError::Refused {
        center: center.to_owned(),
        message: format!("{:?}: {}", status.code(), status.message()),
    }
}

/// Says Hello at each of `centers` in turn, stopping at the first that answers
/// (an error status is an answer: refused); returns that address, its client and
/// the reply.
async fn hello_first_answering(
    prov: &Provisioned,
    head: ChainHead,
    centers: &[String],
) -> Result<(String, StationSyncClient<Channel>, pb::HelloReply), RecoverError> {
    let mut failures = Vec::new();
    for center in centers {
        match hello_at(prov, head, center).await {
            Ok((client, reply)) => return Ok((center.clone(), client, reply)),
            Err(RecoverError::Unreachable { reason, .. }) => {
                failures.push(format!("{center}: {reason}"));
            }
            Err(other) => return Err(other),
        }
    }
    Err(unreachable(&centers.join(", "), failures.join("; ")))
}

/// Connects to the center at `center` and says Hello.
async fn hello_at(
    prov: &Provisioned,
    head: ChainHead,
    center: &str,
) -> Result<(StationSyncClient<Channel>, pb::HelloReply), RecoverError> {
    let link =
        CenterLink::for_address(prov, center).map_err(|e| unreachable(center, e.to_string()))?;
    let channel = timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), link.connect())
        .await
        .map_err(|_| unreachable(center, "timed out connecting".into()))?
        .map_err(|e| unreachable(center, e.to_string()))?;
    let mut client = StationSyncClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let reply = timeout(
        Duration::from_millis(HELLO_TIMEOUT_MS),
        client.hello(hello_request(prov, head)),
    )
    .await
    .map_err(|_| unreachable(center, "timed out waiting for the Hello reply".into()))?
    .map_err(|s| refused(center, &s))?
    .into_inner();
    Ok((client, reply))
}

/// `station recover`: at the center's first address that answers, the one last
/// reached first.
pub async fn recover(dir: &Path) -> Result<RecoverReport, RecoverError> {
    let store = Store::open(dir)?;
    let prov = store.provisioned()?;
    let head = store.head()?;
    let start = store.chain_start()?;
    let first_held = store.first_held()?;
    let centers = trying_order(&prov.center_addresses, store.center_reached()?.as_deref());
    let (center, mut client, reply) = hello_first_answering(&prov, head, &centers).await?;
    store.set_meta(META_CENTER_REACHED, center.as_bytes())?;
    if reply.evidence_sequence > 0 {
        return Err(RecoverError::Forked {
            sequence: reply.evidence_sequence,
        });
    }
    let center_head = ChainHead {
        sequence: reply.center_head_sequence,
        hash: <[u8; 32]>::try_from(reply.center_head_hash.as_slice()).map_err(|_| {
            RecoverError::BadBatch {
                sequence: reply.center_head_sequence,
                reason: "the center's head hash is not 32 bytes".into(),
            }
        })?,
    };
    if center_head.sequence < head.sequence
        && let Some(ours) = store.hash_at(center_head.sequence)?
        && center_head.sequence > 0
        && ours != center_head.hash
    {
        return Err(RecoverError::Forked {
            sequence: center_head.sequence,
        });
    }
    // A replacement device's history: batches 1..=start, unless held already.
    let history = if start.sequence > 0 && first_held.is_none_or(|f| f > start.sequence) {
        fetch_range(
            &mut client,
            &prov.bundle,
            &center,
            ChainHead::default(),
            start.sequence,
            start.hash,
        )
        .await?
    } else {
        Vec::new()
    };
    // A restored backup's lost batches: head+1..=center head.
    let forward = if center_head.sequence > head.sequence {
        fetch_range(
            &mut client,
            &prov.bundle,
            &center,
            head,
            center_head.sequence,
            center_head.hash,
        )
        .await?
    } else {
        Vec::new()
    };
    let mut store = store;
    let recovered = store.recover(head, &history, &forward)?;
    Ok(RecoverReport {
        center_head: center_head.sequence,
        local_head_before: head.sequence,
        local_head_after: store.head()?.sequence,
        recovered,
    })
}
