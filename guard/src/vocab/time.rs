//! Times as records write them: unix seconds and milliseconds, and RFC 3339 in UTC with exactly
//! three fractional digits (`2026-11-21T07:52:00.123Z`, fixed width, so these strings also sort
//! in time order). Conversions only: nothing here reads the clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// Whole seconds since the epoch (0 before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the epoch (0 before it).
pub fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-21T07:52:00.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    rfc3339_from_millis(unix_millis(t))
}

/// [`rfc3339_millis`] from milliseconds since the epoch.
pub fn rfc3339_from_millis(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_string())
}

/// [`rfc3339_millis`] of a time in whole seconds (`.000`).
pub fn rfc3339_from_secs(secs: u64) -> String {
    rfc3339_from_millis(i64::try_from(secs).unwrap_or(0).saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_utc_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_718_000_000_123);
        assert_eq!(rfc3339_millis(t), "2024-06-10T06:13:20.123Z");
        assert_eq!(rfc3339_from_secs(1_718_000_000), "2024-06-10T06:13:20.000Z");
        assert_eq!(unix_secs(t), 1_718_000_000);
        assert_eq!(unix_millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
