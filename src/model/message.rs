//! Messages and read marks: immutable message documents in refs/coord/inbox, the places one
//! message is filed under (the same blob in each), attachments, and per-agent marks.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{id, name, parse_document, time};

/// The message and mark format this build writes and the newest it reads.
pub const MESSAGE_FORMAT: u32 = 1;
pub const MAX_SUBJECT: usize = 200;
/// The body of a message, in bytes (the document limit leaves room for the rest).
pub const MAX_BODY: usize = 256 * 1024;
pub const MAX_RECIPIENTS: usize = 1000;
/// The target of mail to a whole project (`send --to NAME` from another project): it lands in
/// the project's shared box, unread for every agent until one of them acknowledges it.
pub const SHARED_TARGET: &str = "@project";
/// Who notices come from: git-coord itself (a sync telling an agent what changed). Nobody reads
/// its box, so a reply to a notice goes where the notice points.
pub const NOTICE_SENDER: &str = "git-coord";

/// A task of another project, by that project's identity (its normalized URL) and the task's
/// full id: what a notice about it points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectTask {
    pub project: String,
    pub task: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Importance {
    Low,
    #[default]
    Normal,
    High,
}

impl Importance {
    pub fn as_str(self) -> &'static str {
        match self {
            Importance::Low => "low",
            Importance::Normal => "normal",
            Importance::High => "high",
        }
    }

    pub fn parse(s: &str) -> Result<Importance> {
        Ok(match s {
            "low" => Importance::Low,
            "normal" => Importance::Normal,
            "high" => Importance::High,
            _ => return Err(Error::invalid("importance", s, "use low, normal or high")),
        })
    }
}

/// An attachment as the message records it; its bytes are the blob at
/// [`Message::attachment_path`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The name it was sent under. Only a hint: saving never trusts it as a path.
    pub name: String,
    pub size: u64,
}

/// One message. Never rewritten once sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub format: u32,
    pub id: String,
    pub from: String,
    /// The human behind the sender, `Name <email>`.
    pub human: String,
    /// The project the sender works in, when it is not this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_project: Option<String>,
    /// The target as given: `bob`, `@dev`, `@all`, `#3f9a2c0b1d4e`.
    pub target: String,
    /// The agents it was delivered to.
    #[serde(default)]
    pub to: Vec<String>,
    pub subject: String,
    /// The conversation: the first message's id, or the task's id for a task's thread.
    pub thread: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// For a notice about a task of another project: that task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<ProjectTask>,
    #[serde(default)]
    pub importance: Importance,
    pub created: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Fields of a newer build of the same format, kept as they are.
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Message {
    /// Where the message lives: every message is here once.
    pub fn path(id: &str) -> String {
        format!("messages/{}/{id}.yaml", id::shard(id))
    }

    /// The same document filed in a recipient's box.
    pub fn box_path(agent: &str, id: &str) -> String {
        format!("boxes/{agent}/{}/{id}.yaml", id::shard(id))
    }

    /// The same document filed in the project's shared box.
    pub fn shared_path(id: &str) -> String {
        format!("shared/{}/{id}.yaml", id::shard(id))
    }

    /// The same document filed under its thread.
    pub fn thread_path(thread: &str, id: &str) -> String {
        format!("threads/{}/{thread}/{id}.yaml", id::shard(thread))
    }

    /// The bytes of attachment `n` (0-based).
    pub fn attachment_path(id: &str, n: usize) -> String {
        format!("attachments/{}/{id}/{n}", id::shard(id))
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("a message always serializes")
    }

    /// The first non-empty line of the body, for listings and briefs.
    pub fn first_line(&self) -> &str {
        first_line(&self.body)
    }

    /// Parses and checks a message document; `path` names it in errors.
    pub fn from_yaml(bytes: &[u8], refname: &str, path: &str) -> Result<Message> {
        let msg: Message =
            parse_document(bytes, refname, path, MESSAGE_FORMAT, |m: &Message| m.format)?;
        let malformed = |why: String| Error::Malformed {
            refname: refname.into(),
            path: path.into(),
            why,
        };
        if !id::is_full_id(&msg.id) || !path.ends_with(&format!("/{}.yaml", msg.id)) {
            return Err(malformed(format!(
                "id '{}' does not match its path",
                msg.id
            )));
        }
        name::validate("agent name", &msg.from).map_err(|e| malformed(e.to_string()))?;
        for to in &msg.to {
            name::validate("agent name", to).map_err(|e| malformed(e.to_string()))?;
        }
        if !id::is_full_id(&msg.thread) {
            return Err(malformed("thread is not a full id".into()));
        }
        for (field, value) in [("reply_to", &msg.reply_to), ("task", &msg.task)] {
            if value.as_deref().is_some_and(|v| !id::is_full_id(v)) {
                return Err(malformed(format!("{field} is not a full id")));
            }
        }
        if let Some(about) = &msg.about
            && (!id::is_full_id(&about.task) || about.project.trim().is_empty())
        {
            return Err(malformed(
                "about is not a project and a full task id".into(),
            ));
        }
        if time::parse(&msg.created).is_none() {
            return Err(malformed("created is not a timestamp".into()));
        }
        if msg.subject.contains('\n') {
            return Err(malformed("the subject has a line break".into()));
        }
        Ok(msg)
    }
}

