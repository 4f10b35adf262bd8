//! pollsync-proto: the wire protocol shared by stations and the center.
//!
//! - [`pb`]: the generated protobuf messages and tonic services of package
//!   `pollsync.v1` (`proto/pollsync/v1/pollsync.proto`).
//! - [`envelope`]: the signed-batch envelope (sign, verify) and the hash chain.
//! - [`convert`]: election events to and from their wire form.
//! - [`shape`]: definition-independent checks of the events inside a batch.
//! - [`identity`]: the election CA and the Ed25519 certificates of center and stations.
//! - [`bundle`]: station enrollment bundles (JSON, written mode 0600).
//! - [`export`]: the station export file carried by hand (USB).
//! - [`tls`]: tonic mTLS configuration and peer identity helpers.
//! - [`limits`]: the named protocol limits.
//! - [`wire`]: repeated-field counts checked on raw protobuf bytes before decoding.
//!
//! docs/PROTOCOL.md describes every byte for third-party verifiers.

pub mod bundle;
pub mod chain;
pub mod convert;
pub mod envelope;
pub mod export;
pub mod fsutil;
pub mod identity;
pub mod limits;
pub mod logging;
mod messages;
pub mod output;
pub mod shape;
pub mod time;
pub mod tlog;
pub mod tls;
pub mod wire;

/// Generated protobuf messages and gRPC services of package `pollsync.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/pollsync.v1.rs"));
}

/// The encoded `FileDescriptorSet` of the pollsync protos (for tonic-reflection's
/// `register_encoded_file_descriptor_set`).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/pollsync_descriptor.bin"));

pub use bundle::{BundleError, EnrollmentBundle};
pub use envelope::{
    ChainError, ChainHead, EnvelopeError, GENESIS_HASH, SIGNATURE_DOMAIN, VerifyBatchesError,
    chain_hash, check_chain, check_chain_from, decode_batch, definition_sha256, seal_batch,
    sign_batch, verify_batch, verify_batches,
};
pub use export::{EXPORT_MAGIC, ExportError, read_export, write_export};
pub use identity::{
    CertifiedKeyPem, ElectionCa, IdentityError, signing_key_from_pem, station_id_from_cert_der,
    verifying_key_from_cert_der,
};

#[cfg(test)]
mod tests {
    #[test]
    fn descriptor_set_names_the_package_and_services() {
        let set = super::FILE_DESCRIPTOR_SET;
        let has = |needle: &[u8]| set.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"pollsync/v1/pollsync.proto"));
        assert!(has(b"StationSync"));
        assert!(has(b"Monitor"));
        assert!(has(b"StationExport"));
    }
}
