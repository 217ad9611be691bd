//! Presence: heartbeats in refs/coord/presence, shared with every clone through the remote, and
//! how this clone judges them (docs/SEMANTICS.md, "Presence"). The writer's clock stamps a
//! heartbeat, but a heartbeat fetched from another clone is judged by when it first arrived here,
//! by this clone's clock alone: a writer's clock ahead or behind, or this clone's, then moves no
//! agent's liveness.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Result;
use crate::model::agent::{Agent, AgentStatus};
use crate::model::presence::{HEARTBEAT_FORMAT, Heartbeat};
use crate::model::time;
use crate::ops::config::DEFAULT_STALE_AFTER;
use crate::ops::context::Coord;
use crate::remote::Remote;
use crate::remote::presence::{Exchanged, Roster, exchange_with, heartbeats, push_pending};
use crate::store::{Actor, Change, PRESENCE_REF, Store};

/// The longest an agent's own commands go without refreshing its heartbeat.
const MAX_BEAT_EVERY: Duration = Duration::from_secs(60);

/// When and from where an agent was last seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LastSeen {
    pub at: String,
    pub clone: String,
    /// Whether that clone is this one.
    pub here: bool,
}

impl LastSeen {
    /// `2026-12-01T02:30:00.000Z here`, or `... from host:/path`; `never` without a heartbeat.
    pub fn describe(seen: Option<&LastSeen>) -> String {
        match seen {
            Some(s) if s.here => format!("{} here", s.at),
            Some(s) => format!("{} from {}", s.at, s.clone),
            None => "never".into(),
        }
    }
}

pub struct Presence<'c> {
    coord: &'c Coord,
    store: Store<'c>,
    stale_after: Duration,
}

impl<'c> Presence<'c> {
    pub fn new(coord: &'c Coord, stale_after: Duration) -> Self {
        Presence {
            coord,
            store: Store::new(&coord.repo, PRESENCE_REF),
            stale_after,
        }
    }

