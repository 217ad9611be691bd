//! A heartbeat: one YAML document at `heartbeats/<name>.yaml` in refs/coord/presence, saying when
//! an agent was last seen alive, from which clone, and how long it may stay silent. The presence
//! ref keeps no history (each commit replaces the last), so the merge rule is a two-way one: of
//! two heartbeats of one agent, the later wins.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{parse_document, time};

pub const HEARTBEAT_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub format: u32,
    pub agent: String,
    /// When, by the writing clone's clock.
    pub at: String,
    /// Which clone wrote it (`coord.clone` in git's configuration, else host:path).
    pub clone: String,
    /// How long the writer may stay silent before it counts as stale (its clone's
    /// `stale_after`, in seconds); readers use the shorter of this and their own.
    pub stale_after: u64,
    /// Fields of a newer build of the same format, kept as they are.
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Heartbeat {
    pub fn path(name: &str) -> String {
        format!("heartbeats/{name}.yaml")
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("a heartbeat always serializes")
    }

    pub fn from_yaml(bytes: &[u8], refname: &str, path: &str) -> Result<Heartbeat> {
        let beat: Heartbeat =
            parse_document(bytes, refname, path, HEARTBEAT_FORMAT, |h: &Heartbeat| {
                h.format
            })?;
        let malformed = |why: String| Error::Malformed {
            refname: refname.into(),
            path: path.into(),
            why,
        };
        if path != Heartbeat::path(&beat.agent) {
            return Err(malformed(format!(
                "agent '{}' does not match its path",
                beat.agent
            )));
        }
        if beat.at_seconds().is_none() {
            return Err(malformed(format!("'{}' is not a timestamp", beat.at)));
        }
        Ok(beat)
    }

    /// `at` in milliseconds since the epoch.
    pub fn at_millis(&self) -> Option<i64> {
        time::parse(&self.at).map(|t| t.as_millisecond())
    }

    pub fn at_seconds(&self) -> Option<i64> {
        time::parse(&self.at).map(|t| t.as_second())
    }
}

/// Of two heartbeats of one agent, the one that stays: the later `at`, then the greater clone
/// name, then the greater text (so any order of merges gives the same result).
pub fn later<'h>(a: &'h Heartbeat, b: &'h Heartbeat) -> &'h Heartbeat {
    let key = |h: &Heartbeat| {
        (
            h.at_millis().unwrap_or(i64::MIN),
            h.clone.clone(),
            h.to_yaml(),
        )
    };
    if key(b) > key(a) { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(at: &str, clone: &str) -> Heartbeat {
        Heartbeat {
            format: HEARTBEAT_FORMAT,
            agent: "a".into(),
            at: at.into(),
            clone: clone.into(),
            stale_after: 60,
            extra: Default::default(),
        }
    }

    #[test]
    fn the_later_heartbeat_wins_in_any_order() {
        let old = beat("2026-01-01T00:00:00.000Z", "z");
        let new = beat("2026-01-01T00:00:01.000Z", "a");
        assert_eq!(later(&old, &new), &new);
        assert_eq!(later(&new, &old), &new);
        let other = beat("2026-01-01T00:00:01.000Z", "b");
        assert_eq!(later(&new, &other), later(&other, &new));
    }

    #[test]
    fn a_heartbeat_reads_back_and_checks_its_path() {
        let b = beat("2026-01-01T00:00:00.000Z", "host:/r");
        let yaml = b.to_yaml();
        let path = Heartbeat::path("a");
        assert_eq!(
            Heartbeat::from_yaml(yaml.as_bytes(), "refs/coord/presence", &path).unwrap(),
            b
        );
        assert!(Heartbeat::from_yaml(yaml.as_bytes(), "r", "heartbeats/b.yaml").is_err());
        let bad = yaml.replace("2026-01-01T00:00:00.000Z", "soon");
        assert!(Heartbeat::from_yaml(bad.as_bytes(), "r", &path).is_err());
    }
}