pub fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// What a listing shows of a message: everything but the body and the attachments' bytes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MessageSummary {
    pub id: String,
    pub created: String,
    pub from: String,
    pub importance: Importance,
    pub thread: String,
    pub task: Option<String>,
    pub attachments: usize,
    pub subject: String,
    pub first_line: String,
}

impl MessageSummary {
    pub fn of(msg: &Message) -> MessageSummary {
        MessageSummary {
            id: msg.id.clone(),
            created: msg.created.clone(),
            // Someone from another project shows as `project:agent`.
            from: match &msg.from_project {
                Some(project) => format!("{project}:{}", msg.from),
                None => msg.from.clone(),
            },
            importance: msg.importance,
            thread: msg.thread.clone(),
            task: msg.task.clone(),
            attachments: msg.attachments.len(),
            subject: msg.subject.clone(),
            first_line: clip(msg.first_line(), 160),
        }
    }
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// What one agent did with one message, at `marks/<agent>/<shard>/<id>.yaml`. Only the agent
/// writes its own marks; a mark never changes the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub format: u32,
    pub read: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked: Option<String>,
}

impl Mark {
    pub fn path(agent: &str, id: &str) -> String {
        format!("marks/{agent}/{}/{id}.yaml", id::shard(id))
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("a mark always serializes")
    }

    pub fn from_yaml(bytes: &[u8], refname: &str, path: &str) -> Result<Mark> {
        parse_document(bytes, refname, path, MESSAGE_FORMAT, |m: &Mark| m.format)
    }

    /// Two versions of one read mark: the earliest read, the earliest acknowledgement.
    pub fn merge(path: &str, ours: &[u8], theirs: &[u8]) -> Option<Vec<u8>> {
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
}

/// Someone who has sent a message here, at `people/<name>.yaml`: a name that `send --to` accepts
/// even when no agent of that name is registered (an organiser, a human).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub format: u32,
    pub name: String,
    pub human: String,
    pub first_seen: String,
}

impl Person {
    pub fn path(name: &str) -> String {
        format!("people/{name}.yaml")
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("a person always serializes")
    }
}

/// A name under which an attachment may be saved in a directory: the last component of the
/// recorded name, never empty, never `.` or `..`, never hidden, without control or invisible
/// format characters.
pub fn safe_file_name(recorded: &str, n: usize) -> String {
    let last = recorded
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|&c| !c.is_control() && !is_invisible(c))
        .collect::<String>();
    let trimmed = last.trim().trim_start_matches('.');
    if trimmed.is_empty() || trimmed.len() > 200 {
        format!("attachment-{n}")
    } else {
        trimmed.to_string()
    }
}

/// Characters that change how a name reads without showing themselves: bidirectional controls
/// (U+202E makes `txt.exe` read `exe.txt`), zero-width characters, fillers, variation selectors,
/// tags, and the rest of Unicode's format characters (category Cf).
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_never_leave_the_directory() {
        assert_eq!(safe_file_name("../../etc/x", 0), "x");
        assert_eq!(safe_file_name("/abs/path", 1), "path");
        assert_eq!(safe_file_name("..", 2), "attachment-2");
        assert_eq!(safe_file_name("a\\..\\b.log", 3), "b.log");
        assert_eq!(safe_file_name(".hidden", 4), "hidden");
        assert_eq!(safe_file_name("dir/", 5), "attachment-5");
        assert_eq!(safe_file_name("ok\n.txt", 6), "ok.txt");
        assert_eq!(
            safe_file_name("invoice\u{202E}fdp.exe", 7),
            "invoicefdp.exe"
        );
        assert_eq!(
            safe_file_name("\u{2066}a\u{200B}b\u{FEFF}\u{061C}\u{200E}.txt\u{2069}", 8),
            "ab.txt"
        );
        assert_eq!(safe_file_name("\u{202D}\u{200F}", 9), "attachment-9");
    }
}
