//! `git coord wait`: block until something arrives for the acting agent (an unread message, a
//! change to one task, ready work for its role), watching the local refs and, with a remote,
//! fetching every interval. The online path of the design: an agent that stays online answers as
//! soon as the other side writes, without polling the coordination state itself.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::git::Oid;
use crate::model::task::Task;
use crate::ops::agents::Agents;
use crate::ops::context::Coord;
use crate::ops::messages::{INBOX_REF, InboxFilter, Messages};
use crate::ops::tasks::{TASKS_REF, Tasks};
use crate::store::Store;

/// How often the local refs are looked at: well within the second the design allows.
const LOCAL_TICK: Duration = Duration::from_millis(200);
/// The longest wait between fetches after errors (the interval doubles up to this).
const MAX_BACKOFF: Duration = Duration::from_secs(300);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// What to wait for.
#[derive(Debug, Clone)]
pub struct WaitFor {
    /// An unread message for this agent (at once if one is already there).
    pub inbox: bool,
    /// A change to this task after the wait began.
    pub task: Option<String>,
    /// Ready work for this agent's role (at once if some is already there).
    pub ready: bool,
    pub timeout: Option<Duration>,
    pub interval: Duration,
}

/// Something that arrived.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Arrival {
    Message {
        id: String,
        from: String,
        subject: String,
        task: Option<String>,
    },
    Task {
        #[serde(flatten)]
        task: Box<Task>,
    },
    Ready {
        id: String,
        title: String,
        priority: u8,
        role: Option<String>,
    },
}

/// Waits; returns what arrived, or [`Error::WaitTimedOut`].
pub fn wait(coord: &Coord, what: &WaitFor) -> Result<Vec<Arrival>> {
    let me = coord.actor()?.agent;
    let role = Agents::new(coord)?.get(&me)?.map(|a| a.role);
    let tasks = Tasks::new(coord);
    let watched = match &what.task {
        Some(input) => {
            let id = tasks.resolve_now(input)?;
            let blob = task_blob(coord, &id)?;
            Some((id, blob))
        }
        None => None,
    };
    let remote = coord.confirm_remote()?;
    let started = Instant::now();
    let mut next_fetch = started;
    let mut backoff = what.interval;
    let mut seen_tips = None;
    loop {
        if let Some(remote) = &remote
            && Instant::now() >= next_fetch
        {
            let fetched = crate::remote::fetch_and_merge(
                &coord.repo,
                remote,
                &crate::ops::notices::Notices::new(coord),
            );
            match fetched {
                Ok(_) => {
                    backoff = what.interval;
                    let presence = crate::ops::presence::Presence::new(
                        coord,
                        crate::ops::presence::stale_after(coord),
                    );
                    let _ = presence.share_with(remote, false);
                }
                Err(e) => {
                    tracing::debug!("wait: fetch from {} failed: {e}", remote.name);
                    backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                }
            }
            next_fetch = Instant::now()
                .checked_add(backoff)
                .unwrap_or_else(|| Instant::now() + MAX_BACKOFF);
        }
        let tips = (
            coord.repo.ref_tip(INBOX_REF)?,
            coord.repo.ref_tip(TASKS_REF)?,
        );
        if seen_tips != Some(tips) {
            seen_tips = Some(tips);
            let found = look(coord, &me, role.as_deref(), what, watched.as_ref())?;
            if !found.is_empty() {
                return Ok(found);
            }
        }
        let now = Instant::now();
        if let Some(timeout) = what.timeout
            && now.duration_since(started) >= timeout
        {
            return Err(Error::WaitTimedOut {
                waited: duration_words(timeout),
            });
        }
        let mut nap = LOCAL_TICK;
        if let Some(timeout) = what.timeout {
            let end = started.checked_add(timeout).unwrap_or(now + MAX_BACKOFF);
            nap = nap.min(end.saturating_duration_since(now));
        }
        std::thread::sleep(nap.max(Duration::from_millis(10)));
    }
}

fn look(
    coord: &Coord,
    me: &str,
    role: Option<&str>,
    what: &WaitFor,
    watched: Option<&(String, Option<Oid>)>,
) -> Result<Vec<Arrival>> {
    let mut found = Vec::new();
    if what.inbox {
        let inbox = Messages::new(coord).inbox(
            me,
            &InboxFilter {
                limit: Some(10),
                ..InboxFilter::default()
            },
        )?;
        found.extend(inbox.messages.into_iter().map(|m| Arrival::Message {
            id: m.message.id,
            from: m.message.from,
            subject: m.message.subject,
            task: m.message.task,
        }));
    }
    if let Some((id, before)) = watched
        && task_blob(coord, id)? != *before
    {
        found.push(Arrival::Task {
            task: Box::new(Tasks::new(coord).show(id)?),
        });
    }
    if what.ready {
        let index = Tasks::new(coord).load_ready_index()?;
        let ready = crate::ops::tasks::ready_tasks(&index, role);
        found.extend(ready.iter().take(5).map(|t| Arrival::Ready {
            id: t.id().to_string(),
            title: t.title().to_string(),
            priority: t.priority(),
            role: t.role().map(str::to_string),
        }));
    }
    Ok(found)
}

/// The blob of task `id` in the local tasks ref: any change to the task changes it.
fn task_blob(coord: &Coord, id: &str) -> Result<Option<Oid>> {
    let store = Store::new(&coord.repo, TASKS_REF);
    let snap = store.snapshot()?;
    let Some(tree) = snap.tree else {
        return Ok(None);
    };
    coord.repo.lookup_path(tree, &Task::path(id))
}

/// `90s`, `10m`, `2h`: as a duration would be written on the command line.
fn duration_words(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
