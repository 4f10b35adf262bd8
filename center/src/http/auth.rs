//! The operators' bearer token: required on every request when the HTTP side is
//! bound beyond loopback. Accepted as `Authorization: Bearer TOKEN`, or as
//! `?token=TOKEN` for the browser's `EventSource`, which cannot set headers.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Shortest token accepted: guessing must be hopeless.
pub const MIN_TOKEN_CHARS: usize = 16;
/// Longest token accepted (a limit on what a request may make us compare).
pub const MAX_TOKEN_CHARS: usize = 256;

/// A checked access token.
pub struct Token(String);

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the HTTP access token has {0} characters; use at least {MIN_TOKEN_CHARS} (for example `openssl rand -hex 24`)"
    )]
    TooShort(usize),
    #[error("the HTTP access token has {0} characters; at most {MAX_TOKEN_CHARS} are accepted")]
    TooLong(usize),
    #[error("the HTTP access token may hold only visible ASCII characters (no spaces)")]
    BadCharacters,
}

impl Token {
    /// Checks a token given by the operator (surrounding whitespace is dropped, so
    /// a token file may end with a newline).
    pub fn new(text: &str) -> Result<Token, TokenError> {
        let t = text.trim();
        let n = t.chars().count();
        if n < MIN_TOKEN_CHARS {
            return Err(TokenError::TooShort(n));
        }
        if n > MAX_TOKEN_CHARS {
            return Err(TokenError::TooLong(n));
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::BadCharacters);
        }
        Ok(Token(t.to_owned()))
    }

    /// Compares in time independent of where the first difference is.
    fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// The token a request carries, if any.
fn presented(req: &Request) -> Option<&str> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        return v.to_str().ok()?.strip_prefix("Bearer ");
    }
    req.uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

pub(super) async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.token
        && !presented(&req).is_some_and(|given| token.matches(given))
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid operator token is required (Authorization: Bearer TOKEN)\n",
        )
            .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_long_and_spaced_tokens_are_refused() {
        assert!(matches!(Token::new("short"), Err(TokenError::TooShort(5))));
        assert!(matches!(
            Token::new(&"x".repeat(MAX_TOKEN_CHARS + 1)),
            Err(TokenError::TooLong(_))
        ));
        assert!(matches!(
            Token::new("abcdefgh ijklmnopq"),
            Err(TokenError::BadCharacters)
        ));
        let t = Token::new("  0123456789abcdef\n").expect("trimmed token");
        assert!(t.matches("0123456789abcdef"));
        assert!(!t.matches("0123456789abcdeF"));
        assert!(!t.matches("0123456789abcde"));
        assert_eq!(format!("{t:?}"), "Token(…)");
    }
}
