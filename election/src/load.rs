//! Parse and validate an election definition (SPEC §2) from TOML text.
//!
//! Pure: the caller reads the file and hands over its name and text. Every mistake is
//! reported with the file, the TOML path (e.g. `contest[3].candidates[1].id`, indices
//! 0-based) and the reason, all of them at once rather than only the first.
//!
//! A syntax error stops at once (the rest cannot be read). Otherwise the document is
//! walked by hand (`read`) so that a missing field, a wrong type, an unknown key or a
//! bad choice is reported with its path, and then the definition is checked as a whole
//! (`check`): ids, names, dates, references, levels, limits, and what the rule set
//! allows.

mod check;
mod read;
#[cfg(test)]
mod tests;

use crate::definition::ElectionDefinition;

/// Most mistakes listed for one definition; past it, one line says how many more.
pub const MAX_REPORTED_MISTAKES: usize = 200;

/// One mistake in a definition: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}{reason}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct DefinitionError {
    /// The file the definition came from, as the caller named it.
    pub file: String,
    /// TOML path, e.g. `contest[3].candidates[1].id`; empty for the whole file.
    pub path: String,
    /// What is wrong, in words an official can act on.
    pub reason: String,
}

/// Every mistake found in a definition (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionErrors(pub Vec<DefinitionError>);

impl std::fmt::Display for DefinitionErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DefinitionErrors {}

/// Parse and validate a definition. `file` names the source in error messages.
pub fn load(file: &str, text: &str) -> Result<ElectionDefinition, DefinitionErrors> {
    let table = match text.parse::<toml::Table>() {
        Ok(table) => table,
        Err(error) => {
            let place = error
                .span()
                .map(|span| line_and_column(text, span.start))
                .map(|(line, column)| format!("line {line}, column {column}: "))
                .unwrap_or_default();
            return Err(DefinitionErrors(vec![DefinitionError {
                file: file.to_string(),
                path: String::new(),
                reason: format!("not valid TOML: {place}{}", error.message().trim()),
            }]));
        }
    };
    let mut mistakes = Mistakes::new(file);
    let raw = read::definition(&mut mistakes, &table);
    check::definition(&mut mistakes, &raw);
    match mistakes.finish() {
        Some(errors) => Err(errors),
        None => raw.finish().ok_or_else(|| {
            DefinitionErrors(vec![DefinitionError {
                file: file.to_string(),
                path: String::new(),
                reason: "the definition is incomplete".to_string(),
            }])
        }),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The mistakes found so far, capped at [`MAX_REPORTED_MISTAKES`].
pub(crate) struct Mistakes {
    file: String,
    errors: Vec<DefinitionError>,
    not_shown: usize,
}

impl Mistakes {
    fn new(file: &str) -> Self {
        Mistakes {
            file: file.to_string(),
            errors: Vec::new(),
            not_shown: 0,
        }
    }

    pub(crate) fn add(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        if self.errors.len() < MAX_REPORTED_MISTAKES {
            self.errors.push(DefinitionError {
                file: self.file.clone(),
                path: path.into(),
                reason: reason.into(),
            });
        } else {
            self.not_shown += 1;
        }
    }

    fn finish(mut self) -> Option<DefinitionErrors> {
        if self.not_shown > 0 {
            self.errors.push(DefinitionError {
                file: self.file.clone(),
                path: String::new(),
                reason: format!("{} more mistakes not shown", self.not_shown),
            });
        }
        (!self.errors.is_empty()).then_some(DefinitionErrors(self.errors))
    }
}
