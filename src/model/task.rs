//! A task: one YAML document at `tasks/<shard>/<id>.yaml` in refs/coord/tasks.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::rules::{Notice, json_text, max_value, merge_set, three_way, union_by};
use crate::model::{MAX_DOCUMENT_BYTES, id};

/// The task document format this build writes and the newest it reads.
pub const TASK_FORMAT: u32 = 1;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Open,
    Claimed,
    Done,
    Blocked,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Claimed => "claimed",
            State::Done => "done",
            State::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Result<State> {
        Ok(match s {
            "open" => State::Open,
            "claimed" => State::Claimed,
            "done" => State::Done,
            "blocked" => State::Blocked,
            _ => {
                return Err(Error::invalid(
                    "state",
                    s,
                    "use open, claimed, done or blocked",
                ));
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Bug,
    Feature,
    #[default]
    Task,
    Chore,
    Epic,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bug => "bug",
            Kind::Feature => "feature",
            Kind::Task => "task",
            Kind::Chore => "chore",
            Kind::Epic => "epic",
        }
    }

    pub fn parse(s: &str) -> Result<Kind> {
        Ok(match s {
            "bug" => Kind::Bug,
            "feature" => Kind::Feature,
            "task" => Kind::Task,
            "chore" => Kind::Chore,
            "epic" => Kind::Epic,
            _ => {
                return Err(Error::invalid(
                    "type",
                    s,
                    "use bug, feature, task, chore or epic",
                ));
            }
        })
    }
}

/// Priority 0 is the most urgent, 4 the least.
pub const MAX_PRIORITY: u8 = 4;
pub const DEFAULT_PRIORITY: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub id: String,
    pub author: String,
    pub at: String,
    pub text: String,
    /// The project the author works in, when it is not this one (its identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The human behind an author from another project, `Name <email>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human: Option<String>,
}

/// Where a task filed from another project came from (SEMANTICS.md, "Across projects").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The filing project's identity (its normalized URL).
    pub project: String,
    pub agent: String,
    /// The human behind the agent, `Name <email>`.
    pub human: String,
    /// The filing project's task this one was filed for (`--from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// One line of a task's own history: who did what, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: String,
    pub agent: String,
    pub op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A field that two replicas changed differently: what a sync kept and what it set aside.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Conflict {
    pub field: String,
    /// The value kept, as JSON.
    pub kept: String,
    /// The value set aside, as JSON.
    pub dropped: String,
    /// The later of the two sides' `updated`.
    pub at: String,
}

/// The label of a workflow's stage tasks.
pub const STAGE_LABEL: &str = "workflow-stage";
/// Marks a stage whose template says it produces no code (`code: false`): its checkpoint may
/// pass with nothing to merge.
pub const NO_CODE_LABEL: &str = "no-code";
/// The label of the tasks a workflow puts where a stage ends with a checkpoint.
pub const CHECKPOINT_LABEL: &str = "checkpoint";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub format: u32,
    pub id: String,
    pub title: String,
    #[serde(rename = "type", default)]
    pub kind: Kind,
    pub state: State,
    #[serde(default = "default_priority")]
    pub priority: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<String>,
    /// Agents told when the task is done or blocked, besides its creator (`task follow`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub followers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_reason: Option<String>,
    pub created: String,
    pub created_by: String,
    pub updated: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<Comment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Event>,
    /// Fields changed differently on two replicas, as a sync settled them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
    /// Set when the task was filed from another project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// Fields this build does not know (written by a newer git-coord of the same format),
    /// kept as they are so a write never drops them.
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

fn default_priority() -> u8 {
    DEFAULT_PRIORITY
}

impl Task {
    /// Where the document lives in the ref's tree.
    pub fn path(id: &str) -> String {
        format!("tasks/{}/{id}.yaml", id::shard(id))
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("a task always serializes")
    }

    /// Parses and checks a task document; `path` names it in errors.
    pub fn from_yaml(bytes: &[u8], refname: &str, path: &str) -> Result<Task> {
        let task: Task = parse_checked(bytes, refname, path)?;
        check_fields(&task.id, task.priority, refname, path)?;
        Ok(task)
    }

    pub fn push_event(&mut self, agent: &str, op: &str, note: Option<String>, at: &str) {
        self.updated = at.to_string();
        self.history.push(Event {
            at: at.to_string(),
            agent: agent.to_string(),
            op: op.to_string(),
            note,
        });
    }
}

/// Parses a task document (whole, or only what listings need), with the checks every versioned
/// document gets.
fn parse_checked<T: serde::de::DeserializeOwned + Versioned>(
    bytes: &[u8],
    refname: &str,
    path: &str,
) -> Result<T> {
    crate::model::parse_document(bytes, refname, path, TASK_FORMAT, |d: &T| d.format())
}

fn check_fields(id: &str, priority: u8, refname: &str, path: &str) -> Result<()> {
    let malformed = |why: String| Error::Malformed {
        refname: refname.into(),
        path: path.into(),
        why,
    };
    if !id::is_full_id(id) || !path.ends_with(&format!("/{id}.yaml")) {
        return Err(malformed(format!("id '{id}' does not match its path")));
    }
    if priority > MAX_PRIORITY {
        return Err(malformed(format!(
            "priority {priority} is outside 0-{MAX_PRIORITY}"
        )));
    }
    Ok(())
}

trait Versioned {
    fn format(&self) -> u32;
}