    /// Every heartbeat this clone has (its own and those fetched), by agent.
    pub fn all(&self) -> Result<BTreeMap<String, Heartbeat>> {
        Ok(
            heartbeats(&self.coord.repo, self.coord.repo.ref_tip(PRESENCE_REF)?)?
                .into_iter()
                .map(|(name, (_, beat))| (name, beat))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Result<Option<Heartbeat>> {
        let snap = self.store.snapshot()?;
        let path = Heartbeat::path(name);
        let Ok(bytes) = self.store.read(&snap, &path) else {
            return Ok(None); // over the size limit: as if never seen
        };
        Ok(bytes.and_then(|bytes| Heartbeat::from_yaml(&bytes, PRESENCE_REF, &path).ok()))
    }

    /// Records that `name` is alive now, from this clone. A local write only; [`Self::share`]
    /// sends it.
    ///
    /// Its stamp never goes back from this clone's last one for the agent: of two heartbeats the
    /// later stamp wins a merge, so after this clone's clock was set back one stamped by the
    /// clock would lose to the old ones until the clock passed them, and the agent would look
    /// silent everywhere meanwhile. Readers judge a heartbeat by when it arrived, not by its
    /// stamp, so one stamped a millisecond after the last counts as new.
    pub fn beat(&self, actor: &Actor, name: &str) -> Result<Heartbeat> {
        let clone = clone_name(self.coord);
        let mut at = time::now();
        if let Some(last) = self.get(name)?.filter(|last| last.clone == clone)
            && let (Some(last_ms), Some(now)) = (last.at_millis(), time::parse(&at))
            && last_ms >= now.as_millisecond()
            && let Ok(next) = jiff::Timestamp::from_millisecond(last_ms + 1)
        {
            at = time::format_timestamp(next);
        }
        let beat = Heartbeat {
            format: HEARTBEAT_FORMAT,
            agent: name.to_string(),
            at,
            clone,
            stale_after: self.stale_after.as_secs().max(1),
            extra: Default::default(),
        };
        let yaml = beat.to_yaml();
        self.store.replace(actor, |_| {
            let change = Change {
                reads: None,
                docs: vec![(Heartbeat::path(name), Some(yaml.clone().into_bytes()))],
                subject: format!("heartbeat {name}"),
                trailers: vec![("Coord-Op", "heartbeat".into())],
            };
            Ok((change, ()))
        })?;
        Ok(beat)
    }

    /// The heartbeat every command of an agent gives: written only for an agent that already has
    /// one (registered and seen), and only when the last is older than a quarter of
    /// `stale_after` (at most a minute), so busy agents do not write one per command.
    pub fn implicit_beat(&self, actor: &Actor, last: &Heartbeat) -> Result<()> {
        let every = (self.stale_after / 4).min(MAX_BEAT_EVERY);
        let now = jiff::Timestamp::now().as_millisecond();
        let age = now - last.at_millis().unwrap_or(i64::MIN / 2);
        if age >= 0 && (age as u128) < every.as_millis() && last.clone == clone_name(self.coord) {
            return Ok(());
        }
        self.beat(actor, &actor.agent).map(|_| ())
    }

    /// When and where `name` was last seen, and whether it is stale by this clone's judgement.
    pub fn judge(&self, beat: Option<&Heartbeat>) -> (Option<LastSeen>, bool) {
        let Some(beat) = beat else {
            return (None, false); // never seen anywhere: nothing says it went silent
        };
        let seen = LastSeen {
            at: beat.at.clone(),
            clone: beat.clone.clone(),
            here: beat.clone == clone_name(self.coord),
        };
        let now = jiff::Timestamp::now().as_millisecond();
        // Another clone's clock and this one's need not agree: what was fetched counts from
        // when it arrived here. Without that record (this clone's own heartbeats, or one
        // fetched before arrivals were kept), the stamp, never in the future.
        let at = match self.first_fetched(beat) {
            Some(first) => first,
            None => beat.at_millis().unwrap_or(i64::MIN / 2),
        }
        .min(now);
        let stale = (now - at) as u128 > self.silence_limit(beat).as_millis();
        (Some(seen), stale)
    }

    /// How long the writer of `beat` may stay silent, judged here: the shorter of its promise
    /// and this clone's stale_after.
    pub fn silence_limit(&self, beat: &Heartbeat) -> Duration {
        self.stale_after
            .min(Duration::from_secs(beat.stale_after.max(1)))
    }

    /// Exchanges presence with the coordination remote (none, or `--offline`: nothing).
    pub fn share(&self) -> Result<Option<Exchanged>> {
        match self.coord.confirm_remote()? {
            Some(remote) => self.share_with(&remote, true).map(Some),
            None => Ok(None),
        }
    }

    /// Fetches and merges the presence of `remote`, and pushes this clone's when `push`.
    pub fn share_with(&self, remote: &Remote, push: bool) -> Result<Exchanged> {
        self.exchange(remote, push, false)
    }

    /// [`Presence::share_with`] right after a fetch of every coordination ref of `remote`
    /// (`sync`, `fetch`), which brought its presence too: merged without fetching again.
    pub fn share_fetched(&self, remote: &Remote, push: bool) -> Result<Exchanged> {
        self.exchange(remote, push, true)
    }

    fn exchange(&self, remote: &Remote, push: bool, fetched: bool) -> Result<Exchanged> {
        let done = exchange_with(&self.coord.repo, remote, push, fetched, &roster(self.coord))?;
        self.note_arrivals(&done.arrived);
        Ok(done)
    }

    /// After a write that talked to the remote: pushes a heartbeat the remote has not seen.
    /// Never fails the caller: presence goes out with the next successful contact.
    pub fn share_pending(&self, remote: &Remote) {
        match push_pending(&self.coord.repo, remote, &roster(self.coord)) {
            Ok(Some(done)) => self.note_arrivals(&done.arrived),
            Ok(None) => {}
            Err(e) => tracing::debug!("presence not shared with {}: {e}", remote.name),
        }
    }

    /// Remembers when heartbeats first arrived here: their age is judged from then.
    pub fn note_arrivals(&self, arrived: &[Heartbeat]) {
        if arrived.is_empty() {
            return;
        }
        let now = jiff::Timestamp::now().as_millisecond();
        let mut seen = self.arrivals();
        for beat in arrived {
            seen.insert(
                beat.agent.clone(),
                (now, beat.at.clone(), beat.clone.clone()),
            );
        }
        let text: String = seen
            .iter()
            .map(|(agent, (when, at, clone))| format!("{agent} {when} {at} {clone}\n"))
            .collect();
        let file = arrivals_file(self.coord);
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = file.with_extension("tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &file);
        }
    }

    fn first_fetched(&self, beat: &Heartbeat) -> Option<i64> {
        self.arrivals()
            .remove(&beat.agent)
            .filter(|(_, at, clone)| *at == beat.at && *clone == beat.clone)
            .map(|(when, _, _)| when)
    }

    fn arrivals(&self) -> BTreeMap<String, (i64, String, String)> {
        let text = std::fs::read_to_string(arrivals_file(self.coord)).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut f = line.splitn(4, ' ');
                let agent = f.next()?.to_string();
                let when = f.next()?.parse().ok()?;
                let at = f.next()?.to_string();
                let clone = f.next()?.to_string();
                Some((agent, (when, at, clone)))
            })
            .collect()
    }
}

