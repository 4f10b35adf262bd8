//! Small helpers that put figures and names into words an operator reads: figures with
//! thousands separators, untrusted text shown safely, and lists joined with "and".

/// Longest stretch of untrusted text quoted back in a message.
const MAX_SHOWN_CHARS: usize = 60;

/// `2280` → `2,280`.
pub(crate) fn figure(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// Untrusted text quoted in a message: control characters escaped, long text cut short.
pub(crate) fn shown(text: &str) -> String {
    let mut out = String::from("'");
    for (i, c) in text.chars().enumerate() {
        if i == MAX_SHOWN_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() || is_invisible_format(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Invisible formatting characters (zero-width spaces and joiners, direction marks and
/// overrides, byte-order mark) that would let two names look alike yet differ.
pub(crate) fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// `["a", "b", "c"]` → `a, b and c`.
pub(crate) fn joined<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [rest @ .., last] => {
            let head: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", head.join(", "), last.as_ref())
        }
    }
}

/// `1` → `1 seat`, `2` → `2 seats`.
pub(crate) fn counted(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{} {one}", figure(n))
    } else {
        format!("{} {many}", figure(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_get_thousands_separators() {
        assert_eq!(figure(0), "0");
        assert_eq!(figure(999), "999");
        assert_eq!(figure(1_000), "1,000");
        assert_eq!(figure(2_280), "2,280");
        assert_eq!(figure(541_000), "541,000");
        assert_eq!(figure(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn untrusted_text_is_escaped_and_cut() {
        assert_eq!(shown("张三"), "'张三'");
        assert_eq!(shown("a\nb"), "'a\\u{a}b'");
        assert_eq!(shown(&"x".repeat(100)), format!("'{}…'", "x".repeat(60)));
    }

    #[test]
    fn lists_are_joined_with_and() {
        assert_eq!(joined::<&str>(&[]), "");
        assert_eq!(joined(&["a"]), "a");
        assert_eq!(joined(&["a", "b", "c"]), "a, b and c");
    }
}
