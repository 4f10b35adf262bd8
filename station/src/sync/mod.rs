//! Sending sealed batches to the counting center (docs/PROTOCOL.md §7).
//!
//! - [`sender`]: the sans-IO state machine: what to send next, what the center now
//!   holds, what each acknowledgement means and what to do about it.
//! - [`client`]: the tokio driver around it: mTLS gRPC connection, Hello, the Push
//!   stream, heartbeats, recording acknowledgements in the store, reconnecting with
//!   backoff; and the two ways to use it, `station run` ([`client::run`]) and
//!   `station sync` ([`client::sync`]).
//! - [`backoff`]: exponential backoff with jitter between reconnection attempts.

pub mod backoff;
pub mod client;
pub mod sender;

pub use client::{Note, RunOptions, RunSummary, SyncError, SyncOptions, SyncSummary, run, sync};
pub use sender::{Sender, Terminal};
