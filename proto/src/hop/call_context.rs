//! The per-call context a hop carries: the request id and the caller's deadline.
//!
//! The server layer opens it for the duration of a handler (a tokio task-local), the
//! client layer reads it to pass both on to the next hop. Handlers read it to log the
//! request id or to bound their own work by the caller's deadline.

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};

/// The metadata key that carries the request id between hops.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The standard gRPC deadline header.
const TIMEOUT_HEADER: &str = "grpc-timeout";
/// Longest request id accepted from a caller; a longer or odd one is replaced.
const MAX_REQUEST_ID: usize = 128;

tokio::task_local! {
    static CURRENT: CallContext;
}

/// What one call carries across hops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    pub request_id: String,
    /// When the caller stops waiting, if it said.
    pub deadline: Option<Instant>,
}

impl CallContext {
    /// The context of the call this task is serving, if any.
    pub fn current() -> Option<CallContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Time left until the caller's deadline (zero when already past), if it set one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Builds the context of an incoming call from its headers: the caller's request id
    /// when it is a sane token, otherwise a new one; the deadline from `grpc-timeout`.
    pub(crate) fn from_headers(headers: &HeaderMap, now: Instant) -> Self {
        let request_id = headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_sane_id(v))
            .map(str::to_string)
            .unwrap_or_else(new_request_id);
        let deadline = headers
            .get(TIMEOUT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .and_then(|d| now.checked_add(d));
        CallContext {
            request_id,
            deadline,
        }
    }

    /// Runs `fut` with this context as the current one.
    pub(crate) async fn scope<F: std::future::Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }
}

/// A fresh request id.
pub(crate) fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn is_sane_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_REQUEST_ID
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// Sets `grpc-timeout` to the time left until `deadline`, unless the request already
/// carries a shorter one.
pub(crate) fn propagate_deadline(headers: &mut HeaderMap, remaining: Duration) {
    let existing = headers
        .get(TIMEOUT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout);
    if existing.is_some_and(|e| e <= remaining) {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&format_grpc_timeout(remaining)) {
        headers.insert(TIMEOUT_HEADER, v);
    }
}

/// Parses the gRPC wire form of a timeout: at most 8 digits and a unit
/// (`H`, `M`, `S`, `m`, `u`, `n`).
pub(crate) fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let v = v.trim();
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Formats a timeout in the gRPC wire form, choosing the finest unit that fits 8 digits.
pub(crate) fn format_grpc_timeout(d: Duration) -> String {
    const LIMIT: u128 = 99_999_999;
    let candidates = [
        (d.as_nanos(), "n"),
        (d.as_micros(), "u"),
        (d.as_millis(), "m"),
        (u128::from(d.as_secs()), "S"),
        (u128::from(d.as_secs() / 60), "M"),
    ];
    for (value, unit) in candidates {
        if value <= LIMIT {
            return format!("{value}{unit}");
        }
    }
    format!("{}H", (d.as_secs() / 3600).min(99_999_999))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_wire_form_round_trips() {
        for d in [
            Duration::from_nanos(5),
            Duration::from_millis(1500),
            Duration::from_secs(30),
            Duration::from_secs(3 * 86_400),
        ] {
            let s = format_grpc_timeout(d);
            let back = parse_grpc_timeout(&s).unwrap();
            assert!(
                back <= d && d - back < Duration::from_secs(60),
                "{d:?} -> {s} -> {back:?}"
            );
        }
        assert_eq!(parse_grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("-1S"), None);
    }

    #[test]
    fn request_id_is_kept_when_sane_and_replaced_otherwise() {
        let now = Instant::now();
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(CallContext::from_headers(&h, now).request_id, "abc-123");
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("a b;c"));
        let replaced = CallContext::from_headers(&h, now).request_id;
        assert_ne!(replaced, "a b;c");
        assert!(uuid::Uuid::parse_str(&replaced).is_ok());
    }

    #[test]
    fn deadline_is_read_and_only_shortened_on_the_way_out() {
        let now = Instant::now();
        let mut h = HeaderMap::new();
        h.insert(TIMEOUT_HEADER, HeaderValue::from_static("2S"));
        let ctx = CallContext::from_headers(&h, now);
        assert_eq!(ctx.deadline, Some(now + Duration::from_secs(2)));

        let mut out = HeaderMap::new();
        out.insert(TIMEOUT_HEADER, HeaderValue::from_static("1S"));
        propagate_deadline(&mut out, Duration::from_secs(5));
        assert_eq!(out.get(TIMEOUT_HEADER).unwrap(), "1S");
        propagate_deadline(&mut out, Duration::from_millis(300));
        assert_eq!(out.get(TIMEOUT_HEADER).unwrap(), "300000u");
    }

    #[tokio::test]
    async fn scope_makes_the_context_current() {
        assert!(CallContext::current().is_none());
        let ctx = CallContext {
            request_id: "r1".into(),
            deadline: None,
        };
        let seen = ctx.clone().scope(async { CallContext::current() }).await;
        assert_eq!(seen, Some(ctx));
    }
}
