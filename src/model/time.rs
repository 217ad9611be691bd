//! Timestamps: UTC, fixed width, millisecond precision, so text order is time order; and the
//! one way durations are written (`90s`, `30m`, `1h30m`, `2d`).

use std::time::Duration;

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

/// The longest duration any flag or setting takes: about a hundred years, so that a deadline
/// computed from it never overflows a clock.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Reads a duration: numbers each followed by a unit, `s`, `m`, `h` or `d` (`90s`, `30m`,
/// `1h30m`), at least 1s and at most [`MAX_DURATION`]. The error says what is wrong, in words a
/// caller puts after the value.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let text = input.trim().to_ascii_lowercase();
    if text.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(c) = text
        .chars()
        .find(|c| !c.is_ascii_digit() && !"smhd".contains(*c))
    {
        return Err(format!("'{c}' is not a unit"));
    }
    let mut seconds: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("'{c}' is not a unit")),
        };
        if digits.is_empty() {
            return Err("a unit needs a number before it".into());
        }
        seconds = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .and_then(|s| seconds.checked_add(s))
            .filter(|s| *s <= MAX_DURATION.as_secs())
            .ok_or("it is longer than 36500d")?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err("the number has no unit".into());
    }
    if seconds == 0 {
        return Err("it must be at least 1s".into());
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_one_rule_and_never_overflow() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 2D "), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("36500d"), Ok(MAX_DURATION));
        for bad in [
            "",
            "0s",
            "10",
            "s",
            "1x",
            "-1s",
            "1.5h",
            "36501d",
            "18446744073709551615s",
            "99999999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
