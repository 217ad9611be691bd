//! Messages between agents and humans, in refs/coord/inbox: send (to an agent, a role, everyone or
//! a task's thread), the inbox of one agent, read and acknowledge marks, replies, threads, and
//! attachments saved safely.
//!
//! Tree of the ref (FORMAT.md, "The inbox"): every message at `messages/<shard>/<id>.yaml`, and
//! the same blob filed at `boxes/<agent>/...` for each recipient and at `threads/...` for its
//! thread, so an inbox or a thread is read without looking at anyone else's messages.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::git::{Oid, Repo};
use crate::model::message::{
    Attachment, Importance, MAX_BODY, MAX_RECIPIENTS, MAX_SUBJECT, MESSAGE_FORMAT, Mark, Message,
    Person, first_line, safe_file_name,
};
pub use crate::model::message::{MessageSummary, clip};
use crate::model::{MAX_DOCUMENT_BYTES, id, name, time};
use crate::ops::agents::Agents;
use crate::ops::context::Coord;
use crate::ops::tasks::Tasks;
use crate::store::Problem;
use crate::store::{Actor, Change, Snapshot, Store};

pub use crate::ops::notices::NoticeAbout;
pub(crate) use crate::ops::notices::filing;
pub use crate::store::INBOX_REF;
/// What saving a message's attachments did.
#[derive(Debug, Default)]
pub struct SavedAttachments {
    /// The files written, in the message's order.
    pub written: Vec<PathBuf>,
    pub skipped: Vec<SkippedAttachment>,
}

/// An attachment that was not saved, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SkippedAttachment {
    /// The name it would have been saved under.
    pub name: String,
    pub bytes: u64,
    pub why: String,
}

/// How many attachments one message may carry.
pub const MAX_ATTACHMENTS: usize = 20;

/// Attachments as given: each file's name and bytes.
pub type Files = Vec<(String, Vec<u8>)>;

/// A message to send, as the command line gives it.
#[derive(Debug, Default, Clone)]
pub struct Outgoing {
    /// `NAME`, `@ROLE`, `@all` or `#TASK`.
    pub target: String,
    pub subject: Option<String>,
    pub thread: Option<String>,
    pub task: Option<String>,
    pub importance: Importance,
    pub body: String,
    pub attachments: Files,
}

/// A reply as sent: the message, and the related project it was written into (by the name this
/// clone knows it), if it went to one.
#[derive(Debug, Clone)]
pub struct Replied {
    pub message: Message,
    pub project: Option<String>,
}

/// One line of an inbox.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InboxItem {
    #[serde(flatten)]
    pub message: MessageSummary,
    pub read: bool,
    pub acked: bool,
}

#[derive(Debug, Default, Clone)]
pub struct InboxFilter {
    /// Read messages too.
    pub all: bool,
    pub from: Option<String>,
    pub thread: Option<String>,
    pub grep: Option<String>,
    /// At most this many items (None: all).
    pub limit: Option<usize>,
}

/// An agent's inbox: counts over everything in it, and the items the filter kept.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inbox {
    pub agent: String,
    pub unread: usize,
    pub read: usize,
    /// Items the filter matched, before the limit.
    pub matched: usize,
    pub messages: Vec<InboxItem>,
    #[serde(skip)]
    pub problems: Vec<Problem>,
}

/// A message read whole, with the reader's marks.
#[derive(Debug, Clone)]
pub struct Opened {
    pub message: Message,
    pub mark: Option<Mark>,
}

pub struct Messages<'c> {
    coord: &'c Coord,
    store: Store<'c>,
}

impl<'c> Messages<'c> {
    pub fn new(coord: &'c Coord) -> Self {
        Messages {
            coord,
            store: Store::new(&coord.repo, INBOX_REF),
        }
    }

