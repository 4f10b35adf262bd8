//! `center serve --config FILE` as an operator runs it: a file with a mistake stops
//! the center before it listens, naming the file, the line and the key.

use std::process::Command;

#[test]
fn serve_refuses_a_configuration_with_an_unknown_key_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("center.toml");
    std::fs::write(&config, "grpc = \"127.0.0.1:0\"\n\nmax_conections = 10\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_center"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("center runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("center.toml") && err.contains("line 3") && err.contains("max_conections"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing listened");
}
