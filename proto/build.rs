//! Compiles `proto/pollsync/v1/pollsync.proto` with the pure-Rust `protox`
//! (no system `protoc`), generates the prost messages and tonic services, and
//! writes the encoded `FileDescriptorSet` to `OUT_DIR` for gRPC reflection.

use std::path::PathBuf;

use prost::Message as _;

const PROTO_ROOT: &str = "proto";
const PROTO_FILES: &[&str] = &["proto/pollsync/v1/pollsync.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // compile_fds emits no rerun-if-changed lines: say it ourselves.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }

    let fds = protox::compile(PROTO_FILES, [PROTO_ROOT])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // compile_fds ignores file_descriptor_set_path(): encode the set ourselves.
    std::fs::write(out_dir.join("pollsync_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
