//! The center's layering rules (ARCHITECTURE.md), checked on its source: each
//! module may use only the modules below it. A `use crate::…` or `crate::…` path
//! that reaches upwards fails this test with the file and the module it named.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Each layer's top-level modules, bottom first. A module may use itself and the
/// layers below its own, not a module of its own layer.
const LAYERS: &[&[&str]] = &[
    // Plain words and types: nothing of the center below them.
    &["error", "context", "validate"],
    // The logging words (escaping, throttling); the store and its types.
    &["logging", "store"],
    // Deciding and applying batches; reading the store into results; the audit.
    &["ingest", "results", "audit"],
    // Views over both, and the offline commands.
    &["status", "overview", "commands"],
    // The network's front door, and the serving options.
    &["listen", "serve_config"],
    // The stations' gRPC server and the operators' HTTP server.
    &["serve", "http"],
    // Starting and stopping a serving center.
    &["server"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read the source folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module names after `crate::` in `text`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut upward = Vec::new();
    let mut unplaced = BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_owned())
            .unwrap_or_default();
        if top == "main" || top == "lib" {
            continue;
        }
        let Some(own) = layer_of(&top) else {
            unplaced.insert(top);
            continue;
        };
        let text = fs::read_to_string(file).expect("read a source file");
        for used in crate_paths(&text) {
            match layer_of(&used) {
                Some(layer) if layer < own || used == top => {}
                Some(_) => upward.push(format!("{}: uses crate::{used}", relative.display())),
                None => {
                    unplaced.insert(used);
                }
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules with no layer in this test (add them to LAYERS): {unplaced:?}"
    );
    assert!(
        upward.is_empty(),
        "modules reaching up or across their layer:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_rule_finds_an_upward_path() {
    let paths = crate_paths("use crate::ingest::judge::Context;\nlet x = crate::store::DB_FILE;");
    assert_eq!(
        paths,
        BTreeSet::from(["ingest".to_owned(), "store".to_owned()])
    );
    assert!(layer_of("ingest") > layer_of("store"));
}
