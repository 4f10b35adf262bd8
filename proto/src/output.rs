//! What the `center` and `station` commands print to standard output: every byte
//! through the last escape net ([`crate::limits::escape_output`]), and a reader
//! that went away (`… | head`) ends the command quietly instead of with a panic
//! (SPEC §13).

use std::io::Write as _;

/// Writes `text` to standard output, escaped; exits 0 on a closed pipe, 1 on any
/// other write error.
pub fn emit(text: &str) {
    let text = crate::limits::escape_output(text);
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// `println!` through [`emit`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::emit(&format!("{}\n", format_args!($($arg)*))) };
}

/// `print!` through [`emit`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::emit(&format!($($arg)*)) };
}
