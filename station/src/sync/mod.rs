//! Sending sealed batches to the counting center (docs/PROTOCOL.md §7).
//!
//! - [`sender`]: the sans-IO state machine: what to send next, what the center now
//!   holds, what each acknowledgement means and what to do about it.
//! - [`core`]: the sans-IO core around the sender, with time as an input: the
//!   phases and deadlines of a connection (heartbeats, ack silence, give-up), the
//!   goal of `station sync`, the seal hold, what a refusal means.
//! - [`client`]: the tokio driver around the core, split by job: the mTLS gRPC
//!   session (Hello, the Push stream, heartbeats when the core says), recording
//!   acknowledgements in the store, sealing beside `station run`, reconnecting with
//!   backoff; and the two ways to use it, `station run` ([`client::run()`]) and
//!   `station sync` ([`client::sync()`]). It moves bytes, does store I/O and sleeps
//!   until the core's next deadline.
//! - [`connect`]: TCP, then TLS 1.3 only with the station's certificate, under gRPC.
//! - [`recover`]: `station recover`, fetching back this station's batches that the
//!   device lacks (a restored backup, a replacement device's history), each checked.
//! - [`backoff`]: exponential backoff with jitter between reconnection attempts.

pub mod backoff;
pub mod client;
pub mod connect;
pub mod core;
pub mod receipt;
pub mod recover;
pub mod sender;

pub use client::{Note, RunOptions, RunSummary, SyncError, SyncOptions, SyncSummary, run, sync};
pub use sender::{Sender, Terminal};
