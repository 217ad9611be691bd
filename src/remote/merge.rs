//! The semantic three-way merge of two versions of a coordination ref (SEMANTICS.md, "Sync").
//!
//! Trees are walked together; only what both sides changed since the merge base is looked at
//! closely, one document at a time, never as lines of YAML. Every rule is symmetric (the result
//! does not depend on which side is "ours"), so replicas that merge the same two versions get the
//! same tree.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Result;
use crate::git::{EntryEdit, Oid, Repo, TreeEntry};
use crate::model::MAX_DOCUMENT_BYTES;
use crate::model::lease::{Lease, settle_overlap};
use crate::model::merge::{DocMerge, Notice, merge_document};
use crate::store::read_blob;

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
                // What can be no document (a gitlink, a symlink, a name like `..`) takes no part:
                // kept where it is, left out when its tree is rewritten.
                .filter(|e| e.is_tree || e.is_blob)
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
                // A version over the document size limit is never read: ours stays as it is.
                for (oid, _) in [base, ours, theirs].into_iter().flatten() {
                    if self.repo.object_size(oid)? > MAX_DOCUMENT_BYTES {
                        self.malformed.push(path.to_string());
                        return Ok(());
                    }
                }
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

    /// One document changed on both sides (or deleted on one and changed on the other): the
    /// model's rule for it decides.
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
        Ok(Some(
            match merge_document(kind, path, base.as_deref(), &ours, &theirs) {
                DocMerge::Merged(bytes, notice) => {
                    self.notices.extend(notice);
                    bytes
                }
                DocMerge::Unreadable => {
                    self.malformed.push(path.to_string());
                    ours.min(theirs) // a stable choice: the smaller version
                }
                DocMerge::Immutable => ours.min(theirs),
            },
        ))
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
            for e in self
                .repo
                .tree_entries(dir)?
                .into_iter()
                .filter(|e| e.is_blob)
            {
                let path = format!("leases/{}", e.name);
                if let Ok(lease) =
                    read_blob(self.repo, e.oid, MAX_DOCUMENT_BYTES, self.refname, &path)
                        .and_then(|bytes| Lease::from_yaml(&bytes, self.refname, &path))
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
                if revoked.contains_key(&x.id) || revoked.contains_key(&y.id) {
                    continue;
                }
                let Some((lost, notice)) = settle_overlap(x, y) else {
                    continue;
                };
                self.notices.push(notice);
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
