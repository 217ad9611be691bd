//! Timestamps: UTC, fixed width, millisecond precision, so text order is time order.

pub fn now() -> String {
    format_timestamp(jiff::Timestamp::now())
}

pub fn now_seconds() -> i64 {
    jiff::Timestamp::now().as_second()
}

pub fn format_timestamp(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub fn from_seconds(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(format_timestamp)
        .unwrap_or_default()
}

/// Reads a timestamp as written by [`format_timestamp`] (any RFC 3339 UTC form is accepted).
pub fn parse(text: &str) -> Option<jiff::Timestamp> {
    text.parse().ok()
}
