//! Durations and time bounds as users type them on the command line (`30s`, `2m`, `1h`, `1d`,
//! or an RFC 3339 time). Pure parsing; must never read a clock.

use std::time::{Duration, SystemTime};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A duration or time the user typed that is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{value:?} is not {expected}")]
pub struct DurationError {
    pub value: String,
    pub expected: &'static str,
}

const DURATION_EXPECTED: &str =
    "a duration: a whole number followed by s, m, h, d or w (e.g. 30s, 2m, 1h, 1d)";

/// `30s`, `2m`, `1h`, `1d`, `2w`. A unit is required: a bare `30` is ambiguous.
pub fn parse_duration(value: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        value: value.to_string(),
        expected: DURATION_EXPECTED,
    };
    let trimmed = value.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(err)?;
    let (digits, unit) = trimmed.split_at(split);
    let n: u64 = digits.parse().map_err(|_| err())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(err()),
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(err)
}

/// A point in time: a duration ago (relative to `now`) or an RFC 3339 time
/// (`2026-11-21T07:00:00Z`).
pub fn parse_time_bound(value: &str, now: SystemTime) -> Result<SystemTime, DurationError> {
    if let Ok(ago) = parse_duration(value) {
        return Ok(now.checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH));
    }
    OffsetDateTime::parse(value.trim(), &Rfc3339)
        .map(SystemTime::from)
        .map_err(|_| DurationError {
            value: value.to_string(),
            expected: "a duration ago (30s, 2m, 1h, 1d) or an RFC 3339 time (2026-11-21T07:00:00Z)",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(1_209_600)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "30",
            "s",
            "1x",
            "-1h",
            "1.5h",
            "1h30m",
            "99999999999999999999d",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert_eq!(err.value, bad);
            assert!(err.to_string().contains("e.g. 30s"), "{err}");
        }
    }

    #[test]
    fn time_bounds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(
            parse_time_bound("1h", now),
            Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(6400))
        );
        assert_eq!(
            parse_time_bound("1970-01-01T00:00:05Z", now),
            Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(5))
        );
        assert!(parse_time_bound("yesterday", now)
            .unwrap_err()
            .to_string()
            .contains("RFC 3339"));
    }
}