/// Whose heartbeats presence keeps, from this clone's registrations (refs/coord/agents). A
/// registration that cannot be read counts as neither active nor retired.
fn roster(coord: &Coord) -> Roster {
    let mut roster = Roster::default();
    let store = Store::new(&coord.repo, crate::store::AGENTS_REF);
    let Ok(snap) = store.snapshot() else {
        return roster;
    };
    let Some(tree) = snap.tree else {
        return roster;
    };
    let Ok(Some(dir)) = coord.repo.lookup_path(tree, "agents") else {
        return roster;
    };
    for entry in coord.repo.tree_entries(dir).unwrap_or_default() {
        let Some(name) = entry.name.strip_suffix(".yaml") else {
            continue;
        };
        let path = Agent::path(name);
        let agent = store
            .read(&snap, &path)
            .ok()
            .flatten()
            .and_then(|bytes| Agent::from_yaml(&bytes, crate::store::AGENTS_REF, &path).ok());
        match agent.map(|a| a.status) {
            Some(AgentStatus::Active) => roster.active.insert(name.to_string()),
            Some(AgentStatus::Retired) => roster.retired.insert(name.to_string()),
            None => false,
        };
    }
    roster
}

fn arrivals_file(coord: &Coord) -> PathBuf {
    coord
        .repo
        .common_dir()
        .join("coord")
        .join("presence-arrivals")
}

/// This clone's name in heartbeats: `coord.clone` in git's configuration, else the host name and
/// the path of the repository.
pub fn clone_name(coord: &Coord) -> String {
    if let Some(name) = coord
        .repo
        .config_string("coord.clone")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
    {
        return name;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    let dir = coord.repo.common_dir();
    let dir = dir.canonicalize().unwrap_or(dir);
    let top = if dir.file_name().is_some_and(|n| n == ".git") {
        dir.parent().unwrap_or(&dir).to_path_buf()
    } else {
        dir
    };
    format!("{host}:{}", top.display()).replace(char::is_whitespace, "_")
}

/// The heartbeat every command gives for the agent that runs it (see
/// [`Presence::implicit_beat`]). Never fails a command.
pub fn implicit_beat(coord: &Coord) {
    let Ok(actor) = coord.actor() else {
        return;
    };
    // Cheap first: most commands are run by someone with no heartbeat (a plain user, a
    // benchmark); only an agent that has one pays for reading the configuration.
    let Ok(Some(last)) = Presence::new(coord, DEFAULT_STALE_AFTER).get(&actor.agent) else {
        return;
    };
    let presence = Presence::new(coord, stale_after(coord));
    if let Err(e) = presence.implicit_beat(&actor, &last) {
        tracing::debug!("no heartbeat for {}: {e}", actor.agent);
    }
}

/// `stale_after` of this worktree's configuration (the default if it cannot be read).
pub fn stale_after(coord: &Coord) -> Duration {
    coord
        .config()
        .map(|c| c.stale_after)
        .unwrap_or(DEFAULT_STALE_AFTER)
}

/// Tells an agent whose task was taken over while it was stale: a message in its inbox (the
/// brief lists it) that says who took which task, and why. Whether it was filed: the caller
/// pushes the inbox. Never fails the claim that caused it.
pub fn tell_taken_over(
    coord: &Coord,
    task: &crate::model::task::Task,
    holder: &str,
    passed: &[crate::model::lease::Lease],
) -> bool {
    let presence = Presence::new(coord, stale_after(coord));
    let beat = presence.get(holder).ok().flatten();
    let (seen, _) = presence.judge(beat.as_ref());
    let by = task.assignee.clone().unwrap_or_default();
    let at = task.claimed_at.clone().unwrap_or_else(time::now);
    let why = match &beat {
        Some(b) => format!(
            "your last heartbeat ({}) was older than stale_after ({}s)",
            LastSeen::describe(seen.as_ref()),
            presence
                .stale_after
                .min(Duration::from_secs(b.stale_after))
                .as_secs()
        ),
        None => "you were retired".to_string(),
    };
    let subject = format!(
        "Task {} was taken over by {by}: you were silent too long",
        task.id
    );
    let leases = match passed {
        [] => String::new(),
        passed => format!(
            " Your leases on it passed to {by}: {}.",
            passed
                .iter()
                .map(|l| format!("{} ({})", l.id, l.patterns.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    let body = format!(
        "{by} took over task {} ({}) at {at}, because {why}.{leases} It is no longer yours: do not go on with it or push work for it. Send what you have to {by} (`git coord send {by} ...`), then `git coord brief` and `git coord task claim --next`.",
        task.id, task.title
    );
    let key = format!("takeover:{}:{holder}:{at}", task.id);
    let about = crate::ops::notices::NoticeAbout::Task(&task.id);
    match crate::ops::notices::deliver(coord, &key, holder, &subject, &body, about, &at) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!("could not tell {holder} about the takeover: {e}");
            false
        }
    }
}
