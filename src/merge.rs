//! The semantic three-way merge of two versions of a coordination ref (SEMANTICS.md, "Sync").
//!
//! Trees are walked together; only what both sides changed since the merge base is looked at
//! closely, one document at a time, never as lines of YAML. Every rule is symmetric (the result
//! does not depend on which side is "ours"), so replicas that merge the same two versions get the
//! same tree.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::error::Result;
use crate::git::{EntryEdit, Oid, Repo, TreeEntry};
use crate::model::lease::{Lease, Pattern, PatternSet};
use crate::model::message::Mark;
use crate::model::task::{Conflict, State, Task};

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

/// The merged tree of one ref, and whom to tell what.
#[derive(Debug)]
pub struct Merged {
    pub tree: Oid,
    pub notices: Vec<Notice>,
    /// Documents that could not be read on either side and were kept as found.
    pub malformed: Vec<String>,
}

/// Merges the trees `ours` and `theirs` of `refname`, which forked at `base` (None: no common
/// history).
pub fn merge_trees(
    repo: &Repo,
    refname: &str,
    base: Option<Oid>,
    ours: Oid,
    theirs: Oid,
) -> Result<Merged> {
    let mut walk = Walk {
        repo,
        refname,
        edits: Vec::new(),
        notices: Vec::new(),
        malformed: Vec::new(),
    };
    walk.trees("", base, Some(ours), Some(theirs))?;
    let mut tree = repo.edit_entries(ours, &walk.edits)?;
    if refname.ends_with("/leases") {
        tree = walk.settle_lease_overlaps(base, ours, theirs, tree)?;
    }
    Ok(Merged {
        tree,
        notices: walk.notices,
        malformed: walk.malformed,
    })
}

struct Walk<'r> {
    repo: &'r Repo,
    refname: &'r str,
    edits: Vec<EntryEdit>,
    notices: Vec<Notice>,
    malformed: Vec<String>,
}

type Entry = Option<(Oid, bool)>;

