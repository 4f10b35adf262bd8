//! The evidence folder (docs/PROTOCOL.md §10.1), read with a bound on every file,
//! and the steps that need nothing else: V1 the definition, V2 the CA, V3 the log
//! key, V4 the checkpoint.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use pollsync_election::{ElectionDefinition, Mode};
use pollsync_proto::identity;
use pollsync_proto::limits::MAX_EXPORT_BYTES;
use pollsync_proto::tlog::{self, Checkpoint};

use crate::{Failure, Step};

/// Longest file read (an export container's bound).
pub const MAX_FILE_BYTES: u64 = MAX_EXPORT_BYTES;

/// Most entries of one folder listed.
pub const MAX_FOLDER_ENTRIES: usize = 1_000_000;

/// The folder and what V1–V4 established.
#[derive(Debug)]
pub struct Evidence {
    /// The folder.
    pub dir: PathBuf,
    /// The election definition (V1).
    pub definition: ElectionDefinition,
    /// SHA-256 of `election.toml` (V1).
    pub definition_sha256: [u8; 32],
    /// The CA certificate (DER) (V2).
    pub ca_der: Vec<u8>,
    /// The log's verifier key text (V3).
    pub log_key: String,
    /// The checkpoint (V4).
    pub checkpoint: Checkpoint,
    /// One line per step passed.
    pub steps: Vec<String>,
}

impl Evidence {
    /// Reads `dir` and runs V1–V4; with `expected_mode`, V1 also requires the
    /// definition to be of that mode.
    pub fn open(dir: &Path, expected_mode: Option<Mode>) -> Step<Evidence> {
        let mut steps = Vec::new();
        let toml = read_file(dir, "election.toml", "V1")?;
        let text = String::from_utf8(toml.clone())
            .map_err(|_| Failure::new("V1", "election.toml", "not UTF-8"))?;
        let definition = pollsync_election::load("election.toml", &text)
            .map_err(|e| Failure::new("V1", "election.toml", e.to_string()))?;
        let definition_sha256 = pollsync_proto::definition_sha256(&toml);
        let mode = definition.election.mode;
        if let Some(expected) = expected_mode
            && expected != mode
        {
            return Err(Failure::new(
                "V1",
                "election.toml",
                format!(
                    "the evidence is of a {} election (mode = \"{}\"), not of a {} one: test and official elections never mix",
                    mode.as_str(),
                    mode.as_str(),
                    expected.as_str()
                ),
            ));
        }
        steps.push(format!(
            "V1 definition: election {} ({}), sha256 {}",
            definition.election.id,
            definition.election.mode.as_str(),
            hex::encode(definition_sha256)
        ));

        let pem = read_file(dir, "ca.pem", "V2")?;
        let ca = |reason: String| Failure::new("V2", "ca.pem", reason);
        let pem = String::from_utf8(pem).map_err(|_| ca("not UTF-8".into()))?;
        let ca_der = identity::cert_der_from_pem(&pem).map_err(|e| ca(e.to_string()))?;
        if pem != canonical_pem(&ca_der) {
            return Err(ca(
                "not exactly one certificate in PEM (BEGIN line, base64 lines of 64, END line, each ending in a newline)".into(),
            ));
        }
        identity::verify_issued_by(&ca_der, &ca_der)
            .map_err(|e| ca(format!("not signed by its own key: {e}")))?;
        let ou = identity::election_id_from_cert_der(&ca_der).map_err(|e| ca(e.to_string()))?;
        if ou != definition.election.id {
            return Err(ca(format!(
                "the CA is election {}'s, not {}'s",
                escaped(&ou),
                definition.election.id
            )));
        }
        let ca_mode = identity::mode_from_cert_der(&ca_der).map_err(|e| ca(e.to_string()))?;
        if ca_mode != mode {
            return Err(ca(format!(
                "the CA is of a {} election, the definition of a {} one",
                ca_mode.as_str(),
                mode.as_str()
            )));
        }
        steps.push(format!(
            "V2 CA: self-signed Ed25519, of this election, mode {}",
            mode.as_str()
        ));

        let key = read_file(dir, "log-key.txt", "V3")?;
        let log_key = String::from_utf8(key)
            .map_err(|_| Failure::new("V3", "log-key.txt", "not UTF-8"))?
            .trim_end_matches('\n')
            .to_owned();
        let origin = tlog::origin(&definition.election.id, definition.election.mode.as_str());
        match tlog::verifier_key_name(&log_key) {
            Some(name) if name == origin => {}
            Some(name) => {
                return Err(Failure::new(
                    "V3",
                    "log-key.txt",
                    format!("the key is named {}, not {origin}", escaped(&name)),
                ));
            }
            None => {
                return Err(Failure::new(
                    "V3",
                    "log-key.txt",
                    "not an Ed25519 signed-note verifier key",
                ));
            }
        }
        steps.push(format!("V3 log key: {origin}"));

        let note = read_file(dir, "checkpoint", "V4")?;
        let checkpoint = tlog::open_checkpoint(&note, &log_key)
            .map_err(|e| Failure::new("V4", "checkpoint", e.to_string()))?;
        steps.push(format!(
            "V4 checkpoint: {} leaves, root {}, signed by the log key",
            checkpoint.size(),
            hex::encode(checkpoint.hash().0)
        ));
        Ok(Evidence {
            dir: dir.to_owned(),
            definition,
            definition_sha256,
            ca_der,
            log_key,
            checkpoint,
            steps,
        })
    }

    /// The bytes of `relative` (at most [`MAX_FILE_BYTES`]); a failure of `step`
    /// if it cannot be read.
    pub fn read(&self, relative: &str, step: &'static str) -> Step<Vec<u8>> {
        read_file(&self.dir, relative, step)
    }

    /// Whether `relative` exists.
    pub fn has(&self, relative: &str) -> bool {
        self.dir.join(relative).exists()
    }

    /// The names in folder `relative`, sorted (none if it does not exist).
    pub fn list(&self, relative: &str, step: &'static str) -> Step<Vec<String>> {
        let path = self.dir.join(relative);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let entries = std::fs::read_dir(&path)
            .map_err(|e| Failure::new(step, format!("{relative}/"), e.to_string()))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| Failure::new(step, format!("{relative}/"), e.to_string()))?;
            let name = entry.file_name().into_string().map_err(|n| {
                Failure::new(
                    step,
                    format!("{relative}/{}", n.to_string_lossy()),
                    "a name that is not UTF-8",
                )
            })?;
            names.push(name);
            if names.len() > MAX_FOLDER_ENTRIES {
                return Err(Failure::new(
                    step,
                    format!("{relative}/"),
                    "too many entries",
                ));
            }
        }
        names.sort();
        Ok(names)
    }
}

fn read_file(dir: &Path, relative: &str, step: &'static str) -> Step<Vec<u8>> {
    let fail = |reason: String| Failure::new(step, relative, reason);
    let file = std::fs::File::open(dir.join(relative)).map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(format!("longer than {MAX_FILE_BYTES} bytes")));
    }
    Ok(bytes)
}

/// A certificate in PEM as the center writes it (RFC 7468, lines of 64, `\n`).
fn canonical_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Text from the evidence, shown escaped and cut.
pub fn escaped(text: &str) -> String {
    pollsync_proto::limits::truncate_chars(&text.escape_default().to_string(), 80)
}