impl Versioned for Task {
    fn format(&self) -> u32 {
        self.format
    }
}

/// The fields a listing needs, read without building comments and history.
#[derive(Deserialize, Default)]
struct SummaryDoc {
    format: u32,
    id: String,
    title: String,
    #[serde(rename = "type", default)]
    kind: Kind,
    state: State,
    #[serde(default = "default_priority")]
    priority: u8,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    deps: Vec<String>,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    block_reason: Option<String>,
    created: String,
    updated: String,
}

impl Versioned for SummaryDoc {
    fn format(&self) -> u32 {
        self.format
    }
}

fn check_format(found: u32, refname: &str, path: &str) -> Result<()> {
    if found > TASK_FORMAT {
        return Err(Error::NewerFormat {
            refname: refname.into(),
            path: path.into(),
            found,
            supported: TASK_FORMAT,
        });
    }
    if found == 0 {
        return Err(Error::Malformed {
            refname: refname.into(),
            path: path.into(),
            why: "format version 0".into(),
        });
    }
    Ok(())
}

/// Whether `claim --next` may take a task of this kind, state and assignee (its dependencies and
/// role aside): not an epic, and open and unassigned, or held by one of the `stale` agents. The
/// assignee is asked for only where the state makes it matter (a listing of the index reads
/// 100,000 of them, most done).
pub fn takeable<'a>(
    kind: Kind,
    state: State,
    assignee: impl FnOnce() -> Option<&'a str>,
    stale: &std::collections::HashSet<String>,
) -> bool {
    kind != Kind::Epic
        && match state {
            State::Open => assignee().is_none(),
            State::Claimed => assignee().is_some_and(|a| stale.contains(a)),
            _ => false,
        }
}

/// Whether a task of role `own` is for `wanted` (None: any role). A task with no role is anyone's.
pub fn role_fits(own: Option<&str>, wanted: Option<&str>) -> bool {
    wanted.is_none_or(|r| own.is_none_or(|own| own == r))
}

/// What listings need of a task: everything but its description, comments and history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskSummary {
    pub id: String,
    pub title: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub state: State,
    pub priority: u8,
    pub role: Option<String>,
    pub labels: Vec<String>,
    pub deps: Vec<String>,
    pub parent: Option<String>,
    pub assignee: Option<String>,
    pub summary: Option<String>,
    pub block_reason: Option<String>,
    pub created: String,
    pub updated: String,
}

impl From<&Task> for TaskSummary {
    fn from(t: &Task) -> Self {
        TaskSummary {
            id: t.id.clone(),
            title: t.title.clone(),
            kind: t.kind,
            state: t.state,
            priority: t.priority,
            role: t.role.clone(),
            labels: t.labels.clone(),
            deps: t.deps.clone(),
            parent: t.parent.clone(),
            assignee: t.assignee.clone(),
            summary: t.summary.clone(),
            block_reason: t.block_reason.clone(),
            created: t.created.clone(),
            updated: t.updated.clone(),
        }
    }
}

impl TaskSummary {
    /// Reads the summary fields of a task document, with the same checks as [`Task::from_yaml`].
    pub fn from_yaml(bytes: &[u8], refname: &str, path: &str) -> Result<TaskSummary> {
        SummaryRef::from_yaml(bytes, refname, path).map(|d| d.to_summary())
    }

    /// Urgency order: lower priority number first, then older first, then id.
    pub fn urgency_key(&self) -> (u8, &str, &str) {
        (self.priority, &self.created, &self.id)
    }
}

/// The summary fields of a task document, borrowed from its text where they appear there as
/// they are (the fast reader's plain and quoted scalars), so reading 100,000 documents for the
/// index costs no allocation per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRef<'a> {
    pub id: Cow<'a, str>,
    pub title: Cow<'a, str>,
    pub kind: Kind,
    pub state: State,
    pub priority: u8,
    pub role: Option<Cow<'a, str>>,
    pub labels: Vec<Cow<'a, str>>,
    pub deps: Vec<Cow<'a, str>>,
    pub parent: Option<Cow<'a, str>>,
    pub assignee: Option<Cow<'a, str>>,
    pub summary: Option<Cow<'a, str>>,
    pub block_reason: Option<Cow<'a, str>>,
    pub created: Cow<'a, str>,
    pub updated: Cow<'a, str>,
}

