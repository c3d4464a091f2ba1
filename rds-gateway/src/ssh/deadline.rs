//! How long a command may take: the caller's deadline (from its gRPC deadline) capped by the
//! configured maximum, or the configured default when the caller gave none. Every command gets
//! one, so no RouterOS command can hang a gateway call for ever.

use std::time::{Duration, Instant};

/// The deadline a command runs under.
///
/// `requested` is the caller's deadline; `default` applies when there is none; `max` bounds
/// any deadline (a caller cannot ask for more). A deadline already in the past stays in the
/// past: the command then fails at once with a timeout.
pub fn effective_deadline(
    requested: Option<Instant>,
    now: Instant,
    default: Duration,
    max: Duration,
) -> Instant {
    let latest = now.checked_add(max).unwrap_or(now);
    match requested {
        Some(at) => at.min(latest),
        None => now.checked_add(default.min(max)).unwrap_or(latest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_deadline_is_capped_and_default_applies() {
        let now = Instant::now();
        let default = Duration::from_secs(30);
        let max = Duration::from_secs(120);
        let soon = now + Duration::from_secs(5);
        assert_eq!(effective_deadline(Some(soon), now, default, max), soon);
        let far = now + Duration::from_secs(3600);
        assert_eq!(effective_deadline(Some(far), now, default, max), now + max);
        assert_eq!(effective_deadline(None, now, default, max), now + default);
        // A default above the maximum is capped too.
        assert_eq!(
            effective_deadline(None, now, Duration::from_secs(500), max),
            now + max
        );
        // The past stays in the past.
        let past = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        assert_eq!(effective_deadline(Some(past), now, default, max), past);
    }
}
