//! Notices: messages from git-coord itself, filed in an agent's inbox under an id derived from
//! what happened (so replicas that settle the same event write the same message once), and the
//! courier that delivers what a merge decided against someone. Below every operation that tells
//! someone something: it writes refs/coord/inbox and reads nothing else.

use std::collections::HashSet;

use crate::error::Result;
use crate::model::id;
use crate::model::merge::Notice;
use crate::model::message::{
    Importance, MAX_SUBJECT, MESSAGE_FORMAT, Message, NOTICE_SENDER, ProjectTask, SHARED_TARGET,
    clip,
};
use crate::ops::context::Coord;
use crate::remote::Courier;
use crate::store::{Change, INBOX_REF, Store};

/// What a notice from git-coord is about, which is where a reply to it goes.
#[derive(Debug, Clone)]
pub enum NoticeAbout<'a> {
    Nothing,
    /// A task here.
    Task(&'a str),
    /// A task of another project.
    OtherProject(ProjectTask),
}

/// The documents that file one message: itself, one copy per recipient, one under its thread.
pub(crate) fn filing(msg: &Message) -> Change {
    let bytes = msg.to_yaml().into_bytes();
    let mut docs = vec![(Message::path(&msg.id), Some(bytes.clone()))];
    let mut seen = HashSet::new();
    for to in &msg.to {
        if seen.insert(to) {
            docs.push((Message::box_path(to, &msg.id), Some(bytes.clone())));
        }
    }
    if msg.target == SHARED_TARGET {
        docs.push((Message::shared_path(&msg.id), Some(bytes.clone())));
    }
    docs.push((Message::thread_path(&msg.thread, &msg.id), Some(bytes)));
    Change {
        docs,
        ..Change::default()
    }
}

/// Files a message from git-coord itself (a sync telling an agent it lost a claim or a
/// lease, or what changed on another project's task), under an id derived from `key`,
/// unless it is already there.
pub fn deliver(
    coord: &Coord,
    key: &str,
    to: &str,
    subject: &str,
    body: &str,
    about: NoticeAbout<'_>,
    at: &str,
) -> Result<()> {
    let store = Store::new(&coord.repo, INBOX_REF);
    let (task, about) = match about {
        NoticeAbout::Nothing => (None, None),
        NoticeAbout::Task(task) => (Some(task), None),
        NoticeAbout::OtherProject(about) => (None, Some(about)),
    };
    let actor = coord.actor()?;
    let id = coord.repo.write_blob(key.as_bytes())?.to_string()[..id::ID_LEN].to_string();
    let msg = Message {
        format: MESSAGE_FORMAT,
        id: id.clone(),
        from: NOTICE_SENDER.into(),
        human: "git-coord sync".into(),
        from_project: None,
        target: to.into(),
        to: vec![to.into()],
        subject: clip(subject, MAX_SUBJECT),
        thread: task.map_or_else(|| id.clone(), str::to_string),
        reply_to: None,
        task: task.map(str::to_string),
        about,
        importance: Importance::High,
        created: at.into(),
        body: body.into(),
        attachments: Vec::new(),
        extra: Default::default(),
    };
    store.update(&actor, |snap| {
        if store.exists(snap, &Message::path(&id))? {
            return Ok((Change::default(), ()));
        }
        let mut change = filing(&msg);
        change.subject = format!("notify {id} to {to}");
        change.trailers = vec![("Coord-Op", "notify".into()), ("Coord-Message", id.clone())];
        Ok((change, ()))
    })
}

/// Delivers merge notices to the inbox. Their ids derive from what happened, so replicas that
/// settle the same conflict write the same message once.
pub struct Notices<'c> {
    coord: &'c Coord,
}

impl<'c> Notices<'c> {
    pub fn new(coord: &'c Coord) -> Self {
        Notices { coord }
    }
}

impl Courier for Notices<'_> {
    fn warn(&self, text: String) {
        self.coord.warn(text);
    }

    fn deliver(&self, notices: &[Notice]) -> Result<usize> {
        for notice in notices {
            let (key, to, subject, body, task, at) = match notice {
                Notice::LostClaim {
                    task,
                    title,
                    loser,
                    loser_claimed_at,
                    winner,
                    winner_claimed_at,
                } => (
                    format!("lost-claim:{task}:{loser}:{loser_claimed_at}"),
                    loser.clone(),
                    format!("You lost the claim on task {task}"),
                    format!(
                        "Task {task} ({title}) was claimed on two machines: by you at {loser_claimed_at} and by {winner} at {winner_claimed_at}. The earlier claim holds, so the task is {winner}'s. Pick another with `git coord task claim --next`."
                    ),
                    Some(task.clone()),
                    loser_claimed_at.clone().max(winner_claimed_at.clone()),
                ),
                Notice::LeaseRevoked {
                    lease,
                    loser,
                    patterns,
                    winner,
                    winner_lease,
                    at,
                } => (
                    format!("lease-revoked:{lease}"),
                    loser.clone(),
                    format!("Your lease {lease} was revoked"),
                    format!(
                        "Your lease {lease} on {} overlapped lease {winner_lease} of {winner}, taken earlier on another machine. The earlier lease holds; yours is revoked. `git coord lease check PATH` tells what you may touch.",
                        patterns.join(", ")
                    ),
                    None,
                    at.clone(),
                ),
            };
            deliver(
                self.coord,
                &key,
                &to,
                &subject,
                &body,
                task.as_deref()
                    .map_or(NoticeAbout::Nothing, NoticeAbout::Task),
                &at,
            )?;
        }
        Ok(notices.len())
    }
}
