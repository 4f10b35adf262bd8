//! `center validate`: check an election definition before polling day and say either
//! what it holds or every mistake in it, each with its file, TOML path and reason.

use std::path::Path;

use pollsync_election::{DefinitionError, DefinitionSummary, ElectionDefinition, load};
use serde_json::json;

/// What checking a definition found.
pub enum Verdict {
    /// The definition is good; what it holds.
    Valid(DefinitionSummary),
    /// The definition is not usable; every mistake in it (never empty).
    Invalid(Vec<DefinitionError>),
}

/// Read and check the definition at `path`. A file that cannot be read, or is not
/// UTF-8 text, is reported as a mistake of that file rather than as a crash.
pub fn check_file(path: &Path) -> Verdict {
    match load_file(path) {
        Ok((_, def)) => Verdict::Valid(DefinitionSummary::of(&def)),
        Err(errors) => Verdict::Invalid(errors),
    }
}

/// Read and load the definition at `path`: its exact text (whose SHA-256 is the
/// definition digest) and the definition, or every mistake with its path.
pub fn load_file(path: &Path) -> Result<(String, ElectionDefinition), Vec<DefinitionError>> {
    let file = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            return Err(vec![whole_file(
                &file,
                format!("cannot read the file: {e}"),
            )]);
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            return Err(vec![whole_file(
                &file,
                format!("not UTF-8 text (bad byte at offset {at})"),
            )]);
        }
    };
    match load(&file, &text) {
        Ok(def) => Ok((text, def)),
        Err(errors) => Err(errors.0),
    }
}

fn whole_file(file: &str, reason: String) -> DefinitionError {
    DefinitionError {
        file: file.to_string(),
        path: String::new(),
        reason,
    }
}

impl Verdict {
    /// Whether the definition is good.
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid(_))
    }

    /// `{"valid": true, "summary": {…}}` or `{"valid": false, "errors": [{file, path, reason}…]}`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Verdict::Valid(summary) => json!({"valid": true, "summary": summary}),
            Verdict::Invalid(errors) => json!({
                "valid": false,
                "errors": errors
                    .iter()
                    .map(|e| json!({"file": e.file, "path": e.path, "reason": e.reason}))
                    .collect::<Vec<_>>(),
            }),
        }
    }
}
