//! The merge rules every document shares (SEMANTICS.md, "Sync"): one side's change is taken,
//! unions, sets, the later of two values; and whom a decision must be told to. Every rule is
//! symmetric: the result does not depend on which side is "ours". Below the documents that use
//! them ([`crate::model::task`], [`crate::model::lease`]) and the dispatch that picks a
//! document's rule ([`crate::model::merge`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// Someone a merge decided against, to be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Two replicas claimed one task for different agents; the earlier claim won.
    LostClaim {
        task: String,
        title: String,
        loser: String,
        loser_claimed_at: String,
        winner: String,
        winner_claimed_at: String,
    },
    /// Two replicas granted overlapping leases; the earlier one won, this one was revoked.
    LeaseRevoked {
        lease: String,
        loser: String,
        patterns: Vec<String>,
        winner: String,
        winner_lease: String,
        at: String,
    },
}

pub(crate) fn json_text(v: Option<&Value>) -> String {
    v.map(Value::to_string).unwrap_or_else(|| "null".into())
}

/// The three-way rule: one side's change is taken; None when both changed differently.
pub(crate) fn three_way(
    base: Option<&Value>,
    ours: Option<&Value>,
    theirs: Option<&Value>,
) -> Option<Option<Value>> {
    if ours == theirs || theirs == base {
        Some(ours.cloned())
    } else if ours == base {
        Some(theirs.cloned())
    } else {
        None
    }
}

pub(crate) fn max_value(a: Option<&Value>, b: Option<&Value>) -> Option<Value> {
    let text = |v: Option<&Value>| v.map(Value::to_string);
    if text(a) >= text(b) {
        a.cloned()
    } else {
        b.cloned()
    }
}

/// Union of two arrays, keyed by `key`, sorted by `order`.
pub(crate) fn union_by<K: Ord, O: Ord>(
    a: Option<&Value>,
    b: Option<&Value>,
    key: impl Fn(&Value) -> K,
    order: impl Fn(&Value) -> O,
) -> Option<Value> {
    let mut seen: BTreeMap<K, Value> = BTreeMap::new();
    for v in [a, b]
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
    {
        let k = key(v);
        match seen.get(&k) {
            // Two versions under one key: keep the larger, so either order gives the same.
            Some(old) if json_text(Some(old)) >= json_text(Some(v)) => {}
            _ => {
                seen.insert(k, v.clone());
            }
        }
    }
    let mut items: Vec<Value> = seen.into_values().collect();
    items.sort_by_key(|v| order(v));
    (!items.is_empty()).then_some(Value::Array(items))
}

/// A set merged three ways: what either side added, minus what either side removed.
pub(crate) fn merge_set(
    base: Option<&Value>,
    ours: Option<&Value>,
    theirs: Option<&Value>,
) -> Option<Value> {
    let set = |v: Option<&Value>| -> BTreeSet<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().map(Value::to_string).collect())
            .unwrap_or_default()
    };
    let (b, o, t) = (set(base), set(ours), set(theirs));
    let mut out: BTreeSet<String> = b
        .iter()
        .filter(|x| o.contains(*x) && t.contains(*x))
        .cloned()
        .collect();
    out.extend(o.difference(&b).cloned());
    out.extend(t.difference(&b).cloned());
    let items: Vec<Value> = out
        .iter()
        .filter_map(|s| serde_json::from_str(s).ok())
        .collect();
    (!items.is_empty()).then_some(Value::Array(items))
}

/// Any YAML mapping merged field by field: one side's change is taken; both changed: the larger
/// value (a stable choice).
pub(crate) fn merge_fields(base: Option<&[u8]>, ours: &[u8], theirs: &[u8]) -> Option<Vec<u8>> {
    let parse = |b: &[u8]| -> Option<Map<String, Value>> {
        let text = std::str::from_utf8(b).ok()?;
        match crate::model::parse_yaml::<Value>(text).ok()? {
            Value::Object(m) => Some(m),
            _ => None,
        }
    };
    let (o, t) = (parse(ours)?, parse(theirs)?);
    let b = base.and_then(parse).unwrap_or_default();
    let mut out = Map::new();
    let keys: BTreeSet<&String> = o.keys().chain(t.keys()).collect();
    for key in keys {
        let (bv, ov, tv) = (b.get(key), o.get(key), t.get(key));
        let v = match (key.as_str(), ov, tv) {
            // A history only grows: the union of both sides' events, in time order.
            ("history", Some(Value::Array(a)), Some(Value::Array(b))) => {
                let mut all: Vec<Value> = a.iter().chain(b).cloned().collect();
                all.sort_by_key(|e| (e["at"].as_str().unwrap_or("").to_string(), e.to_string()));
                all.dedup();
                Some(Value::Array(all))
            }
            _ => three_way(bv, ov, tv).unwrap_or_else(|| max_value(ov, tv)),
        };
        if let Some(v) = v {
            out.insert(key.clone(), v);
        }
    }
    serde_saphyr::to_string(&Value::Object(out))
        .ok()
        .map(String::into_bytes)
}

#[cfg(test)]
mod tests {
    use super::merge_fields;

    #[test]
    fn an_agents_history_is_the_union_of_both_sides_in_either_order() {
        let base = b"name: sam\nrole: dev\n".as_slice();
        let ours = b"name: sam\nrole: reviewer\nhistory:\n- at: '2026-01-01T00:00:01.000Z'\n  by: a\n  op: role\n  note: dev -> reviewer\n".as_slice();
        let theirs = b"name: sam\nrole: docs\nhistory:\n- at: '2026-01-01T00:00:02.000Z'\n  by: b\n  op: role\n  note: dev -> docs\n".as_slice();
        let one = merge_fields(Some(base), ours, theirs).expect("merged");
        let other = merge_fields(Some(base), theirs, ours).expect("merged");
        assert_eq!(one, other, "the same whichever side merges");
        let text = String::from_utf8(one).expect("utf-8");
        assert!(
            text.contains("dev -> reviewer") && text.contains("dev -> docs"),
            "{text}"
        );
    }
}