    pub fn store(&self) -> &Store<'c> {
        &self.store
    }

    fn repo(&self) -> &Repo {
        &self.coord.repo
    }

    /// Sends a message to someone here: resolves the target to its recipients, checks
    /// everything, then writes the message, its filings and its attachments in one commit. A
    /// target in a related project is [`crate::ops::mail::send`]'s.
    pub fn send_here(&self, out: Outgoing) -> Result<Message> {
        let actor = self.coord.actor()?;
        self.send_as(&actor, out, None)
    }

    /// Whether `name` is a registered agent here or someone who has sent a message here.
    fn is_local_name(&self, name: &str) -> Result<bool> {
        let (active, _) = Agents::new(self.coord)?.list(false)?;
        Ok(active.iter().any(|v| v.agent.name == name)
            || self
                .store
                .exists(&self.store.snapshot()?, &Person::path(name))?)
    }

    pub(crate) fn send_as(
        &self,
        actor: &Actor,
        out: Outgoing,
        reply_to: Option<&Message>,
    ) -> Result<Message> {
        let (body, subject) = check_text(&out)?;
        let attachments = self.check_attachments(&out.attachments)?;
        let tasks = Tasks::new(self.coord);
        let mut task = out
            .task
            .as_deref()
            .map(|t| tasks.resolve_now(t))
            .transpose()?;
        let (to, thread_default) = match reply_to {
            Some(original) => (vec![original.from.clone()], Some(original.thread.clone())),
            None => {
                let (to, task_target) = self.recipients(&out.target, &actor.agent)?;
                if task_target.is_some() {
                    task = task_target;
                }
                (to, task.clone())
            }
        };
        let snap = self.store.snapshot()?;
        let thread = match &out.thread {
            Some(t) => Some(self.resolve_thread(&snap, t)?),
            None => thread_default,
        };
        let created = time::now();
        let draft = Message {
            format: MESSAGE_FORMAT,
            id: String::new(),
            from: actor.agent.clone(),
            human: actor.human.clone(),
            from_project: None,
            target: match reply_to {
                Some(original) => original.from.clone(),
                None => out.target.trim().to_string(),
            },
            to,
            subject,
            thread: thread.unwrap_or_default(),
            reply_to: reply_to.map(|m| m.id.clone()),
            task,
            about: None,
            importance: out.importance,
            created,
            body,
            attachments: attachment_records(&attachments),
            extra: Default::default(),
        };
        let size = draft.to_yaml().len() as u64;
        if size > MAX_DOCUMENT_BYTES {
            return Err(Error::invalid(
                "message",
                format!("{size} bytes"),
                format!("a message document is at most {MAX_DOCUMENT_BYTES} bytes"),
            ));
        }
        self.store.update(actor, |snap| {
            let mut msg = draft.clone();
            msg.id = self.fresh_id(snap)?;
            if msg.thread.is_empty() {
                msg.thread = msg.id.clone();
            }
            let mut change = filing(&msg);
            add_attachments(&mut change, &msg.id, &attachments);
            let me = Person::path(&actor.agent);
            if !self.store.exists(snap, &me)? {
                let person = Person {
                    format: MESSAGE_FORMAT,
                    name: actor.agent.clone(),
                    human: actor.human.clone(),
                    first_seen: msg.created.clone(),
                };
                change.docs.push((me, Some(person.to_yaml().into_bytes())));
            }
            if let Some(original) = reply_to {
                // Replying to a message means it was read.
                if let Some(mark) = self.marked(snap, &actor.agent, &original.id, false)? {
                    change.docs.push(mark);
                }
            }
            let op = if reply_to.is_some() { "reply" } else { "send" };
            change.subject = format!("{op} {} by {} to {}", msg.id, actor.agent, msg.target);
            change.trailers = vec![("Coord-Op", op.into()), ("Coord-Message", msg.id.clone())];
            if let Some(task) = &msg.task {
                change.trailers.push(("Coord-Task", task.clone()));
            }
            Ok((change, msg))
        })
    }

    /// The agents a target reaches, and the task when the target is one (`#ID`).
    fn recipients(&self, target: &str, sender: &str) -> Result<(Vec<String>, Option<String>)> {
        let target = target.trim();
        if let Some(task) = target.strip_prefix('#') {
            let task = Tasks::new(self.coord).show(task)?;
            let to = task
                .assignee
                .filter(|a| a != sender && task.state != crate::model::task::State::Done)
                .into_iter()
                .collect();
            return Ok((to, Some(task.id)));
        }
        let agents = Agents::new(self.coord)?;
        let (active, _) = agents.list(false)?;
        if let Some(role) = target.strip_prefix('@') {
            let to: Vec<String> = if role == "all" {
                active
                    .iter()
                    .map(|v| v.agent.name.clone())
                    .filter(|n| n != sender)
                    .collect()
            } else {
                name::validate("role", role)?;
                agents.config().role(role)?;
                active
                    .iter()
                    .filter(|v| v.agent.role == role)
                    .map(|v| v.agent.name.clone())
                    .filter(|n| n != sender)
                    .collect()
            };
            if to.is_empty() {
                return Err(Error::invalid(
                    "target",
                    target,
                    "no registered agent (other than you) has that role; `git coord agent list` shows who is here",
                ));
            }
            if to.len() > MAX_RECIPIENTS {
                return Err(Error::invalid(
                    "target",
                    target,
                    format!("a message reaches at most {MAX_RECIPIENTS} agents"),
                ));
            }
            return Ok((to, None));
        }
        name::validate("agent name", target).map_err(|_| {
            Error::invalid("target", target, "give an agent name, @ROLE, @all or #TASK")
        })?;
        if !self.is_local_name(target)? {
            return Err(Error::invalid(
                "target",
                target,
                "no such agent: `git coord agent list` shows the registered agents (anyone who has sent a message can be written to as well)",
            ));
        }
        Ok((vec![target.to_string()], None))
    }

    pub(crate) fn check_attachments(
        &self,
        given: &[(String, Vec<u8>)],
    ) -> Result<Vec<(String, Vec<u8>)>> {
        if given.is_empty() {
            return Ok(Vec::new());
        }
        if given.len() > MAX_ATTACHMENTS {
            return Err(Error::invalid(
                "attachments",
                given.len().to_string(),
                format!("a message carries at most {MAX_ATTACHMENTS} attachments"),
            ));
        }
        let limit = Agents::new(self.coord)?.config().max_attachment_bytes;
        let mut out = Vec::with_capacity(given.len());
        for (n, (name, bytes)) in given.iter().enumerate() {
            if bytes.len() as u64 > limit {
                return Err(Error::invalid(
                    "attachment",
                    name,
                    format!(
                        "{} bytes, over the limit of {limit} bytes (max_attachment_bytes in .coord.yaml)",
                        bytes.len()
                    ),
                ));
            }
            out.push((safe_file_name(name, n), bytes.clone()));
        }
        Ok(out)
    }

    /// A new message id, not used in the snapshot.
    fn fresh_id(&self, snap: &Snapshot) -> Result<String> {
        loop {
            let id = id::new_id();
            if !self.store.exists(snap, &Message::path(&id))? {
                return Ok(id);
            }
        }
    }

    /// The mark `agent` has on `msg` after reading it (and acknowledging it with `ack`), as a
    /// document to write; None when the mark already says so.
    fn marked(
        &self,
        snap: &Snapshot,
        agent: &str,
        msg: &str,
        ack: bool,
    ) -> Result<Option<(String, Option<Vec<u8>>)>> {
        let path = Mark::path(agent, msg);
        let old = self.mark_of(snap, agent, msg)?;
        let now = time::now();
        let new = match old {
            Some(m) if !ack || m.acked.is_some() => return Ok(None),
            Some(m) => Mark {
                acked: Some(now),
                ..m
            },
            None => Mark {
                format: MESSAGE_FORMAT,
                read: now.clone(),
                acked: ack.then_some(now),
            },
        };
        Ok(Some((path, Some(new.to_yaml().into_bytes()))))
    }

    /// Shows one message whole and marks it read for the acting agent.
    pub fn read(&self, input: &str) -> Result<Opened> {
        self.mark(input, false, "read")
    }

    /// Acknowledges a message (which also marks it read).
    pub fn ack(&self, input: &str) -> Result<Opened> {
        self.mark(input, true, "ack")
    }

    pub(crate) fn mark(&self, input: &str, ack: bool, op: &str) -> Result<Opened> {
        let actor = self.coord.actor()?;
        let prefix = id::parse_prefix(input)?;
        self.store.update(&actor, |snap| {
            let message = self.load(snap, &prefix)?;
            let mut change = Change::default();
            if let Some(doc) = self.marked(snap, &actor.agent, &message.id, ack)? {
                change.docs.push(doc);
                change.subject = format!("{op} {} by {}", message.id, actor.agent);
                change.trailers = vec![
                    ("Coord-Op", op.into()),
                    ("Coord-Message", message.id.clone()),
                ];
            }
            let mark = match change.docs.first() {
                Some((path, Some(bytes))) => Some(Mark::from_yaml(bytes, INBOX_REF, path)?),
                _ => self.mark_of(snap, &actor.agent, &message.id)?,
            };
            Ok((change, Opened { message, mark }))
        })
    }

    /// Every message of a thread, oldest first. `input` names the thread (a task's id names its
    /// thread), or any message of it.
    pub fn thread(&self, input: &str) -> Result<Vec<Message>> {
        let snap = self.store.snapshot()?;
        let thread = match self.resolve_thread(&snap, input) {
            Ok(thread) => thread,
            Err(not_a_thread) => match self.load(&snap, &id::parse_prefix(input)?) {
                Ok(msg) => msg.thread,
                Err(_) => return Err(not_a_thread),
            },
        };
        let (messages, _) = self.thread_messages(&snap, &thread)?;
        Ok(messages)
    }

    /// The messages of a task's thread, oldest first (none is not an error).
    pub fn task_thread(&self, task_id: &str) -> Result<Vec<Message>> {
        let snap = self.store.snapshot()?;
        Ok(self.thread_messages(&snap, task_id)?.0)
    }

    fn thread_messages(
        &self,
        snap: &Snapshot,
        thread: &str,
    ) -> Result<(Vec<Message>, Vec<Problem>)> {
        let dir = format!("threads/{}/{thread}", id::shard(thread));
        let mut messages = Vec::new();
        let mut problems = Vec::new();
        for (path, oid) in self.files_under(snap, &dir)? {
            match self.parse_blob(oid, &path) {
                Ok(m) => messages.push(m),
                Err(e) => problems.push(problem(path, &e)),
            }
        }
        messages.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        Ok((messages, problems))
    }

    /// The acting agent's inbox.
    pub fn inbox(&self, agent: &str, filter: &InboxFilter) -> Result<Inbox> {
        let snap = self.store.snapshot()?;
        let thread = match &filter.thread {
            Some(t) => Some(self.resolve_thread(&snap, t)?),
            None => None,
        };
        if let Some(from) = &filter.from {
            name::validate("agent name", from)?;
        }
        let (mut summaries, mut problems) = self.box_summaries(&snap, agent)?;
        let mut read = self.read_set(&snap, agent)?;
        // The project's shared box: everyone's until one of them acknowledges a message.
        let (shared, shared_problems) = self.summaries_in(&snap, "shared", "@shared")?;
        problems.extend(shared_problems);
        for s in shared {
            if summaries.iter().any(|mine| mine.id == s.id) {
                continue;
            }
            if self.acked_by_anyone(&snap, &s.id)? {
                read.insert(s.id.clone());
            }
            summaries.push(s);
        }
        let grep = filter.grep.as_ref().map(|g| g.to_lowercase());
        let mut unread_count = 0;
        let mut kept: Vec<(bool, &MessageSummary)> = Vec::new();
        for s in &summaries {
            let is_read = read.contains(&s.id);
            if !is_read {
                unread_count += 1;
            }
            if (is_read && !filter.all)
                || filter
                    .from
                    .as_ref()
                    .is_some_and(|f| *f != s.from && !s.from.ends_with(&format!(":{f}")))
                || thread.as_ref().is_some_and(|t| *t != s.thread)
            {
                continue;
            }
            kept.push((is_read, s));
        }
        if let Some(word) = &grep {
            let mut matching = Vec::with_capacity(kept.len());
            for (is_read, s) in kept {
                let hit = s.subject.to_lowercase().contains(word.as_str())
                    || match self.load(&snap, &s.id) {
                        Ok(m) => m.body.to_lowercase().contains(word.as_str()),
                        Err(_) => false,
                    };
                if hit {
                    matching.push((is_read, s));
                }
            }
            kept = matching;
        }
        // Unread first; among those the most important, then the newest.
        kept.sort_by(|(ra, a), (rb, b)| {
            ra.cmp(rb)
                .then_with(|| match ra {
                    false => b.importance.cmp(&a.importance),
                    true => std::cmp::Ordering::Equal,
                })
                .then_with(|| b.created.cmp(&a.created))
                .then_with(|| a.id.cmp(&b.id))
        });
        let matched = kept.len();
        kept.truncate(filter.limit.unwrap_or(usize::MAX));
        let mut messages = Vec::with_capacity(kept.len());
        for (is_read, s) in kept {
            let acked = is_read
                && self
                    .mark_of(&snap, agent, &s.id)?
                    .is_some_and(|m| m.acked.is_some());
            messages.push(InboxItem {
                message: s.clone(),
                read: is_read,
                acked,
            });
        }
        Ok(Inbox {
            agent: agent.to_string(),
            unread: unread_count,
            read: summaries.len() - unread_count,
            matched,
            messages,
            problems,
        })
    }

    /// Saves a message's attachments into `dir` (created if needed), each under a name that
    /// cannot leave it; an existing file is never overwritten (a suffix is added). An attachment
    /// over `max_attachment_bytes` (whatever a remote delivered) is skipped, by the size of its
    /// blob, without being read.
    pub fn save_attachments(&self, msg: &Message, dir: &Path) -> Result<SavedAttachments> {
        let snap = self.store.snapshot()?;
        let limit = Agents::new(self.coord)?.config().max_attachment_bytes;
        // Every attachment is found before anything is written.
        let mut blobs = Vec::with_capacity(msg.attachments.len());
        for n in 0..msg.attachments.len() {
            let path = Message::attachment_path(&msg.id, n);
            let blob = match snap.tree {
                Some(tree) => self.repo().lookup_path(tree, &path)?,
                None => None,
            };
            blobs.push(blob.ok_or_else(|| Error::Malformed {
                refname: INBOX_REF.into(),
                path: path.clone(),
                why: "the attachment's bytes are missing".into(),
            })?);
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Other(format!("cannot create {}: {e}", dir.display())))?;
        let mut saved = SavedAttachments::default();
        for (n, (attachment, blob)) in msg.attachments.iter().zip(blobs).enumerate() {
            let name = safe_file_name(&attachment.name, n);
            let bytes = match self.repo().read_blob_within(blob, limit)? {
                Ok(bytes) => bytes,
                Err(size) => {
                    saved.skipped.push(SkippedAttachment {
                        name,
                        bytes: size,
                        why: format!(
                            "{size} bytes, over the limit of {limit} bytes (max_attachment_bytes in .coord.yaml)"
                        ),
                    });
                    continue;
                }
            };
            saved.written.push(write_new_file(dir, &name, &bytes)?);
        }
        Ok(saved)
    }

    /// Loads a message by id prefix.
    pub fn show(&self, input: &str) -> Result<Message> {
        self.load(&self.store.snapshot()?, &id::parse_prefix(input)?)
    }

    /// The messages with these full ids, read from one snapshot, in the order given; one that
    /// cannot be read is left out (the after-tool hook shows its summary instead).
    pub fn open_many(&self, ids: &[&str]) -> Result<Vec<Message>> {
        let snap = self.store.snapshot()?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            let path = Message::path(id);
            if let Ok(Some(bytes)) = self.store.read(&snap, &path)
                && let Ok(msg) = Message::from_yaml(&bytes, INBOX_REF, &path)
            {
                found.push(msg);
            }
        }
        Ok(found)
    }

    pub(crate) fn load(&self, snap: &Snapshot, prefix: &str) -> Result<Message> {
        let id = self.resolve(snap, "messages", prefix, ".yaml")?;
        let path = Message::path(&id);
        let bytes = self
            .store
            .read(snap, &path)?
            .ok_or_else(|| no_such_message(prefix))?;
        Message::from_yaml(&bytes, INBOX_REF, &path)
    }

    fn mark_of(&self, snap: &Snapshot, agent: &str, msg: &str) -> Result<Option<Mark>> {
        let path = Mark::path(agent, msg);
        // A mark that cannot be read (too large, malformed) counts as no mark.
        Ok(match self.store.read(snap, &path) {
            Ok(Some(bytes)) => Mark::from_yaml(&bytes, INBOX_REF, &path).ok(),
            Ok(None) | Err(Error::Malformed { .. }) => None,
            Err(e) => return Err(e),
        })
    }

    /// The ids of the messages `agent` has read.
    fn read_set(&self, snap: &Snapshot, agent: &str) -> Result<HashSet<String>> {
        let mut read = HashSet::new();
        for (path, _) in self.files_under(snap, &format!("marks/{agent}"))? {
            if let Some(id) = path
                .rsplit('/')
                .next()
                .and_then(|f| f.strip_suffix(".yaml"))
            {
                read.insert(id.to_string());
            }
        }
        Ok(read)
    }

    /// Finds the one entry of a sharded directory whose id starts with `prefix`.
    fn resolve(&self, snap: &Snapshot, dir: &str, prefix: &str, suffix: &str) -> Result<String> {
        let not_found = || match dir {
            "threads" => Error::invalid(
                "thread",
                prefix,
                "no thread has that id; `git coord inbox --all` shows messages and their threads",
            ),
            _ => no_such_message(prefix),
        };
        let Some(tree) = snap.tree else {
            return Err(not_found());
        };
        let Some(shard) = self
            .repo()
            .lookup_path(tree, &format!("{dir}/{}", id::shard(prefix)))?
        else {
            return Err(not_found());
        };
        let mut candidates: Vec<String> = self
            .repo()
            .tree_entries(shard)?
            .into_iter()
            .filter(|e| e.odd.is_none())
            .filter_map(|e| e.name.strip_suffix(suffix).map(str::to_string))
            .filter(|id| id.starts_with(prefix))
            .collect();
        match candidates.len() {
            0 => Err(not_found()),
            1 => Ok(candidates.remove(0)),
            _ if candidates.iter().any(|c| c == prefix) => Ok(prefix.to_string()),
            _ => Err(Error::AmbiguousId {
                prefix: prefix.into(),
                candidates,
            }),
        }
    }

    fn resolve_thread(&self, snap: &Snapshot, input: &str) -> Result<String> {
        let prefix = id::parse_prefix(input)?;
        self.resolve(snap, "threads", &prefix, "")
    }

    /// Every blob under `dir` (recursively), with its path.
    fn files_under(&self, snap: &Snapshot, dir: &str) -> Result<Vec<(String, Oid)>> {
        let mut out = Vec::new();
        let Some(tree) = snap.tree else {
            return Ok(out);
        };
        let Some(start) = self.repo().lookup_path(tree, dir)? else {
            return Ok(out);
        };
        let mut stack = vec![(dir.to_string(), start)];
        while let Some((path, tree)) = stack.pop() {
            for entry in self.repo().tree_entries(tree)? {
                let child = format!("{path}/{}", entry.name);
                if entry.is_tree {
                    stack.push((child, entry.oid));
                } else if entry.is_blob {
                    out.push((child, entry.oid));
                }
            }
        }
        Ok(out)
    }

    fn parse_blob(&self, oid: Oid, path: &str) -> Result<Message> {
        let bytes = crate::store::read_blob(self.repo(), oid, MAX_DOCUMENT_BYTES, INBOX_REF, path)?;
        Message::from_yaml(&bytes, INBOX_REF, path)
    }

    /// The summaries of every message in `agent`'s box, from the cache where the box's shards
    /// did not change (FORMAT.md, "The inbox cache").
    fn box_summaries(
        &self,
        snap: &Snapshot,
        agent: &str,
    ) -> Result<(Vec<MessageSummary>, Vec<Problem>)> {
        self.summaries_in(snap, &format!("boxes/{agent}"), agent)
    }

    /// Whether some agent has acknowledged message `id`.
    fn acked_by_anyone(&self, snap: &Snapshot, id: &str) -> Result<bool> {
        let Some(tree) = snap.tree else {
            return Ok(false);
        };
        let Some(marks) = self.repo().lookup_path(tree, "marks")? else {
            return Ok(false);
        };
        for agent in self.repo().tree_entries(marks)? {
            if agent.is_tree
                && self
                    .mark_of(snap, &agent.name, id)?
                    .is_some_and(|m| m.acked.is_some())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The summaries of every message filed under `dir` (a box), cached under `cache_name`.
    fn summaries_in(
        &self,
        snap: &Snapshot,
        dir: &str,
        cache_name: &str,
    ) -> Result<(Vec<MessageSummary>, Vec<Problem>)> {
        let mut problems = Vec::new();
        let dir = dir.to_string();
        let Some(tree) = snap.tree else {
            return Ok((Vec::new(), problems));
        };
        let Some(boxtree) = self.repo().lookup_path(tree, &dir)? else {
            return Ok((Vec::new(), problems));
        };
        let cache_file = self
            .repo()
            .common_dir()
            .join("coord/cache/inbox")
            .join(format!("{cache_name}.tsv"));
        let cached = crate::store::inbox_cache::read(&cache_file);
        let mut by_blob: HashMap<Oid, &MessageSummary> = HashMap::new();
        for shard in cached.values() {
            for (oid, s) in &shard.1 {
                by_blob.insert(*oid, s);
            }
        }
        let mut fresh = crate::store::inbox_cache::Shards::new();
        let mut changed = false;
        for shard in self.repo().tree_entries(boxtree)? {
            if !shard.is_tree {
                continue;
            }
            if let Some(hit) = cached.get(&shard.name).filter(|c| c.0 == shard.oid) {
                fresh.insert(shard.name.clone(), hit.clone());
                continue;
            }
            changed = true;
            let mut records = Vec::new();
            for entry in self.repo().tree_entries(shard.oid)? {
                if let Some(odd) = entry.odd {
                    let path = format!("{dir}/{}/{}", shard.name, entry.name);
                    problems.push(Problem::odd(path, odd));
                    continue;
                }
                if !entry.is_blob || !entry.name.ends_with(".yaml") {
                    continue;
                }
                if let Some(s) = by_blob.get(&entry.oid) {
                    records.push((entry.oid, (*s).clone()));
                    continue;
                }
                let path = format!("{dir}/{}/{}", shard.name, entry.name);
                match self.parse_blob(entry.oid, &path) {
                    Ok(m) => records.push((entry.oid, MessageSummary::of(&m))),
                    Err(e) => problems.push(problem(path, &e)),
                }
            }
            fresh.insert(shard.name.clone(), (shard.oid, records));
        }
        if changed || fresh.len() != cached.len() {
            crate::store::inbox_cache::write(&cache_file, &fresh);
        }
        let summaries = fresh
            .into_values()
            .flat_map(|(_, records)| records.into_iter().map(|(_, s)| s))
            .collect();
        Ok((summaries, problems))
    }

    /// Every message in the store, newest first, at most `limit` (for the organiser's brief and
    /// the dashboard).
    pub fn newest(&self, limit: usize) -> Result<Vec<MessageSummary>> {
        let snap = self.store.snapshot()?;
        let mut all = Vec::new();
        for (path, oid) in self.files_under(&snap, "messages")? {
            if let Ok(m) = self.parse_blob(oid, &path) {
                all.push(MessageSummary::of(&m));
            }
        }
        all.sort_by(|a, b| b.created.cmp(&a.created));
        all.truncate(limit);
        Ok(all)
    }
}

/// The text and subject of a message to send, checked: not empty, not too long, a one-line
/// subject (by default the start of the text).
pub(crate) fn check_text(out: &Outgoing) -> Result<(String, String)> {
    let body = out.body.trim_end().to_string();
    if body.trim().is_empty() {
        return Err(Error::invalid(
            "message",
            "",
            "it is empty; give the text as an argument or with -F FILE",
        ));
    }
    if body.len() > MAX_BODY {
        return Err(Error::invalid(
            "message",
            format!("{} bytes", body.len()),
            format!("a message body is at most {MAX_BODY} bytes; attach long text with --attach"),
        ));
    }
    let subject = match &out.subject {
        Some(s) => check_subject(s)?,
        None => clip(first_line(&body), 80),
    };
    Ok((body, subject))
}

/// What a message records of its attachments.
pub(crate) fn attachment_records(attachments: &[(String, Vec<u8>)]) -> Vec<Attachment> {
    attachments
        .iter()
        .map(|(name, bytes)| Attachment {
            name: name.clone(),
            size: bytes.len() as u64,
        })
        .collect()
}

/// Adds the bytes of each attachment of message `id` to a change.
pub(crate) fn add_attachments(change: &mut Change, id: &str, attachments: &[(String, Vec<u8>)]) {
    for (n, (_, bytes)) in attachments.iter().enumerate() {
        change
            .docs
            .push((Message::attachment_path(id, n), Some(bytes.clone())));
    }
}

pub(crate) fn check_subject(subject: &str) -> Result<String> {
    let s = subject.trim();
    if s.is_empty() || s.contains('\n') || s.chars().count() > MAX_SUBJECT {
        return Err(Error::invalid(
            "subject",
            subject,
            format!("a subject is one line of 1 to {MAX_SUBJECT} characters"),
        ));
    }
    Ok(s.to_string())
}

fn no_such_message(prefix: &str) -> Error {
    Error::invalid(
        "message",
        prefix,
        "no message has that id; `git coord inbox --all` lists yours",
    )
}

fn problem(path: String, err: &Error) -> Problem {
    let why = match err {
        Error::Malformed { why, .. } => why.clone(),
        other => other.to_string(),
    };
    Problem { path, why }
}

/// Creates `dir/name` (or `name.1`, `name.2`, ... when taken) without following or replacing
/// anything that is there.
fn write_new_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    use std::io::Write;
    for n in 0..1000 {
        let candidate = if n == 0 {
            dir.join(name)
        } else {
            dir.join(format!("{name}.{n}"))
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(mut file) => {
                file.write_all(bytes)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::Other(format!(
                    "cannot write {}: {e}",
                    candidate.display()
                )));
            }
        }
    }
    Err(Error::Other(format!(
        "cannot find a free name for {name} in {}",
        dir.display()
    )))
}
/// A message to the organisers (`@organiser`), else to whoever started the workflow of `task`.
pub fn tell_organiser(
    coord: &Coord,
    task: &str,
    subject: &str,
    body: &str,
    thread: Option<&str>,
) -> Result<()> {
    let tasks = Tasks::new(coord);
    let creator = tasks
        .show(task)
        .ok()
        .and_then(|t| t.parent)
        .and_then(|p| tasks.show(&p).ok())
        .map(|e| e.created_by);
    let send = |target: String| {
        Messages::new(coord).send_here(Outgoing {
            target,
            subject: Some(subject.to_string()),
            task: thread.map(str::to_string),
            importance: Importance::High,
            body: body.to_string(),
            ..Outgoing::default()
        })
    };
    // `@organiser` reaches the other organisers; an organiser acting now is told too.
    let me = coord.actor()?.agent;
    let i_organise = Agents::new(coord)?.get(&me)?.is_some_and(|a| {
        a.role == "organiser" && a.status == crate::model::agent::AgentStatus::Active
    });
    let mut told = send("@organiser".to_string()).is_ok();
    if i_organise {
        send(me)?;
        told = true;
    }
    match (told, creator) {
        (true, _) => Ok(()),
        (false, Some(creator)) => send(creator).map(|_| ()),
        (false, None) => Err(Error::Other("nobody to tell".into())),
    }
}
