//! What the three-way merge of two replicas decides, document by document (SEMANTICS.md, "Sync"):
//! which rule applies to which document. The rules every document shares are in
//! [`crate::model::rules`]; those of a task, a lease and a read mark live with those documents.

use crate::model::lease::merge_lease;
use crate::model::message::Mark;
pub use crate::model::rules::Notice;
use crate::model::rules::merge_fields;
use crate::model::task::{Task, merge_task};

/// How one document changed on both sides merges.
#[derive(Debug, PartialEq, Eq)]
pub enum DocMerge {
    /// The merged bytes, and whom the decision must be told to.
    Merged(Vec<u8>, Option<Notice>),
    /// A document with a rule that could not be read on either side.
    Unreadable,
    /// Messages, attachments, artifacts, people: immutable, so both sides are equal in practice.
    Immutable,
}

/// Merges the document at `path` of the ref of `kind` (`tasks`, `inbox`, ...), changed on both
/// sides since `base`.
pub fn merge_document(
    kind: &str,
    path: &str,
    base: Option<&[u8]>,
    ours: &[u8],
    theirs: &[u8],
) -> DocMerge {
    let merged = match kind {
        "tasks" if path.starts_with("tasks/") && path.matches('/').count() == 2 => {
            return merge_task_doc(path, base, ours, theirs);
        }
        "inbox" if path.starts_with("marks/") => Mark::merge(path, ours, theirs),
        "leases" if path.starts_with("leases/") => merge_lease(path, base, ours, theirs),
        "agents" => merge_fields(base, ours, theirs),
        _ => return DocMerge::Immutable,
    };
    match merged {
        Some(bytes) => DocMerge::Merged(bytes, None),
        None => DocMerge::Unreadable,
    }
}

fn merge_task_doc(path: &str, base: Option<&[u8]>, ours: &[u8], theirs: &[u8]) -> DocMerge {
    let parse = |b: &[u8]| Task::from_yaml(b, "refs/coord/tasks", path).ok();
    let (o, t) = match (parse(ours), parse(theirs)) {
        (Some(o), Some(t)) => (o, t),
        // A document that loads beats one that does not.
        (Some(_), None) => return DocMerge::Merged(ours.to_vec(), None),
        (None, Some(_)) => return DocMerge::Merged(theirs.to_vec(), None),
        (None, None) => return DocMerge::Unreadable,
    };
    let b = base.and_then(parse);
    let (merged, notice) = merge_task(b.as_ref(), &o, &t);
    DocMerge::Merged(merged.to_yaml().into_bytes(), notice)
}