impl<'a> SummaryRef<'a> {
    /// Reads the summary fields of a task document, with the same checks as [`Task::from_yaml`]:
    /// the fast reader for documents in the shape git-coord writes, the YAML parser for any other.
    pub fn from_yaml(bytes: &'a [u8], refname: &str, path: &str) -> Result<SummaryRef<'a>> {
        let fast = std::str::from_utf8(bytes)
            .ok()
            .filter(|_| bytes.len() as u64 <= MAX_DOCUMENT_BYTES);
        let d = match fast.and_then(canonical::read_summary) {
            Some((format, d)) => {
                check_format(format, refname, path)?;
                d
            }
            None => parse_checked::<SummaryDoc>(bytes, refname, path)?.into(),
        };
        check_fields(&d.id, d.priority, refname, path)?;
        Ok(d)
    }

    pub fn to_summary(&self) -> TaskSummary {
        let owned = |s: &Cow<'_, str>| s.to_string();
        TaskSummary {
            id: owned(&self.id),
            title: owned(&self.title),
            kind: self.kind,
            state: self.state,
            priority: self.priority,
            role: self.role.as_ref().map(owned),
            labels: self.labels.iter().map(owned).collect(),
            deps: self.deps.iter().map(owned).collect(),
            parent: self.parent.as_ref().map(owned),
            assignee: self.assignee.as_ref().map(owned),
            summary: self.summary.as_ref().map(owned),
            block_reason: self.block_reason.as_ref().map(owned),
            created: owned(&self.created),
            updated: owned(&self.updated),
        }
    }
}

impl From<SummaryDoc> for SummaryRef<'static> {
    fn from(d: SummaryDoc) -> Self {
        let list = |v: Vec<String>| v.into_iter().map(Cow::Owned).collect();
        SummaryRef {
            id: Cow::Owned(d.id),
            title: Cow::Owned(d.title),
            kind: d.kind,
            state: d.state,
            priority: d.priority,
            role: d.role.map(Cow::Owned),
            labels: list(d.labels),
            deps: list(d.deps),
            parent: d.parent.map(Cow::Owned),
            assignee: d.assignee.map(Cow::Owned),
            summary: d.summary.map(Cow::Owned),
            block_reason: d.block_reason.map(Cow::Owned),
            created: Cow::Owned(d.created),
            updated: Cow::Owned(d.updated),
        }
    }
}

/// A fast reader for task documents in the exact shape git-coord writes them (block style,
/// top-level keys at column 0, plain or simple double-quoted scalars, `|`/`|-` block scalars).
/// It reads only the summary fields and gives up (`None`) on anything else, which then goes to
/// the full YAML parser: hand-edited or foreign documents are always parsed properly.
mod canonical {
    use std::borrow::Cow;

    use super::{Kind, State, SummaryRef};

    /// The top-level keys of the documents git-coord writes (at most 32).
    const KNOWN_KEYS: [&str; 23] = [
        "format",
        "id",
        "title",
        "type",
        "state",
        "priority",
        "role",
        "labels",
        "deps",
        "followers",
        "parent",
        "assignee",
        "claimed_at",
        "summary",
        "block_reason",
        "created",
        "created_by",
        "updated",
        "description",
        "comments",
        "history",
        "conflicts",
        "origin",
    ];

    /// Other keys a document may have before the reader gives it to the parser.
    const MAX_KEYS: usize = 32;