impl Walk<'_> {
    fn entries(&self, tree: Option<Oid>) -> Result<BTreeMap<String, TreeEntry>> {
        Ok(match tree {
            Some(t) => self
                .repo
                .tree_entries(t)?
                .into_iter()
                .map(|e| (e.name.clone(), e))
                .collect(),
            None => BTreeMap::new(),
        })
    }

    fn trees(
        &mut self,
        dir: &str,
        base: Option<Oid>,
        ours: Option<Oid>,
        theirs: Option<Oid>,
    ) -> Result<()> {
        let (b, o, t) = (
            self.entries(base)?,
            self.entries(ours)?,
            self.entries(theirs)?,
        );
        let names: BTreeSet<&String> = b.keys().chain(o.keys()).chain(t.keys()).collect();
        for name in names {
            let path = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let get = |m: &BTreeMap<String, TreeEntry>| -> Entry {
                m.get(name).map(|e| (e.oid, e.is_tree))
            };
            self.entry(&path, get(&b), get(&o), get(&t))?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &str, base: Entry, ours: Entry, theirs: Entry) -> Result<()> {
        if ours == theirs || theirs == base {
            return Ok(()); // ours already holds the result
        }
        if ours == base {
            self.edits.push(EntryEdit {
                path: path.to_string(),
                entry: theirs,
            });
            return Ok(());
        }
        // Changed on both sides.
        match (ours, theirs) {
            (Some((o, true)), Some((t, true))) => {
                let b = base.filter(|(_, is_tree)| *is_tree).map(|(oid, _)| oid);
                self.trees(path, b, Some(o), Some(t))
            }
            (Some((_, true)), _) => Ok(()), // a tree beats a file or a deletion: keep ours
            (_, Some((t, true))) => {
                self.edits.push(EntryEdit {
                    path: path.to_string(),
                    entry: Some((t, true)),
                });
                Ok(())
            }
            _ => {
                let read = |e: Entry| -> Result<Option<Vec<u8>>> {
                    match e {
                        Some((oid, false)) => self.repo.read_blob(oid).map(Some),
                        _ => Ok(None),
                    }
                };
                let (b, o, t) = (read(base)?, read(ours)?, read(theirs)?);
                let merged = self.document(path, b, o.clone(), t)?;
                if merged != o {
                    let entry = match merged {
                        Some(bytes) => Some((self.repo.write_blob(&bytes)?, false)),
                        None => None,
                    };
                    self.edits.push(EntryEdit {
                        path: path.to_string(),
                        entry,
                    });
                }
                Ok(())
            }
        }
    }

    /// One document changed on both sides (or deleted on one and changed on the other).
    fn document(
        &mut self,
        path: &str,
        base: Option<Vec<u8>>,
        ours: Option<Vec<u8>>,
        theirs: Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>> {
        let (ours, theirs) = match (ours, theirs) {
            (Some(o), Some(t)) => (o, t),
            // Deleted on one side, changed on the other: the change is kept (deletions that
            // matter are tombstones inside documents, never removals).
            (o, t) => return Ok(o.or(t)),
        };
        let kind = self.refname.rsplit('/').next().unwrap_or_default();
        let is_task =
            kind == "tasks" && path.starts_with("tasks/") && path.matches('/').count() == 2;
        let is_mark = kind == "inbox" && path.starts_with("marks/");
        let is_lease = kind == "leases" && path.starts_with("leases/");
        let is_agent = kind == "agents";
        let merged = if is_task {
            self.task(path, base.as_deref(), &ours, &theirs)
        } else if is_mark {
            merge_marks(path, &ours, &theirs)
        } else if is_lease {
            merge_lease_doc(path, base.as_deref(), &ours, &theirs)
        } else if is_agent {
            merge_fields(base.as_deref(), &ours, &theirs)
        } else {
            None // messages, attachments, artifacts, people: immutable, so equal in practice
        };
        Ok(Some(match merged {
            Some(bytes) => bytes,
            None => {
                if is_task || is_mark || is_lease || is_agent {
                    self.malformed.push(path.to_string());
                }
                // A stable choice: the smaller version.
                ours.min(theirs)
            }
        }))
    }

    fn task(
        &mut self,
        path: &str,
        base: Option<&[u8]>,
        ours: &[u8],
        theirs: &[u8],
    ) -> Option<Vec<u8>> {
        let parse = |b: &[u8]| Task::from_yaml(b, self.refname, path).ok();
        let (o, t) = match (parse(ours), parse(theirs)) {
            (Some(o), Some(t)) => (o, t),
            // A document that loads beats one that does not.
            (Some(_), None) => return Some(ours.to_vec()),
            (None, Some(_)) => return Some(theirs.to_vec()),
            (None, None) => return None,
        };
        let b = base.and_then(parse);
        let (merged, notice) = merge_task(b.as_ref(), &o, &t);
        self.notices.extend(notice);
        Some(merged.to_yaml().into_bytes())
    }

    /// Leases new on both sides that overlap (on their patterns) are settled: the earlier one
    /// keeps its paths, the other is revoked.
    fn settle_lease_overlaps(
        &mut self,
        base: Option<Oid>,
        ours: Oid,
        theirs: Oid,
        merged: Oid,
    ) -> Result<Oid> {
        let load = |tree: Option<Oid>| -> Result<BTreeMap<String, Lease>> {
            let mut out = BTreeMap::new();
            let Some(tree) = tree else { return Ok(out) };
            let Some(dir) = self.repo.lookup_path(tree, "leases")? else {
                return Ok(out);
            };
            for e in self.repo.tree_entries(dir)? {
                let path = format!("leases/{}", e.name);
                if let Ok(lease) =
                    Lease::from_yaml(&self.repo.read_blob(e.oid)?, self.refname, &path)
                {
                    out.insert(lease.id.clone(), lease);
                }
            }
            Ok(out)
        };
        let (b, o, t, m) = (
            load(base)?,
            load(Some(ours))?,
            load(Some(theirs))?,
            load(Some(merged))?,
        );
        let new_ours: Vec<&Lease> = o
            .values()
            .filter(|l| !b.contains_key(&l.id) && !t.contains_key(&l.id))
            .collect();
        let new_theirs: Vec<&Lease> = t
            .values()
            .filter(|l| !b.contains_key(&l.id) && !o.contains_key(&l.id))
            .collect();
        let mut revoked: BTreeMap<String, Lease> = BTreeMap::new();
        for x in &new_ours {
            for y in &new_theirs {
                let (Some(x), Some(y)) = (m.get(&x.id), m.get(&y.id)) else {
                    continue;
                };
                if x.agent == y.agent
                    || x.mode.compatible(y.mode)
                    || revoked.contains_key(&x.id)
                    || revoked.contains_key(&y.id)
                    || x.revoked_by.is_some()
                    || y.revoked_by.is_some()
                    || !lifetimes_meet(x, y)
                    || !patterns_overlap(x, y)
                {
                    continue;
                }
                let (winner, loser) = if (&x.acquired, &x.id) <= (&y.acquired, &y.id) {
                    (x, y)
                } else {
                    (y, x)
                };
                let at = loser.acquired.clone().max(winner.acquired.clone());
                let mut lost = loser.clone();
                lost.released = Some(match &lost.released {
                    Some(r) => r.clone().min(at.clone()),
                    None => at.clone(),
                });
                lost.revoked_by = Some(winner.id.clone());
                self.notices.push(Notice::LeaseRevoked {
                    lease: lost.id.clone(),
                    loser: lost.agent.clone(),
                    patterns: lost.patterns.clone(),
                    winner: winner.agent.clone(),
                    winner_lease: winner.id.clone(),
                    at,
                });
                revoked.insert(lost.id.clone(), lost);
            }
        }
        if revoked.is_empty() {
            return Ok(merged);
        }
        let mut edits = Vec::new();
        for lease in revoked.values() {
            let blob = self.repo.write_blob(lease.to_yaml().as_bytes())?;
            edits.push(EntryEdit {
                path: Lease::path(&lease.id),
                entry: Some((blob, false)),
            });
        }
        self.repo.edit_entries(merged, &edits)
    }
}

fn lifetimes_meet(a: &Lease, b: &Lease) -> bool {
    let end = |l: &Lease| match &l.released {
        Some(r) => r.clone().min(l.expires.clone()),
        None => l.expires.clone(),
    };
    a.acquired < end(b) && b.acquired < end(a)
}

/// Whether two leases' patterns meet: a pattern of one, read as a path, is covered by the other.
/// (Paths that exist differ between replicas, so a merge looks at patterns only.)
fn patterns_overlap(a: &Lease, b: &Lease) -> bool {
    let (Ok(pa), Ok(pb)) = (a.parsed_patterns(), b.parsed_patterns()) else {
        return false;
    };
    let (Ok(sa), Ok(sb)) = (PatternSet::new(&pa), PatternSet::new(&pb)) else {
        return false;
    };
    let meets = |ps: &[Pattern], set: &PatternSet| {
        ps.iter()
            .any(|p| set.is_match(&p.path, true) || set.is_match(&p.path, false))
    };
    meets(&pa, &sb) || meets(&pb, &sa)
}

/// The fields that move together when a task changes hands or finishes.
const CLAIM_FIELDS: [&str; 5] = ["state", "assignee", "claimed_at", "summary", "block_reason"];

/// Merges two versions of a task that forked at `base`. Fields changed on one side are taken;
/// comments and history are unions; labels and dependencies merge as sets; the claim fields
/// move as one (done beats everything, then the earliest claim); anything else changed on both
/// sides goes to the side updated last (then a stable tie-break) and is recorded as a conflict.
pub fn merge_task(base: Option<&Task>, ours: &Task, theirs: &Task) -> (Task, Option<Notice>) {
    let to_map = |t: &Task| -> Map<String, Value> {
        match serde_json::to_value(t) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    };
    let (o, t) = (to_map(ours), to_map(theirs));
    let b = base.map(to_map).unwrap_or_default();
    let mut out = Map::new();
    let mut conflicts: BTreeSet<Conflict> = ours
        .conflicts
        .iter()
        .chain(&theirs.conflicts)
        .cloned()
        .collect();
    let later_is_ours = (&ours.updated, serde_json::to_string(&o).unwrap_or_default())
        >= (
            &theirs.updated,
            serde_json::to_string(&t).unwrap_or_default(),
        );
    let at = ours.updated.clone().max(theirs.updated.clone());
    let keys: BTreeSet<&String> = o.keys().chain(t.keys()).collect();
    for key in keys {
        if CLAIM_FIELDS.contains(&key.as_str()) || key == "conflicts" {
            continue;
        }
        let (bv, ov, tv) = (b.get(key), o.get(key), t.get(key));
        let value = match key.as_str() {
            "comments" => union_by(
                ov,
                tv,
                |c| c.get("id").map(Value::to_string).unwrap_or_default(),
                |c| {
                    (
                        c.get("at").map(Value::to_string).unwrap_or_default(),
                        c.get("id").map(Value::to_string).unwrap_or_default(),
                    )
                },
            ),
            "history" => union_by(ov, tv, Value::to_string, |e| {
                (
                    e.get("at").map(Value::to_string).unwrap_or_default(),
                    e.to_string(),
                )
            }),
            "labels" | "deps" => merge_set(bv, ov, tv),
            "updated" | "format" => max_value(ov, tv),
            _ => match three_way(bv, ov, tv) {
                Some(v) => v,
                None => {
                    let (kept, dropped) = if later_is_ours { (ov, tv) } else { (tv, ov) };
                    conflicts.insert(Conflict {
                        field: key.clone(),
                        kept: json_text(kept),
                        dropped: json_text(dropped),
                        at: at.clone(),
                    });
                    kept.cloned()
                }
            },
        };
        if let Some(v) = value {
            out.insert(key.clone(), v);
        }
    }
    // The claim fields, as one.
    let group = |m: &Map<String, Value>| -> Vec<Option<Value>> {
        CLAIM_FIELDS.iter().map(|k| m.get(*k).cloned()).collect()
    };
    let (bg, og, tg) = (group(&b), group(&o), group(&t));
    let mut notice = None;
    let chosen = if og == tg || tg == bg {
        og
    } else if og == bg {
        tg
    } else {
        let (winner, loser, race) = settle_claims(ours, theirs);
        if race {
            notice = Some(Notice::LostClaim {
                task: ours.id.clone(),
                title: winner.title.clone(),
                loser: loser.assignee.clone().unwrap_or_default(),
                loser_claimed_at: loser.claimed_at.clone().unwrap_or_default(),
                winner: winner.assignee.clone().unwrap_or_default(),
                winner_claimed_at: winner.claimed_at.clone().unwrap_or_default(),
            });
        } else {
            conflicts.insert(Conflict {
                field: "state".into(),
                kept: json_text(Some(&Value::Array(
                    group(&to_map(winner))
                        .into_iter()
                        .map(|v| v.unwrap_or(Value::Null))
                        .collect(),
                ))),
                dropped: json_text(Some(&Value::Array(
                    group(&to_map(loser))
                        .into_iter()
                        .map(|v| v.unwrap_or(Value::Null))
                        .collect(),
                ))),
                at: at.clone(),
            });
        }
        group(&to_map(winner))
    };
    for (key, value) in CLAIM_FIELDS.iter().zip(chosen) {
        if let Some(v) = value {
            out.insert(key.to_string(), v);
        }
    }
    let mut merged: Task = match serde_json::from_value(Value::Object(out)) {
        Ok(task) => task,
        Err(_) => {
            // Cannot happen for two valid tasks; stay deterministic anyway.
            return (
                if later_is_ours {
                    ours.clone()
                } else {
                    theirs.clone()
                },
                None,
            );
        }
    };
    merged.conflicts = conflicts.into_iter().collect();
    (merged, notice)
}

/// Which of two different claim states wins, and whether it was a race between two claims.
fn settle_claims<'t>(a: &'t Task, b: &'t Task) -> (&'t Task, &'t Task, bool) {
    let rank = |t: &Task| match t.state {
        State::Done => 3,
        State::Claimed => 2,
        State::Blocked => 1,
        State::Open => 0,
    };
    let race = a.state == State::Claimed && b.state == State::Claimed && a.assignee != b.assignee;
    let key = |t: &'t Task| {
        (
            std::cmp::Reverse(rank(t)),
            // Among claims, the earliest wins; a missing time sorts last.
            t.claimed_at.clone().unwrap_or_else(|| "~".into()),
            t.assignee.clone().unwrap_or_default(),
            t.summary.clone(),
            t.block_reason.clone(),
        )
    };
    if key(a) <= key(b) {
        (a, b, race)
    } else {
        (b, a, race)
    }
}

