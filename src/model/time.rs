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

    /// What jiff's friendly duration format makes of `text`, days taken as 24 hours.
    fn jiff_duration(text: &str) -> Option<Duration> {
        let span: jiff::Span = text.parse().ok()?;
        let d = span
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .ok()?;
        Duration::try_from(d).ok()
    }

    /// The reader is kept (not jiff's) for its narrower grammar (no fractions, no spelled-out
    /// units, no ISO 8601) and its errors, in words a flag's user understands. Within that
    /// grammar it reads what jiff reads: units in descending order each once, as jiff takes them
    /// (ours also sums repeated or unordered units, `30m1h`, which jiff refuses).
    #[test]
    fn every_duration_reads_as_jiff_reads_it() {
        let seed = std::env::var("GIT_COORD_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| now_seconds() as u64 | 1);
        eprintln!("seed {seed} (set GIT_COORD_TEST_SEED to repeat)");
        let mut x = seed;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let (units, odd) = (['d', 'h', 'm', 's'], ['x', ' ', '.', '-', 'S', 'D']);
        let mut agreed = 0;
        for _ in 0..20_000 {
            let mut text = String::new();
            let mut ordered = true;
            let mut last = None;
            for _ in 0..=next(3) {
                // A unit without its number is outside the grammar (`5ms` is 5 milliseconds
                // to jiff).
                let numbered = next(16) != 0;
                ordered &= numbered;
                if numbered {
                    let most = [10, 1000, 100_000, 10_000_000][next(4) as usize];
                    let n = next(most);
                    text.push_str(&n.to_string());
                }
                if next(16) == 0 {
                    let c = next(odd.len() as u64) as usize;
                    text.push(odd[c]);
                    ordered = false;
                    continue;
                }
                let u = next(4) as usize;
                ordered &= last.is_none_or(|l| l < u);
                last = Some(u);
                text.push(units[u]);
            }
            let ours = parse_duration(&text);
            let theirs = jiff_duration(&text.trim().to_ascii_lowercase());
            if let Ok(d) = ours {
                if ordered {
                    assert_eq!(Some(d), theirs, "{text:?}, seed {seed}");
                    agreed += 1;
                }
            } else if ordered && !text.trim().is_empty() {
                let in_range = |d: Duration| d >= Duration::from_secs(1) && d <= MAX_DURATION;
                assert!(
                    !theirs.is_some_and(in_range) || text.ends_with(|c: char| c.is_ascii_digit()),
                    "{text:?} refused, jiff reads {theirs:?}, seed {seed}"
                );
            }
        }
        assert!(agreed > 2_000, "only {agreed} compared, seed {seed}");
    }
}
