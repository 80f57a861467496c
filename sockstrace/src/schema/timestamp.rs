//! `ts`: RFC 3339 in UTC, to the nanosecond (`2026-11-29T01:25:38.228556662Z`; trailing
//! zeros of the fraction left out, as the `time` crate writes it).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// When an event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp(OffsetDateTime::now_utc())
    }

    /// Reads RFC 3339 (any offset; a fraction beyond nanoseconds is cut off).
    pub fn parse(text: &str) -> Option<Self> {
        OffsetDateTime::parse(text, &Rfc3339).ok().map(Timestamp)
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(self) -> i128 {
        self.0.unix_timestamp_nanos()
    }

    /// The time `unix_nanos` nanoseconds after the Unix epoch, in UTC.
    pub fn from_unix_nanos(unix_nanos: i128) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(unix_nanos).ok().map(Timestamp)
    }

    /// `2026-01-02T03:04:05.123Z`: in UTC, to the millisecond.
    pub fn utc_millis(self) -> String {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        format!("{:04}-{:02}-{:02}T{}Z", t.year(), u8::from(t.month()), t.day(), self.time_of_day_millis())
    }

    /// `03:04:05.123`: the time of day in UTC, to the millisecond.
    pub fn time_of_day_millis(self) -> String {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        format!("{:02}:{:02}:{:02}.{:03}", t.hour(), t.minute(), t.second(), t.millisecond())
    }
}

impl fmt::Display for Timestamp {
    /// The RFC 3339 text (empty for a year RFC 3339 cannot write).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.format(&Rfc3339).unwrap_or_default())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(text: &str) -> Option<i128> {
        Timestamp::parse(text).map(Timestamp::unix_nanos)
    }

    #[test]
    fn reads_rfc3339() {
        assert_eq!(nanos("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(nanos("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(nanos("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(nanos("1969-12-31T23:59:59.999999999Z"), Some(-1));
        assert_eq!(nanos("1970-01-01T00:00:00.1234567891Z"), Some(123_456_789));
        assert_eq!(nanos("1970-01-01t00:00:00z"), Some(0));
        // What is written: nanoseconds with trailing zeros dropped.
        assert_eq!(nanos("2026-11-29T01:25:38.25071734Z"), nanos("2026-11-29T01:25:38.250717340Z"));
        assert_eq!(nanos("2024-02-29T00:00:00Z").map(|t| t / 1_000_000_000), Some(1_709_164_800));
        for bad in [
            "",
            "2026-11-29",
            "2026-11-29T01:25:38",
            "2026-11-29T01:25:38.Z",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T01:25:38+1:00",
            "2026-11-29T01:25:38Zjunk",
            "2026-11-29T01:25:3éZ",
            "+026-11-29T01:25:38Z",
        ] {
            assert_eq!(nanos(bad), None, "{bad}");
        }
    }

    #[test]
    fn writes_what_it_reads() {
        for text in ["2026-11-29T01:25:38.228556662Z", "2026-11-29T01:25:38.25Z", "2026-11-29T01:25:38Z"] {
            let ts = Timestamp::parse(text).unwrap();
            assert_eq!(serde_json::to_string(&ts).unwrap(), format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Timestamp>(&format!("\"{text}\"")).unwrap(), ts);
        }
        let now = Timestamp::now();
        let text = now.to_string();
        assert!(text.ends_with('Z') && text.contains('T'), "{text}");
        assert_eq!(Timestamp::parse(&text), Some(now));
    }

    #[test]
    fn shows_utc_to_the_millisecond() {
        let t = Timestamp::parse("2026-11-29T02:25:38.2507173+01:00").unwrap();
        assert_eq!(t.utc_millis(), "2026-11-29T01:25:38.250Z");
        assert_eq!(t.time_of_day_millis(), "01:25:38.250");
        assert_eq!(Timestamp::from_unix_nanos(-1).unwrap().utc_millis(), "1969-12-31T23:59:59.999Z");
    }
}