fn json_text(v: Option<&Value>) -> String {
    v.map(Value::to_string).unwrap_or_else(|| "null".into())
}

/// The three-way rule: one side's change is taken; None when both changed differently.
fn three_way(
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

fn max_value(a: Option<&Value>, b: Option<&Value>) -> Option<Value> {
    let text = |v: Option<&Value>| v.map(Value::to_string);
    if text(a) >= text(b) {
        a.cloned()
    } else {
        b.cloned()
    }
}

/// Union of two arrays, keyed by `key`, sorted by `order`.
fn union_by<K: Ord, O: Ord>(
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
fn merge_set(base: Option<&Value>, ours: Option<&Value>, theirs: Option<&Value>) -> Option<Value> {
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

/// Read marks: the earliest read, the earliest acknowledgement.
fn merge_marks(path: &str, ours: &[u8], theirs: &[u8]) -> Option<Vec<u8>> {
    let (o, t) = (
        Mark::from_yaml(ours, "", path).ok()?,
        Mark::from_yaml(theirs, "", path).ok()?,
    );
    let acked = match (o.acked, t.acked) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mark = Mark {
        format: o.format.max(t.format),
        read: o.read.min(t.read),
        acked,
    };
    Some(mark.to_yaml().into_bytes())
}

/// One lease changed on both sides: released if either released (the earlier time), the later
/// expiry, other fields three ways.
fn merge_lease_doc(path: &str, base: Option<&[u8]>, ours: &[u8], theirs: &[u8]) -> Option<Vec<u8>> {
    let parse = |b: &[u8]| Lease::from_yaml(b, "", path).ok();
    let (o, t) = match (parse(ours), parse(theirs)) {
        (Some(o), Some(t)) => (o, t),
        (Some(_), None) => return Some(ours.to_vec()),
        (None, Some(_)) => return Some(theirs.to_vec()),
        (None, None) => return None,
    };
    let merged_fields = merge_fields(base, ours, theirs)?;
    let mut lease = Lease::from_yaml(&merged_fields, "", path).ok()?;
    lease.expires = o.expires.clone().max(t.expires.clone());
    lease.released = match (&o.released, &t.released) {
        (Some(a), Some(b)) => Some(a.clone().min(b.clone())),
        (a, b) => a.clone().or(b.clone()),
    };
    lease.revoked_by = o.revoked_by.clone().max(t.revoked_by.clone());
    Some(lease.to_yaml().into_bytes())
}

/// Any YAML mapping merged field by field: one side's change is taken; both changed: the larger
/// value (a stable choice).
fn merge_fields(base: Option<&[u8]>, ours: &[u8], theirs: &[u8]) -> Option<Vec<u8>> {
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
        let v = three_way(bv, ov, tv).unwrap_or_else(|| max_value(ov, tv));
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
    use super::*;
    use crate::model::task::{Comment, Kind};

    fn task(
        state: State,
        assignee: Option<&str>,
        claimed_at: Option<&str>,
        title: &str,
        updated: &str,
    ) -> Task {
        Task {
            format: 1,
            id: "0123456789ab".into(),
            title: title.into(),
            kind: Kind::Task,
            state,
            priority: 2,
            role: None,
            labels: vec!["a".into()],
            deps: Vec::new(),
            parent: None,
            assignee: assignee.map(String::from),
            claimed_at: claimed_at.map(String::from),
            summary: None,
            block_reason: None,
            created: "2026-01-01T00:00:00Z".into(),
            created_by: "olga".into(),
            updated: updated.into(),
            description: String::new(),
            comments: Vec::new(),
            history: Vec::new(),
            conflicts: Vec::new(),
            extra: Default::default(),
        }
    }

    #[test]
    fn a_claim_race_goes_to_the_earliest_claim_whichever_side_merges() {
        let base = task(State::Open, None, None, "t", "2026-01-01T00:00:00Z");
        let a = task(
            State::Claimed,
            Some("alice"),
            Some("2026-01-01T00:00:02Z"),
            "t",
            "2026-01-01T00:00:02Z",
        );
        let b = task(
            State::Claimed,
            Some("bob"),
            Some("2026-01-01T00:00:01Z"),
            "t",
            "2026-01-01T00:00:01Z",
        );
        let (ab, na) = merge_task(Some(&base), &a, &b);
        let (ba, nb) = merge_task(Some(&base), &b, &a);
        assert_eq!(ab, ba);
        assert_eq!(ab.assignee.as_deref(), Some("bob"));
        assert_eq!(na, nb);
        assert!(matches!(na, Some(Notice::LostClaim { ref loser, .. }) if loser == "alice"));
    }

    #[test]
    fn done_is_never_lost_and_fields_changed_on_one_side_are_taken() {
        let base = task(State::Open, None, None, "t", "2026-01-01T00:00:00Z");
        let mut done = task(
            State::Done,
            Some("alice"),
            None,
            "t",
            "2026-01-01T00:00:05Z",
        );
        done.summary = Some("finished".into());
        let mut edited = task(
            State::Claimed,
            Some("bob"),
            Some("2026-01-01T00:00:01Z"),
            "new title",
            "2026-01-01T00:00:09Z",
        );
        edited.labels = vec!["a".into(), "b".into()];
        edited.comments = vec![Comment {
            id: "c1".into(),
            at: "2026-01-01T00:00:03Z".into(),
            author: "bob".into(),
            text: "hi".into(),
        }];
        let (m1, _) = merge_task(Some(&base), &done, &edited);
        let (m2, _) = merge_task(Some(&base), &edited, &done);
        assert_eq!(m1, m2);
        assert_eq!(m1.state, State::Done);
        assert_eq!(m1.summary.as_deref(), Some("finished"));
        assert_eq!(m1.title, "new title");
        assert_eq!(m1.labels, ["a", "b"]);
        assert_eq!(m1.comments.len(), 1);
        assert_eq!(m1.conflicts.len(), 1, "the state conflict is recorded");
    }

    #[test]
    fn both_sides_editing_one_field_keeps_the_later_and_records_the_other() {
        let base = task(State::Open, None, None, "t", "2026-01-01T00:00:00Z");
        let a = task(State::Open, None, None, "from a", "2026-01-01T00:00:02Z");
        let b = task(State::Open, None, None, "from b", "2026-01-01T00:00:03Z");
        let (m, _) = merge_task(Some(&base), &a, &b);
        assert_eq!(m, merge_task(Some(&base), &b, &a).0);
        assert_eq!(m.title, "from b");
        assert_eq!(m.conflicts[0].field, "title");
        assert_eq!(m.conflicts[0].dropped, "\"from a\"");
        // Merging the result again with either side changes nothing.
        assert_eq!(merge_task(Some(&a), &m, &a).0, m);
    }
}
