//! A task: one YAML document at `tasks/<shard>/<id>.yaml` in refs/coord/tasks.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{MAX_DOCUMENT_BYTES, id, parse_yaml};

/// The task document format this build writes and the newest it reads.
pub const TASK_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum State {
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
}

fn default_priority() -> u8 {
    DEFAULT_PRIORITY
}

#[derive(Deserialize)]
struct FormatProbe {
    format: u32,
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

/// Parses a document after checking its size and encoding, and checks its format version.
fn parse_checked<T: serde::de::DeserializeOwned + Versioned>(
    bytes: &[u8],
    refname: &str,
    path: &str,
) -> Result<T> {
    let malformed = |why: String| Error::Malformed {
        refname: refname.into(),
        path: path.into(),
        why,
    };
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(malformed(format!(
            "{} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8".into()))?;
    let doc: T = match parse_yaml(text) {
        Ok(doc) => doc,
        Err(why) => {
            if let Ok(probe) = parse_yaml::<FormatProbe>(text) {
                check_format(probe.format, refname, path)?;
            }
            return Err(malformed(why));
        }
    };
    check_format(doc.format(), refname, path)?;
    Ok(doc)
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
#[derive(Deserialize)]
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
        let d: SummaryDoc = parse_checked(bytes, refname, path)?;
        check_fields(&d.id, d.priority, refname, path)?;
        Ok(TaskSummary {
            id: d.id,
            title: d.title,
            kind: d.kind,
            state: d.state,
            priority: d.priority,
            role: d.role,
            labels: d.labels,
            deps: d.deps,
            parent: d.parent,
            assignee: d.assignee,
            summary: d.summary,
            block_reason: d.block_reason,
            created: d.created,
            updated: d.updated,
        })
    }

    /// Urgency order: lower priority number first, then older first, then id.
    pub fn urgency_key(&self) -> (u8, &str, &str) {
        (self.priority, &self.created, &self.id)
    }
}
