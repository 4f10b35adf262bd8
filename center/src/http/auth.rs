//! Who may read the operators' side (SPEC §8):
//!
//! - the **Host** header must name this center (the bound address, loopback names,
//!   the advertised hosts, `--http-host`): a page on another site cannot reach it
//!   through DNS rebinding;
//! - beyond loopback, the operators' **token**: as `Authorization: Bearer TOKEN`
//!   (scripts), or exchanged once at `POST /api/session` for a session cookie
//!   (`HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS) that the dashboard and its
//!   event stream then carry. A token is never taken from a URL.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::store::now_unix_ms;

/// How long a session cookie stays valid.
pub const SESSION_TTL_MS: u64 = 12 * 3600 * 1000;
/// Sessions kept at most (the oldest go first).
pub const MAX_SESSIONS: usize = 1_024;
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "pollsync_session";
/// Longest body `POST /api/session` reads.
pub const MAX_LOGIN_BODY_BYTES: usize = 4_096;

/// Signed-in sessions: random id → expiry (Unix ms).
#[derive(Default)]
pub(super) struct Sessions(Mutex<HashMap<String, u64>>);

impl Sessions {
    fn open(&self) -> Option<String> {
        let mut id = [0u8; 32];
        getrandom::fill(&mut id).ok()?;
        let id = hex::encode(id);
        let now = now_unix_ms();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, expiry| *expiry > now);
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, e)| **e)
                .map(|(k, _)| k.clone())?;
            map.remove(&oldest);
        }
        map.insert(id.clone(), now + SESSION_TTL_MS);
        Some(id)
    }

    fn valid(&self, id: &str) -> bool {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).is_some_and(|expiry| *expiry > now_unix_ms())
    }
}

/// Shortest token accepted: guessing must be hopeless.
pub const MIN_TOKEN_CHARS: usize = 16;
/// Longest token accepted (a limit on what a request may make us compare).
pub const MAX_TOKEN_CHARS: usize = 256;

/// A checked access token.
pub struct Token(String);

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Shorter than `MIN_TOKEN_CHARS`; holds its length, in characters.
    #[error(
        "the HTTP access token has {0} characters; use at least {MIN_TOKEN_CHARS} (for example `openssl rand -hex 24`)"
    )]
    TooShort(usize),
    /// Longer than `MAX_TOKEN_CHARS`; holds its length, in characters.
    #[error("the HTTP access token has {0} characters; at most {MAX_TOKEN_CHARS} are accepted")]
    TooLong(usize),
    /// A character outside visible ASCII (a space, a control character, non-ASCII).
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

/// The bearer token a request carries, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The session cookie a request carries, if any.
fn session(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
}

/// The host part of a `Host` header value (`[::1]:7480` → `[::1]`).
fn host_part(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Refuses a request whose `Host` is not one of this center's names (DNS
/// rebinding), then, beyond loopback, one without the token or a session.
pub(super) async fn require_access(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if let Err(refusal) = check_host(&state, req.headers()) {
        return *refusal;
    }
    if let Some(token) = &state.token {
        let by_token = bearer(req.headers()).is_some_and(|given| token.matches(given));
        let by_session = session(req.headers()).is_some_and(|id| state.sessions.valid(id));
        if !by_token && !by_session {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "sign in first: POST /api/session with the operators' token, or send Authorization: Bearer TOKEN\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// Only the `Host` check (the sign-in page and `POST /api/session` themselves).
pub(super) async fn require_host(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if let Err(refusal) = check_host(&state, req.headers()) {
        return *refusal;
    }
    next.run(req).await
}

fn check_host(state: &AppState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| host_part(h).to_ascii_lowercase());
    match host {
        Some(h) if state.hosts.contains(&h) => Ok(()),
        other => Err(Box::new(
            (
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this center does not answer for host {}; use one of: {}\n",
                    pollsync_proto::limits::escape_text(other.as_deref().unwrap_or("(none)"), 80),
                    state.hosts.join(", ")
                ),
            )
                .into_response(),
        )),
    }
}

/// `POST /api/session` with the token (body `{"token": "…"}`, or the
/// `Authorization` header): sets the session cookie.
pub(super) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(token) = &state.token else {
        return (StatusCode::NO_CONTENT, "").into_response();
    };
    let given: Option<String> = bearer(&headers).map(str::to_owned).or_else(|| {
        if body.len() > MAX_LOGIN_BODY_BYTES {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        v.get("token")?.as_str().map(str::to_owned)
    });
    if !given.is_some_and(|g| token.matches(&g)) {
        return (StatusCode::UNAUTHORIZED, "wrong token\n").into_response();
    }
    let Some(id) = state.sessions.open() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for a session\n",
        )
            .into_response();
    };
    let secure = if state.https { "; Secure" } else { "" };
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!(
                "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
                SESSION_TTL_MS / 1000
            ),
        )],
        "",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_parts() {
        assert_eq!(host_part("127.0.0.1:7480"), "127.0.0.1");
        assert_eq!(host_part("localhost"), "localhost");
        assert_eq!(host_part("[::1]:7480"), "[::1]");
        assert_eq!(host_part("center.example:443"), "center.example");
    }

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