    /// The format version and the summary fields, or None for the parser.
    pub(super) fn read_summary(text: &str) -> Option<(u32, SummaryRef<'_>)> {
        let mut doc = SummaryRef {
            id: Cow::Borrowed(""),
            title: Cow::Borrowed(""),
            kind: Kind::default(),
            state: State::default(),
            priority: super::DEFAULT_PRIORITY,
            role: None,
            labels: Vec::new(),
            deps: Vec::new(),
            parent: None,
            assignee: None,
            summary: None,
            block_reason: None,
            created: Cow::Borrowed(""),
            updated: Cow::Borrowed(""),
        };
        let mut format = 0;
        let (mut has_format, mut has_state, mut has_id) = (false, false, false);
        // Keys seen: those git-coord writes as bits, any other by name.
        let (mut seen_known, mut seen_other, mut others) = (0u32, [""; MAX_KEYS], 0);
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            let colon = line.bytes().position(|b| b == b':')?;
            let (key, rest) = (&line[..colon], &line[colon + 1..]);
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                return None;
            }
            match KNOWN_KEYS.iter().position(|k| *k == key) {
                Some(bit) if seen_known & (1 << bit) != 0 => return None,
                Some(bit) => seen_known |= 1 << bit,
                None if others == MAX_KEYS || seen_other[..others].contains(&key) => return None,
                None => {
                    seen_other[others] = key;
                    others += 1;
                }
            }
            let rest = match rest.strip_prefix(' ') {
                Some(r) => r,
                None if rest.is_empty() => "",
                None => return None,
            };
            // The lines that belong to this key: a block scalar, a sequence or a nested mapping.
            let block_start = lines.clone();
            let mut block_len = 0;
            while lines
                .next_if(|l| {
                    l.starts_with("  ") || l.starts_with("- ") || *l == "-" || l.is_empty()
                })
                .is_some()
            {
                block_len += 1;
            }
            let block = block_start.take(block_len);
            // A value on the key's line with lines under it (a plain scalar carried on, or
            // damage) is the parser's to read.
            if block_len > 0 && !rest.is_empty() && !rest.starts_with(['|', '>']) {
                return None;
            }
            // A block scalar's lines are all indented: a `- ` line at column 0 would be a
            // sequence where YAML allows none.
            if rest.starts_with(['|', '>'])
                && block.clone().any(|l| !l.is_empty() && !l.starts_with("  "))
            {
                return None;
            }
            match key {
                "labels" | "deps" => {
                    if !rest.is_empty() {
                        return None;
                    }
                    // `labels:` with no item is null, which the parser refuses for a list.
                    if block_len == 0 {
                        return None;
                    }
                    let items = block
                        .map(|l| l.strip_prefix("- ").and_then(scalar).map(Cow::Borrowed))
                        .collect::<Option<Vec<_>>>()?;
                    if key == "labels" {
                        doc.labels = items
                    } else {
                        doc.deps = items
                    }
                }
                "title" | "summary" | "block_reason" | "role" | "parent" | "assignee" | "id"
                | "created" | "updated" | "state" | "type" | "format" | "priority" => {
                    let value = if rest.starts_with('|') {
                        Cow::Owned(block_scalar(rest, block)?)
                    } else if block_len == 0 {
                        Cow::Borrowed(scalar(rest)?)
                    } else {
                        return None;
                    };
                    // Only a plain scalar can be null: `"~"` and a block of `~` are text.
                    let plain = !rest.starts_with(['"', '|']);
                    let is_null = plain && (value == "null" || value == "~");
                    match key {
                        "title" if !is_null => doc.title = value,
                        "summary" => doc.summary = (!is_null).then_some(value),
                        "block_reason" => doc.block_reason = (!is_null).then_some(value),
                        "role" => doc.role = (!is_null).then_some(value),
                        "parent" => doc.parent = (!is_null).then_some(value),
                        "assignee" => doc.assignee = (!is_null).then_some(value),
                        "id" if !is_null => (doc.id, has_id) = (value, true),
                        "created" if !is_null => doc.created = value,
                        "updated" if !is_null => doc.updated = value,
                        "state" => (doc.state, has_state) = (State::parse(&value).ok()?, true),
                        "type" => doc.kind = Kind::parse(&value).ok()?,
                        "format" => (format, has_format) = (value.parse().ok()?, true),
                        "priority" => doc.priority = value.parse().ok()?,
                        _ => return None,
                    }
                }
                // description, created_by, claimed_at, followers, comments, history: not needed,
                // but a value on the key's line that would not parse is the parser's to report.
                _ if rest.is_empty() || rest.starts_with(['|', '>']) || well_formed(rest) => {}
                _ => return None,
            }
        }
        let complete = has_format
            && has_state
            && has_id
            && !doc.title.is_empty()
            && !doc.created.is_empty()
            && !doc.updated.is_empty();
        complete.then_some((format, doc))
    }

    /// A plain scalar, or a double-quoted one without escapes.
    fn scalar(s: &str) -> Option<&str> {
        if let Some(inner) = s.strip_prefix('"') {
            let inner = inner.strip_suffix('"')?;
            return (!inner.bytes().any(|b| b == b'"' || b == b'\\')).then_some(inner);
        }
        let first = s.bytes().next()?;
        let special = b"&*!|>{}[]%@`'\"#,?:-<=~ \t";
        // One pass for ": " and " #" (or with a tab), which would start a mapping or a comment.
        let breaks = |w: &[u8]| matches!(w, [b':', b' ' | b'\t'] | [b' ' | b'\t', b'#']);
        if special.contains(&first)
            || s.ends_with([' ', '\t'])
            || s.ends_with(':')
            || s.as_bytes().windows(2).any(breaks)
        {
            return None;
        }
        Some(s)
    }

    /// Whether a value the reader skips is one whole scalar: double-quoted up to its one
    /// unescaped closing quote, single-quoted with inner quotes doubled, or plain as [`scalar`]
    /// reads it.
    fn well_formed(s: &str) -> bool {
        if let Some(inner) = s.strip_prefix('"') {
            let mut escaped = false;
            for (i, b) in inner.bytes().enumerate() {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => return i + 1 == inner.len(),
                    _ => {}
                }
            }
            return false;
        }
        if let Some(inner) = s.strip_prefix('\'') {
            return inner
                .strip_suffix('\'')
                .is_some_and(|inner| !inner.replace("''", "").contains('\''));
        }
        scalar(s).is_some()
    }

    /// A literal block scalar (`|` or `|-`) indented by two spaces.
    fn block_scalar<'l>(header: &str, lines: impl Iterator<Item = &'l str>) -> Option<String> {
        let keep_newline = match header {
            "|" => true,
            "|-" => false,
            _ => return None,
        };
        let mut body: Vec<&str> = lines
            .map(|l| l.strip_prefix("  ").or((l.is_empty()).then_some("")))
            .collect::<Option<_>>()?;
        while body.last().is_some_and(|l| l.is_empty()) {
            body.pop();
        }
        // YAML takes the indentation from the first line with text: it must be two spaces.
        match body.iter().find(|l| !l.is_empty()) {
            Some(first) if !first.starts_with([' ', '\t']) => {}
            _ => return None,
        }
        let mut out = body.join("\n");
        if keep_newline {
            out.push('\n');
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(title: &str, summary: Option<&str>, labels: &[&str]) -> Task {
        Task {
            format: TASK_FORMAT,
            id: "0123456789ab".into(),
            title: title.into(),
            kind: Kind::Bug,
            state: State::Claimed,
            priority: 0,
            role: Some("dev".into()),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            deps: vec!["ba9876543210".into()],
            followers: Vec::new(),
            parent: None,
            assignee: Some("alice".into()),
            claimed_at: Some("2026-01-01T00:00:01.000Z".into()),
            summary: summary.map(Into::into),
            block_reason: None,
            created: "2026-01-01T00:00:00.000Z".into(),
            created_by: "olga".into(),
            updated: "2026-01-01T00:00:02.000Z".into(),
            description: "multi\nline: with # and - dashes\n\n  indented\n".into(),
            comments: vec![Comment {
                id: "c1".into(),
                author: "bob".into(),
                at: "x".into(),
                text: "a\nb".into(),
                project: None,
                human: None,
            }],
            history: vec![Event {
                at: "x".into(),
                agent: "olga".into(),
                op: "new".into(),
                note: Some("n: 1".into()),
            }],
            conflicts: Vec::new(),
            // A nested mapping the fast reader must skip.
            origin: Some(Origin {
                project: "github.com/acme/app".into(),
                agent: "alice".into(),
                human: "Ada <ada@example.com>".into(),
                task: Some("0123456789ab".into()),
            }),
            extra: Default::default(),
        }
    }

    #[test]
    fn the_fast_summary_reader_agrees_with_the_yaml_parser() {
        let titles = [
            "plain",
            "a: colon",
            "# hash",
            "\"quoted\"",
            " lead",
            "trail ",
            "null",
            "123",
            "true",
            "ünï ✓",
            "it's",
            "back\\slash",
            "- dash",
            "x #y",
            "[flow]",
            "{map}",
            "&anchor",
            "*alias",
            "!tag",
            "%p",
            "@a",
            "`b`",
            "~",
            "a:b",
            "tab\there",
            "ends:",
        ];
        let summaries = [
            None,
            Some("one line"),
            Some("two\nlines"),
            Some("trailing\n"),
            Some(""),
            Some("  indented"),
        ];
        let path = "tasks/01/0123456789ab.yaml";
        for title in titles {
            for summary in summaries {
                let t = task(title, summary, &["a", "b-c", "1"]);
                let yaml = t.to_yaml();
                let read = TaskSummary::from_yaml(yaml.as_bytes(), "refs/coord/tasks", path)
                    .expect("reads");
                assert_eq!(read, TaskSummary::from(&t), "document:\n{yaml}");
            }
        }
        let common = task("Fix the crash", Some("done"), &["api"]).to_yaml();
        assert!(
            canonical::read_summary(&common).is_some(),
            "the usual shape takes the fast path"
        );
    }

    /// What the YAML parser alone makes of a document (the path the fast reader gives up to).
    fn parsed(doc: &str) -> SummaryRef<'static> {
        let path = "tasks/01/0123456789ab.yaml";
        let d: SummaryDoc =
            parse_checked(doc.as_bytes(), "refs/coord/tasks", path).expect("parses");
        check_fields(&d.id, d.priority, "refs/coord/tasks", path).expect("checks");
        d.into()
    }

    #[test]
    fn the_fast_reader_borrows_what_the_parser_would_read() {
        let path = "tasks/01/0123456789ab.yaml";
        let mut t = task("Fix the crash", Some("two\nlines"), &["api", "ui"]);
        for (state, block_reason, assignee) in [
            (State::Open, None, None),
            (State::Blocked, Some("waiting: on ops"), Some("bob")),
            (State::Done, None, Some("alice")),
        ] {
            (t.state, t.block_reason, t.assignee) = (
                state,
                block_reason.map(Into::into),
                assignee.map(Into::into),
            );
            t.updated = t.created.clone();
            let yaml = t.to_yaml();
            let (format, fast) = canonical::read_summary(&yaml).expect("the fast path");
            assert_eq!(format, TASK_FORMAT);
            assert_eq!(fast, parsed(&yaml), "document:\n{yaml}");
            assert_eq!(
                SummaryRef::from_yaml(yaml.as_bytes(), "refs/coord/tasks", path).expect("reads"),
                fast
            );
            assert_eq!(fast.to_summary(), TaskSummary::from(&t));
            // Plain fields point into the document; only the block scalar was built.
            assert!(matches!(fast.title, Cow::Borrowed(_)));
            assert!(matches!(fast.created, Cow::Borrowed(_)));
            assert!(fast.labels.iter().all(|l| matches!(l, Cow::Borrowed(_))));
            assert!(matches!(fast.summary, Some(Cow::Owned(_))));
        }
        // CRLF line ends read the same on both paths.
        let crlf = task("crlf", None, &["a"]).to_yaml().replace('\n', "\r\n");
        let (_, fast) = canonical::read_summary(&crlf).expect("the fast path");
        assert_eq!(fast, parsed(&crlf));
    }

    #[test]
    fn a_hostile_document_is_refused_on_either_path() {
        let path = "tasks/01/0123456789ab.yaml";
        let good = task("t", None, &["a"]).to_yaml();
        let over = format!(
            "{good}description: |\n{}",
            "  padding padding padding padding\n".repeat(40_000)
        );
        for (doc, why) in [
            (good.replace("format: 1", "format: 7"), "newer"),
            (good.replace("format: 1", "format: 0"), "format version 0"),
            (good.replace("priority: 0", "priority: 9"), "priority 9"),
            (
                good.replace("id: 0123456789ab", "id: 0123456789ff"),
                "does not match",
            ),
            (good.replace("title: t", "title: &a t"), "Anchors"),
            (good.replace("title: t", "title: [t"), ""),
            (format!("{good}state: done\n"), "duplicate"),
            (over, "limit"),
        ] {
            let err = SummaryRef::from_yaml(doc.as_bytes(), "refs/coord/tasks", path)
                .expect_err(&doc[..doc.len().min(200)]);
            assert!(
                err.to_string().contains(why),
                "{why:?} not in {err} for:\n{}",
                &doc[..doc.len().min(200)]
            );
        }
    }

    /// A small random source for generated documents: its seed is printed, and
    /// `GIT_COORD_TEST_SEED` sets it to repeat a failure.
    struct Seeded(u64);

    impl Seeded {
        fn from_env() -> (u64, Seeded) {
            let seed = std::env::var("GIT_COORD_TEST_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| crate::model::time::now_seconds() as u64 | 1);
            eprintln!("seed {seed} (set GIT_COORD_TEST_SEED to repeat)");
            (seed, Seeded(seed))
        }

        fn below(&mut self, n: usize) -> usize {
            let x = &mut self.0;
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            (*x % n as u64) as usize
        }

        fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
            &from[self.below(from.len())]
        }

        /// Text from pieces YAML gives a meaning to, and plain ones.
        fn text(&mut self) -> String {
            const PIECES: &[&str] = &[
                "a", "fix", " ", "  ", ":", ": ", " #", "#", "\"", "'", "-", "- ", "|", ">", "&",
                "*", "!", "%", "@", "`", "[", "]", "{", "}", ",", "?", "~", "null", "1", "\\", "é",
                "\t", "Null", "NULL", "true", "0x1", "\t#",
            ];
            let mut out = String::new();
            for _ in 0..=self.below(6) {
                out.push_str(self.pick::<&str>(PIECES));
            }
            out
        }
    }

    /// `doc` with only the top-level keys the fast reader reads, each with its lines.
    fn summary_fields_alone(doc: &str) -> String {
        const READ: [&str; 15] = [
            "format",
            "id",
            "title",
            "type",
            "state",
            "priority",
            "role",
            "labels",
            "deps",
            "parent",
            "assignee",
            "summary",
            "block_reason",
            "created",
            "updated",
        ];
        let mut keep = false;
        let mut out = String::new();
        for line in doc.lines() {
            if !line.is_empty() && !line.starts_with([' ', '-']) {
                keep = READ.contains(&line.split(':').next().unwrap_or(line));
            }
            if keep {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Whatever the fast reader reads, the YAML parser reads the same: documents git-coord
    /// writes from hostile field values, then damaged line by line and byte by byte.
    #[test]
    fn the_fast_reader_agrees_with_the_parser_on_generated_documents() {
        const LINES: [&str; 16] = [
            "title: x",
            "  indented",
            "- item",
            "labels: [a]",
            "labels:",
            "state: done",
            "title: &a b",
            "# comment",
            "---",
            "...",
            "summary: |-",
            "summary: >",
            "priority: 1",
            "estimate: 3",
            "  - nested",
            "",
        ];
        const BYTES: [char; 14] = [
            ':', ' ', '#', '"', '\'', '-', '|', '\n', '\t', '[', '&', '\\', 'é', 'x',
        ];
        let (seed, mut rng) = Seeded::from_env();
        let path = "tasks/01/0123456789ab.yaml";
        let (mut fast_taken, mut total, mut tolerated) = (0, 0, 0);
        for _ in 0..3_000 {
            let labels: Vec<String> = (0..rng.below(3)).map(|_| rng.text()).collect();
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            let summary = (rng.below(2) == 0).then(|| rng.text());
            let summary = summary.map(|s| if rng.below(2) == 0 { s + "\nmore" } else { s });
            let title = rng.text();
            let mut t = task(title.trim(), summary.as_deref(), &labels);
            if t.title.is_empty() {
                t.title = "t".into();
            }
            let mut doc = t.to_yaml();
            for _ in 0..rng.below(3) {
                let mut lines: Vec<String> = doc.lines().map(str::to_string).collect();
                let at = rng.below(lines.len() + 1);
                match rng.below(5) {
                    0 => lines.insert(at, rng.pick(&LINES).to_string()),
                    1 if at < lines.len() => drop(lines.remove(at)),
                    2 if at < lines.len() => lines.insert(at, lines[at].clone()),
                    3 if at < lines.len() => lines[at].insert_str(0, "  "),
                    _ if at < lines.len() => {
                        let chars: Vec<char> = lines[at].chars().collect();
                        let i = rng.below(chars.len() + 1);
                        let mut changed: String = chars[..i].iter().collect();
                        changed.push(*rng.pick(&BYTES));
                        changed.extend(chars[i..].iter().skip(rng.below(2)));
                        lines[at] = changed;
                    }
                    _ => {}
                }
                doc = lines.join("\n") + "\n";
            }
            total += 1;
            let Some(_) = canonical::read_summary(&doc) else {
                continue;
            };
            fast_taken += 1;
            let fast = SummaryRef::from_yaml(doc.as_bytes(), "refs/coord/tasks", path);
            let parsed = parse_checked::<SummaryDoc>(doc.as_bytes(), "refs/coord/tasks", path)
                .and_then(|d| {
                    check_fields(&d.id, d.priority, "refs/coord/tasks", path)?;
                    Ok(SummaryRef::from(d))
                });
            match (fast, parsed) {
                (Ok(fast), Ok(parsed)) => assert_eq!(fast, parsed, "seed {seed}, document:\n{doc}"),
                (Err(_), Err(_)) => {}
                // Damage inside a field the fast reader skips (the description, comments,
                // history, an unknown field) is found when the whole document is read; the
                // fields it reads, it reads as the parser reads them alone.
                (Ok(fast), Err(_)) => {
                    let alone = summary_fields_alone(&doc);
                    let parsed = parse_checked::<SummaryDoc>(alone.as_bytes(), "r", path)
                        .map(SummaryRef::from);
                    assert_eq!(
                        Ok(fast),
                        parsed.map_err(|e| e.to_string()),
                        "seed {seed}:\n{doc}"
                    );
                    tolerated += 1;
                }
                (fast, parsed) => {
                    panic!("seed {seed}: fast {fast:?}, parser {parsed:?}, document:\n{doc}")
                }
            }
        }
        eprintln!(
            "{total} documents, {fast_taken} on the fast path, {tolerated} with nested damage"
        );
        assert!(
            fast_taken * 8 > total,
            "only {fast_taken} of {total} documents took the fast path, seed {seed}"
        );
    }

    #[test]
    fn the_fast_reader_gives_unusual_documents_to_the_parser() {
        for doc in [
            "format: 1\nid: 0123456789ab\ntitle: 'single'\nstate: open\ncreated: a\nupdated: b\n",
            "# comment\nformat: 1\n",
            "format: 1\nformat: 1\n",
            "format: 1\nid: 0123456789ab\ntitle: x\nstate: open\ncreated: a\nupdated: b\nestimate: 1\nestimate: 2\n",
            "{format: 1}\n",
            "format: 1\nid: 0123456789ab\ntitle: x\nstate: open\ncreated: a\nupdated: b\nlabels: [a, b]\n",
            "format: 1\nid: 0123456789ab\ntitle: x\nstate: open\ncreated: a\nupdated: b\nsummary: |+\n  x\n",
        ] {
            assert!(canonical::read_summary(doc).is_none(), "{doc}");
        }
    }
}

#[cfg(test)]
mod forward_compat {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_read_and_a_write() {
        let doc = "format: 1\nid: 0123456789ab\ntitle: x\nstate: open\ncreated: a\ncreated_by: o\nupdated: b\nestimate: 3\nreviewers:\n- ann\n";
        let task = Task::from_yaml(
            doc.as_bytes(),
            "refs/coord/tasks",
            "tasks/01/0123456789ab.yaml",
        )
        .expect("parses");
        assert_eq!(task.extra.get("estimate"), Some(&serde_json::json!(3)));
        let again = Task::from_yaml(
            task.to_yaml().as_bytes(),
            "refs/coord/tasks",
            "tasks/01/0123456789ab.yaml",
        )
        .expect("parses");
        assert_eq!(again, task);
        assert_eq!(
            again.extra.get("reviewers"),
            Some(&serde_json::json!(["ann"]))
        );
    }
}

/// How one field of a task merges (SEMANTICS.md, "Sync"). Every field a task has is named in
/// [`field_rule`]; a test checks none is left to chance, so a renamed or new field must choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Moves with the claim (state, assignee, ...): done beats everything, then the earliest
    /// claim (the latest among dones); the whole group comes from one side.
    Claim,
    /// Union of the comments, by comment id, in time order.
    Comments,
    /// Union of the events, in time order.
    History,
    /// A set: what either side added, minus what either side removed.
    Set,
    /// The later (greater) of the two.
    Latest,
    /// Settled by the merge itself: the conflicts it records.
    Conflicts,
    /// One side's change is taken; changed on both, the side updated last wins and the other
    /// value is recorded as a conflict.
    OneSide,
}

/// The rule of each field of a task, by its name in the document. A field this build does not
/// know (written by a newer one) merges [`Rule::OneSide`].
fn field_rule(field: &str) -> Option<Rule> {
    Some(match field {
        "state" | "assignee" | "claimed_at" | "summary" | "block_reason" => Rule::Claim,
        "comments" => Rule::Comments,
        "history" => Rule::History,
        "labels" | "deps" | "followers" => Rule::Set,
        "updated" | "format" => Rule::Latest,
        "conflicts" => Rule::Conflicts,
        "id" | "title" | "type" | "priority" | "role" | "parent" | "created" | "created_by"
        | "description" | "origin" => Rule::OneSide,
        _ => return None,
    })
}

/// The fields that move together when a task changes hands or finishes.
const CLAIM_FIELDS: [&str; 5] = ["state", "assignee", "claimed_at", "summary", "block_reason"];

/// Merges two versions of a task that forked at `base`. Fields changed on one side are taken;
/// comments and history are unions; labels and dependencies merge as sets; the claim fields
/// move as one ([`settle_claims`]); anything else changed on both
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
        let rule = field_rule(key).unwrap_or(Rule::OneSide);
        if matches!(rule, Rule::Claim | Rule::Conflicts) {
            continue;
        }
        let (bv, ov, tv) = (b.get(key), o.get(key), t.get(key));
        let value = match rule {
            Rule::Comments => union_by(
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
            Rule::History => union_by(ov, tv, Value::to_string, |e| {
                (
                    e.get("at").map(Value::to_string).unwrap_or_default(),
                    e.to_string(),
                )
            }),
            Rule::Set => merge_set(bv, ov, tv),
            Rule::Latest => max_value(ov, tv),
            Rule::Claim | Rule::Conflicts | Rule::OneSide => match three_way(bv, ov, tv) {
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
/// Done beats claimed, blocked and open. Among claims the earliest wins: the remote took it
/// first. Among dones the latest claim wins: a later claim by another agent is a takeover,
/// which fences off the earlier holder, whose done could only have been kept in a clone cut off
/// from the remote (one that reached it would have kept the task from being taken over).
fn settle_claims<'t>(a: &'t Task, b: &'t Task) -> (&'t Task, &'t Task, bool) {
    let rank = |t: &Task| match t.state {
        State::Done => 3,
        State::Claimed => 2,
        State::Blocked => 1,
        State::Open => 0,
    };
    let race = a.state == State::Claimed && b.state == State::Claimed && a.assignee != b.assignee;
    let both_done = a.state == State::Done && b.state == State::Done;
    // A missing claim time sorts last among claims and first among dones: it never wins a tie.
    let claimed_at = |t: &Task| match (&t.claimed_at, both_done) {
        (Some(at), _) => at.clone(),
        (None, false) => "~".into(),
        (None, true) => String::new(),
    };
    let by_claim = match both_done {
        false => claimed_at(a).cmp(&claimed_at(b)),
        true => claimed_at(b).cmp(&claimed_at(a)),
    };
    let rest = |t: &'t Task| {
        (
            t.assignee.clone().unwrap_or_default(),
            t.summary.clone(),
            t.block_reason.clone(),
        )
    };
    let order = rank(b)
        .cmp(&rank(a))
        .then(by_claim)
        .then_with(|| rest(a).cmp(&rest(b)));
    if order.is_le() {
        (a, b, race)
    } else {
        (b, a, race)
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

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
            followers: Vec::new(),
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
            origin: None,
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

    /// A holder cut off from the remote kept its done; meanwhile another agent took the task
    /// over (a later claim) and finished it. The takeover's done holds, whichever side merges,
    /// and the kept one is recorded as a conflict.
    #[test]
    fn between_two_dones_the_takeover_holds() {
        let base = task(
            State::Claimed,
            Some("cut"),
            Some("2026-01-01T00:00:01Z"),
            "t",
            "2026-01-01T00:00:01Z",
        );
        let mut kept = task(
            State::Done,
            Some("cut"),
            Some("2026-01-01T00:00:01Z"),
            "t",
            "2026-01-01T00:00:09Z",
        );
        kept.summary = Some("mine".into());
        let mut taken = task(
            State::Done,
            Some("taker"),
            Some("2026-01-01T00:00:05Z"),
            "t",
            "2026-01-01T00:00:07Z",
        );
        taken.summary = Some("theirs".into());
        let (m1, n1) = merge_task(Some(&base), &kept, &taken);
        let (m2, n2) = merge_task(Some(&base), &taken, &kept);
        assert_eq!(m1, m2);
        assert_eq!((n1, n2), (None, None));
        assert_eq!(m1.assignee.as_deref(), Some("taker"));
        assert_eq!(m1.summary.as_deref(), Some("theirs"));
        assert_eq!(m1.conflicts.len(), 1, "the kept done is recorded");
        // A done without a claim time never beats one with it.
        let mut unclaimed = kept.clone();
        unclaimed.claimed_at = None;
        let (m3, _) = merge_task(Some(&base), &unclaimed, &taken);
        let (m4, _) = merge_task(Some(&base), &taken, &unclaimed);
        assert_eq!(m3, m4);
        assert_eq!(m3.assignee.as_deref(), Some("taker"));
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
            project: None,
            human: None,
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
    fn every_field_of_a_task_has_a_merge_rule() {
        let mut full = task(State::Claimed, Some("a"), Some("t0"), "t", "t1");
        full.role = Some("dev".into());
        full.deps = vec!["ba9876543210".into()];
        full.followers = vec!["b".into()];
        full.parent = Some("ba9876543211".into());
        full.summary = Some("s".into());
        full.block_reason = Some("r".into());
        full.description = "d".into();
        full.comments = vec![Comment {
            id: "c".into(),
            author: "a".into(),
            at: "t".into(),
            text: "x".into(),
            project: None,
            human: None,
        }];
        full.push_event("a", "new", None, "t");
        full.conflicts = vec![Conflict {
            field: "title".into(),
            kept: "1".into(),
            dropped: "2".into(),
            at: "t".into(),
        }];
        full.origin = Some(Origin {
            project: "p".into(),
            agent: "a".into(),
            human: "h".into(),
            task: None,
        });
        let Ok(Value::Object(fields)) = serde_json::to_value(&full) else {
            panic!("a task is an object");
        };
        let missing: Vec<&String> = fields.keys().filter(|k| field_rule(k).is_none()).collect();
        assert!(
            missing.is_empty(),
            "fields without a merge rule: {missing:?}"
        );
        let claim: Vec<&str> = fields
            .keys()
            .map(String::as_str)
            .filter(|k| field_rule(k) == Some(Rule::Claim))
            .collect();
        let mut group = CLAIM_FIELDS.to_vec();
        group.sort();
        assert_eq!(
            claim, group,
            "the claim group is the fields of the claim rule"
        );
    }

    #[test]
    fn followers_merge_as_a_set_on_both_sides_alike() {
        let mut base = task(State::Open, None, None, "t", "2026-01-01T00:00:00Z");
        base.followers = vec!["ann".into(), "cy".into()];
        let mut a = base.clone();
        a.followers = vec!["cy".into()]; // ann unfollows
        a.updated = "2026-01-01T00:00:01Z".into();
        let mut b = base.clone();
        b.followers = vec!["ann".into(), "cy".into(), "bo".into()]; // bo follows
        b.updated = "2026-01-01T00:00:02Z".into();
        let (m1, _) = merge_task(Some(&base), &a, &b);
        let (m2, _) = merge_task(Some(&base), &b, &a);
        assert_eq!(m1, m2);
        let mut followers = m1.followers.clone();
        followers.sort();
        assert_eq!(followers, ["bo", "cy"]);
        assert!(m1.conflicts.is_empty(), "{:?}", m1.conflicts);
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
