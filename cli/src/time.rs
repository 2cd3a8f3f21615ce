//! RFC 3339 timestamps ⇄ Unix seconds (the request's `time` for rules with
//! time windows, `audit query --since/--until`), through the `time` crate.

use ::time::format_description::well_known::Rfc3339;
use ::time::OffsetDateTime;
use thiserror::Error;

/// A timestamp that is not RFC 3339 or is before 1970.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{0}` is not an RFC 3339 time after 1970 such as 2026-01-05T10:00:00Z")]
pub struct TimeError(pub String);

fn parse(text: &str) -> Result<OffsetDateTime, TimeError> {
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| TimeError(text.to_owned()))?;
    if at.unix_timestamp() < 0 {
        return Err(TimeError(text.to_owned()));
    }
    Ok(at)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` to Unix seconds
/// (fractions are dropped).
pub fn parse_rfc3339(text: &str) -> Result<u64, TimeError> {
    u64::try_from(parse(text)?.unix_timestamp()).map_err(|_| TimeError(text.to_owned()))
}

/// Parses an RFC 3339 time to milliseconds since the epoch (fractions
/// below a millisecond are dropped).
pub fn parse_rfc3339_millis(text: &str) -> Result<u64, TimeError> {
    let nanos = parse(text)?.unix_timestamp_nanos();
    u64::try_from(nanos / 1_000_000).map_err(|_| TimeError(text.to_owned()))
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{unix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        // 2026-11-21 is a Saturday (see the engine's weekday test).
        assert_eq!(parse_rfc3339("2026-11-21T12:00:00Z"), Ok(1_795_262_400));
        assert_eq!(format_rfc3339(1_795_262_400), "2026-11-21T12:00:00Z");
        assert_eq!(parse_rfc3339("2024-02-29T23:59:59.123Z"), Ok(1_709_251_199));
        assert_eq!(
            parse_rfc3339_millis("2024-02-29T23:59:59.123Z"),
            Ok(1_709_251_199_123)
        );
        assert_eq!(
            parse_rfc3339("2026-11-21T14:00:00+02:00"),
            Ok(1_795_262_400)
        );
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            "",
            "2026-11-21",
            "2026-11-21T12:00:00",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-11-21T12:00:00+2:00",
            "2026-11-21T12:00:00.Z",
            "２０２６-11-21T12:00:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
