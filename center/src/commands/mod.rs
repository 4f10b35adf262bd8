//! The center's offline commands (SPEC §7), one module each, as library functions
//! that return what happened; `main.rs` prints it (text or `--json`).
//!
//! - [`init`]: create the store, the election CA and the server certificate.
//! - [`enroll`]: issue enrollment bundles and record the stations' keys.
//! - [`revoke`]: refuse a station from now on.
//! - [`alerts`]: list every alert.
//! - [`import`]: ingest station export files through the network's own path.
//! - [`evidence`]: write the public record for anyone to verify.

pub mod alerts;
pub mod enroll;
pub mod evidence;
pub mod import;
pub mod init;
pub mod revoke;

pub use pollsync_proto::time::utc_time;
