//! Agents: each one a branch, a worktree and a registration in refs/coord/agents. A worktree
//! knows its agent (a file in its own git directory), so every command run there acts as that
//! agent. An existing checkout can join in place (`register`): it gets the identity file and a
//! registration, no branch and no worktree. Presence is in refs/coord/presence (ops/presence.rs).

use crate::error::{Error, Result};
use crate::git::{Cas, RefEdit, probe_git, run_git};
use crate::model::agent::{AGENT_FORMAT, Agent, AgentEvent, AgentStatus};
use crate::model::{name, time};
use crate::ops::config::Config;
use crate::ops::context::{Coord, IDENTITY_FILE, worktree_agent};
use crate::ops::launch::Launched;
use crate::ops::presence::{LastSeen, Presence};
use crate::store::{Change, Store, Together};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use crate::store::AGENTS_REF;

/// What `agent spawn` is asked to do.
#[derive(Debug, Clone)]
pub struct Spawn {
    pub name: String,
    pub role: String,
    pub base: Option<String>,
    pub path: Option<PathBuf>,
}

/// An agent with its presence as this clone knows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AgentView {
    #[serde(flatten)]
    pub agent: Agent,
    /// The last heartbeat this clone knows of, from any clone.
    pub last_seen: Option<LastSeen>,
    pub stale: bool,
}

pub struct Agents<'c> {
    coord: &'c Coord,
    store: Store<'c>,
    config: Config,
}

impl<'c> Agents<'c> {
    pub fn new(coord: &'c Coord) -> Result<Self> {
        let config = coord.config()?;
        Ok(Agents {
            coord,
            store: Store::new(&coord.repo, AGENTS_REF),
            config,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Creates the agent's branch, its worktree and its registration; on any failure nothing of
    /// it is left behind.
    pub fn spawn(&self, req: &Spawn) -> Result<Agent> {
        name::validate("agent name", &req.name)?;
        let role = self.config.role(&req.role)?.clone();
        let actor = self.coord.actor()?;
        if let Some(existing) = self
            .get(&req.name)?
            .filter(|a| a.status == AgentStatus::Active)
        {
            return Err(Error::invalid(
                "agent name",
                &req.name,
                format!(
                    "agent {} already exists (role {}); pick another name or retire it",
                    existing.name, existing.role
                ),
            ));
        }
        let top = self.main_workdir()?;
        let branch = Agent::branch_for(&req.name);
        let existing_tip = probe_git(
            &top,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ],
        )?;
        // A retired agent's branch is reused: spawning its name again continues its work.
        let was_retired = self
            .get(&req.name)?
            .is_some_and(|a| a.status == AgentStatus::Retired);
        let reuse = existing_tip.is_some() && was_retired && req.base.is_none();
        if existing_tip.is_some() && !reuse {
            let why = if was_retired {
                format!(
                    "branch {branch} of the retired agent is kept; spawn without --base to continue on it, or delete it first (`git branch -D {branch}`)"
                )
            } else {
                format!(
                    "branch {branch} already exists; delete it (`git branch -D {branch}`) or pick another name"
                )
            };
            return Err(Error::invalid("agent name", &req.name, why));
        }
        let base = match existing_tip.filter(|_| reuse) {
            Some(tip) => tip,
            None => {
                let base_ref = match &req.base {
                    Some(base) => base.clone(),
                    None => self.integration_branch()?,
                };
                probe_git(
                    &top,
                    &[
                        "rev-parse",
                        "--verify",
                        "--quiet",
                        &format!("{base_ref}^{{commit}}"),
                    ],
                )?
                .ok_or_else(|| {
                    Error::invalid(
                        "base",
                        &base_ref,
                        "it does not resolve to a commit in this repository",
                    )
                })?
            }
        };
        let path = match &req.path {
            Some(path) if path.is_absolute() => path.clone(),
            Some(path) => self.coord.start_dir.join(path),
            None => self.default_worktree(&top, &req.name),
        };
        if !reuse && path.exists() && self.killed_spawn_left(&path, &branch)? {
            self.undo_spawn(&top, None, &path);
        }
        if is_stale_empty_dir(&path) {
            let _ = std::fs::remove_dir(&path); // a spawn killed before git made the worktree
        }
        // Made here, alone: of two spawns of one name at once, one makes it and the other stops.
        // Any other failure is left to `git worktree add`, which says it in git's words.
        let parent_made = path
            .parent()
            .is_none_or(|p| std::fs::create_dir_all(p).is_ok());
        if parent_made
            && std::fs::create_dir(&path)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::AlreadyExists)
        {
            return Err(Error::invalid(
                "worktree path",
                path.display().to_string(),
                "it already exists; pass --path to put the worktree elsewhere",
            ));
        }
        let path_text = path.display().to_string();
        // The worktree first. A new branch is not made yet: the worktree's HEAD names it before
        // it exists, with the base's files checked out, and the branch is created with the
        // registration (one ref transaction here; first, on its own, when the registration is
        // confirmed at a remote). The worktree stays locked by this process until then, so a
        // kill before leaves only a worktree locked by a process that is gone, on a branch that
        // does not exist, which the next spawn of the name clears.
        let added = match reuse {
            true => run_git(&top, &["worktree", "add", "--quiet", &path_text, &branch]),
            false => run_git(
                &top,
                &[
                    "worktree",
                    "add",
                    "--quiet",
                    "--lock",
                    "--reason",
                    &spawn_lock_reason(&branch, std::process::id()),
                    "--detach",
                    &path_text,
                    &base,
                ],
            ),
        };
        if let Err(e) = added {
            let _ = run_git(&top, &["worktree", "prune"]);
            let _ = std::fs::remove_dir(&path);
            remove_empty_parent(&path);
            return Err(e);
        }
        if !reuse {
            let head = format!("refs/heads/{branch}");
            if let Err(e) = run_git(&path, &["symbolic-ref", "HEAD", &head]) {
                self.undo_spawn(&top, None, &path);
                return Err(e);
            }
        }
        let base_oid = crate::git::Oid::from_hex(base.trim().as_bytes())
            .map_err(|e| Error::Git(format!("rev-parse printed {base}: {e}")))?;
        let new_branch = (!reuse).then(|| RefEdit {
            name: format!("refs/heads/{branch}"),
            old: None,
            new: Some(base_oid),
        });
        let mut made_branch = false;
        let registered = self.identify(&path, &req.name).and_then(|_| {
            let agent = Agent {
                format: AGENT_FORMAT,
                name: req.name.clone(),
                role: role.name.clone(),
                branch: Some(branch.clone()),
                worktree: Some(
                    path.canonicalize()
                        .unwrap_or(path.clone())
                        .display()
                        .to_string(),
                ),
                base: Some(base.clone()),
                human: actor.human.clone(),
                capabilities: role.capabilities.clone(),
                status: AgentStatus::Active,
                created: time::now(),
                created_by: actor.agent.clone(),
                retired: None,
                paused: None,
                history: Vec::new(),
                extra: Default::default(),
            };
            let register = |snap: &crate::store::Snapshot| {
                let existing = self.read(snap, &agent.name)?;
                if existing.is_some_and(|a| a.status == AgentStatus::Active) {
                    return Err(Error::invalid(
                        "agent name",
                        &agent.name,
                        "another process registered it meanwhile",
                    ));
                }
                Ok((write_change(&agent, "spawn", &actor.agent), agent.clone()))
            };
            let taken = || {
                Error::invalid(
                    "agent name",
                    &req.name,
                    format!("another process created branch {branch} meanwhile"),
                )
            };
            if self.coord.confirm_remote()?.is_none() {
                let others: Vec<RefEdit> = new_branch.iter().cloned().collect();
                return match self.store.update_together(&actor, &others, register)? {
                    Together::Written(agent) => Ok(agent),
                    Together::OtherMoved(_) => Err(taken()),
                };
            }
            if let Some(edit) = &new_branch {
                match self
                    .coord
                    .repo
                    .update_refs(std::slice::from_ref(edit), "spawn")?
                {
                    Cas::Moved => made_branch = true,
                    Cas::Lost => return Err(taken()),
                }
            }
            // Confirmed at the remote, so that every clone knows the agent at once (a claim it
            // makes elsewhere is not refused as an unknown agent's).
            crate::ops::online::update_or_keep(self.coord, &self.store, &actor, register)
                .map(|kept| kept.warned(self.coord, |a| format!("agent {} registered", a.name)))
        });
        if registered.is_ok() && !reuse {
            // Written: the lock has done its work. Left locked, the worktree is the agent's all
            // the same, and `retire` unlocks it.
            if let Err(e) = run_git(&top, &["worktree", "unlock", &path_text]) {
                tracing::debug!("{path_text} stays locked: {e}");
            }
        }
        match registered {
            Ok(agent) => {
                let mut as_agent = actor.clone();
                as_agent.agent = agent.name.clone();
                if let Err(e) = self.presence().beat(&as_agent, &agent.name) {
                    tracing::debug!("no first heartbeat for {}: {e}", agent.name);
                }
                Ok(agent)
            }
            Err(e) => {
                self.undo_spawn(&top, made_branch.then_some(branch.as_str()), &path);
                Err(e)
            }
        }
    }

    /// Whether `path` is what a spawn of `branch`'s agent, killed before its branch was made,
    /// left: a worktree of this repository locked by that spawn, whose process is gone, while
    /// `branch` does not exist.
    fn killed_spawn_left(&self, path: &Path, branch: &str) -> Result<bool> {
        if (self.coord.repo.ref_tip(&format!("refs/heads/{branch}"))?).is_some() {
            return Ok(false);
        }
        Ok(self
            .spawn_lock(path, branch)?
            .is_some_and(|pid| !alive(pid)))
    }

    /// The process whose spawn of `branch`'s agent locked the worktree at `path`, if one did.
    fn spawn_lock(&self, path: &Path, branch: &str) -> Result<Option<u32>> {
        let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let listed = self
            .coord
            .repo
            .git_ok(&["worktree", "list", "--porcelain"])?;
        let prefix = format!("locked {}", spawn_lock_reason(branch, 0));
        let prefix = prefix.trim_end_matches('0');
        Ok(listed.split("\n\n").find_map(|block| {
            let mut lines = block.lines();
            let here = lines
                .next()
                .and_then(|l| l.strip_prefix("worktree "))
                .is_some_and(|p| canon(Path::new(p)) == canon(path));
            let pid = lines.find_map(|l| l.strip_prefix(prefix)?.parse::<u32>().ok());
            pid.filter(|_| here)
        }))
    }

    /// Removes what this process's successful `git worktree add` made: the worktree, and the
    /// branch when this process made it.
    fn undo_spawn(&self, top: &Path, branch: Option<&str>, path: &Path) {
        let _ = run_git(
            top,
            &[
                "worktree",
                "remove",
                "--force",
                "--force", // locked by this spawn, until its HEAD names the branch
                &path.display().to_string(),
            ],
        );
        let _ = run_git(top, &["worktree", "prune"]);
        if let Some(branch) = branch {
            let _ = run_git(top, &["branch", "-D", branch]);
        }
        remove_empty_parent(path);
    }

    /// Writes the identity file into the worktree's own git directory.
    fn identify(&self, worktree: &Path, name: &str) -> Result<()> {
        let git_dir = run_git(worktree, &["rev-parse", "--absolute-git-dir"])?;
        std::fs::write(Path::new(&git_dir).join(IDENTITY_FILE), format!("{name}\n"))?;
        Ok(())
    }

    pub fn get(&self, name: &str) -> Result<Option<Agent>> {
        self.read(&self.store.snapshot()?, name)
    }

    fn read(&self, snap: &crate::store::Snapshot, name: &str) -> Result<Option<Agent>> {
        let path = Agent::path(name);
        match self.store.read(snap, &path)? {
            Some(bytes) => Agent::from_yaml(&bytes, AGENTS_REF, &path).map(Some),
            None => Ok(None),
        }
    }

    /// Every registered agent (retired ones too with `all`), by name. A malformed document is
    /// skipped and returned as a warning.
    pub fn list(&self, all: bool) -> Result<(Vec<AgentView>, Vec<String>)> {
        let snap = self.store.snapshot()?;
        let mut out = Vec::new();
        let mut problems = Vec::new();
        let Some(tree) = snap.tree else {
            return Ok((out, problems));
        };
        let Some(dir) = self.coord.repo.lookup_path(tree, "agents")? else {
            return Ok((out, problems));
        };
        let beats = self.presence().all().unwrap_or_default();
        for entry in self.coord.repo.tree_entries(dir)? {
            if let Some(odd) = entry.odd {
                problems.push(format!(
                    "{AGENTS_REF}:agents/{}: skipped: {odd}",
                    entry.name
                ));
                continue;
            }
            let Some(name) = entry.name.strip_suffix(".yaml").filter(|_| entry.is_blob) else {
                continue;
            };
            match self.read(&snap, name) {
                Ok(Some(agent)) if all || agent.status == AgentStatus::Active => {
                    let beat = beats.get(&agent.name);
                    out.push(self.view_with(agent, beat))
                }
                Ok(_) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }
        Ok((out, problems))
    }

    /// The agent's worktree on this machine, once it is proven to be one: a worktree of this
    /// repository whose identity file names the agent. The path in the document is data (it may
    /// come from a remote), so no git runs there before this check, which only reads files.
    pub fn own_worktree(&self, agent: &Agent) -> Result<Option<PathBuf>> {
        let Some(path) = agent
            .worktree
            .as_deref()
            .map(PathBuf::from)
            .filter(|p| p.exists())
        else {
            return Ok(None);
        };
        let refuse = |why: String| {
            Error::Other(format!(
                "{} is not {}'s worktree ({why}): nothing was done there; fix refs/coord/agents:{}",
                path.display(),
                agent.name,
                Agent::path(&agent.name)
            ))
        };
        // A linked worktree's `.git` is a file: `gitdir: <common dir>/worktrees/<id>`.
        let pointer = std::fs::read_to_string(path.join(".git"))
            .map_err(|_| refuse("it is not a linked worktree".into()))?;
        let gitdir = pointer
            .strip_prefix("gitdir:")
            .map(|d| path.join(d.trim()))
            .ok_or_else(|| refuse("its .git file names no git directory".into()))?;
        let admin = self.coord.repo.common_dir().join("worktrees");
        let (Ok(gitdir), Ok(admin)) = (gitdir.canonicalize(), admin.canonicalize()) else {
            return Err(refuse("it is not a worktree of this repository".into()));
        };
        if gitdir.parent() != Some(admin.as_path()) {
            return Err(refuse("it is not a worktree of this repository".into()));
        }
        let owner = std::fs::read_to_string(gitdir.join(IDENTITY_FILE)).unwrap_or_default();
        if owner.trim() != agent.name {
            return Err(refuse(format!(
                "its identity file names {}",
                if owner.trim().is_empty() {
                    "no agent"
                } else {
                    owner.trim()
                }
            )));
        }
        Ok(Some(path))
    }

    pub fn show(&self, name: &str) -> Result<AgentView> {
        name::validate("agent name", name)?;
        let agent = self.get(name)?.ok_or_else(|| no_such_agent(name))?;
        Ok(self.view(agent))
    }

    fn view(&self, agent: Agent) -> AgentView {
        let beat = self.presence().get(&agent.name).ok().flatten();
        self.view_with(agent, beat.as_ref())
    }

    fn view_with(
        &self,
        agent: Agent,
        beat: Option<&crate::model::presence::Heartbeat>,
    ) -> AgentView {
        let (last_seen, silent) = self.presence().judge(beat);
        AgentView {
            last_seen,
            stale: agent.status == AgentStatus::Retired || silent,
            agent,
        }
    }

    pub fn presence(&self) -> Presence<'c> {
        Presence::new(self.coord, self.config.stale_after)
    }

    /// Agents whose claims and leases may be taken over: retired ones, and those silent for
    /// longer than the configured timeout.
    pub fn stale(&self) -> Result<HashSet<String>> {
        Ok(self
            .list(true)?
            .0
            .into_iter()
            .filter(|v| v.stale)
            .map(|v| v.agent.name)
            .collect())
    }

    /// Agents whose claims may be taken over, judged as late as possible: with a remote, when
    /// some holder looks stale here, presence is fetched first, so a heartbeat that reached the
    /// remote meanwhile still counts.
    pub fn stale_for_takeover(&self) -> Result<HashSet<String>> {
        let all = self.list(true)?.0;
        // A clone that could not reach the remote within the silence limit judges no live
        // agent by its silence: their heartbeats were as stuck as its own, and what they did
        // meanwhile (a task done, kept here until it could go out) may not have arrived yet.
        // Retired holders are not judged by silence, so they stay takeable.
        if let Some(remote) = self.coord.confirm_remote()?
            && crate::remote::transport::unreachable_within(
                &self.coord.repo,
                &remote.name,
                crate::ops::presence::stale_after(self.coord),
            )
        {
            return Ok(all
                .into_iter()
                .filter(|v| v.agent.status == AgentStatus::Retired)
                .map(|v| v.agent.name)
                .collect());
        }
        let silent_active = all
            .iter()
            .any(|v| v.stale && v.agent.status == AgentStatus::Active);
        let stale = all
            .into_iter()
            .filter(|v| v.stale)
            .map(|v| v.agent.name)
            .collect();
        if !silent_active {
            return Ok(stale);
        }
        match self.presence().share() {
            Ok(_) => self.stale(),
            Err(e) => {
                tracing::debug!("presence not refreshed before a takeover: {e}");
                Ok(stale)
            }
        }
    }

    /// Whether a claim `holder` made at `claimed_at` is younger than the silence its heartbeat
    /// allows: the holder was alive when the claim was confirmed, even if no heartbeat of that
    /// time has arrived here (an online claim goes out before the heartbeat that comes with it,
    /// so an agent back from an outage looks stale elsewhere for a moment). A retired holder, a
    /// holder never seen, or a claim stamped in the future proves nothing.
    pub fn claim_proves_alive(&self, holder: &str, claimed_at: Option<&str>) -> Result<bool> {
        let Some(at) = claimed_at.and_then(crate::model::time::parse) else {
            return Ok(false);
        };
        let view = self.show(holder)?;
        let presence = self.presence();
        let Some(beat) = presence.get(holder)? else {
            return Ok(false);
        };
        if view.agent.status == AgentStatus::Retired {
            return Ok(false);
        }
        let age = jiff::Timestamp::now().as_millisecond() - at.as_millisecond();
        Ok(age >= 0 && age as u128 <= presence.silence_limit(&beat).as_millis())
    }

    /// Records that `name` is alive now and, with a remote, shares it. An unreachable remote is
    /// not an error: the heartbeat is kept here and goes out with the next successful contact. A
    /// remote that refuses it is.
    pub fn heartbeat(&self, name: &str) -> Result<(AgentView, Option<Error>)> {
        let view = self.show(name)?;
        if view.agent.status == AgentStatus::Retired {
            return Err(Error::invalid("agent", name, "it is retired"));
        }
        let actor = self.coord.actor()?;
        self.presence().beat(&actor, name)?;
        let unshared = match self.presence().share() {
            Err(e) if crate::remote::presence::is_refusal(&e) => return Err(e), // for good
            shared => shared.err(),
        };
        Ok((self.show(name)?, unshared))
    }

    /// Registers the current worktree (or clone) as agent `name`, in place: no branch, no new
    /// worktree. Every command run here then acts as `name`. Refused, with nothing written, for a
    /// name unfit for a ref, one already active elsewhere, or a worktree that already is another
    /// active agent.
    pub fn register(&self, name: &str, role: &str) -> Result<Agent> {
        name::validate("agent name", name)?;
        let role = self.config.role(role)?.clone();
        let here = self
            .coord
            .repo
            .workdir()
            .unwrap_or(self.coord.repo.git_dir());
        let here = here.canonicalize().unwrap_or(here).display().to_string();
        if let Some(current) = worktree_agent(&self.coord.repo)
            && current != name
            && self
                .get(&current)?
                .is_some_and(|a| a.status == AgentStatus::Active)
        {
            return Err(Error::invalid(
                "agent name",
                name,
                format!(
                    "this worktree already is agent {current}; retire it first (`git coord agent retire {current}`)"
                ),
            ));
        }
        let mut actor = self.coord.actor()?;
        let created_by = actor.agent.clone();
        actor.agent = name.to_string();
        let agent = Agent {
            format: AGENT_FORMAT,
            name: name.to_string(),
            role: role.name.clone(),
            branch: None,
            worktree: Some(here.clone()),
            base: None,
            human: actor.human.clone(),
            capabilities: role.capabilities.clone(),
            status: AgentStatus::Active,
            created: time::now(),
            created_by,
            retired: None,
            paused: None,
            history: Vec::new(),
            extra: Default::default(),
        };
        let registered = crate::ops::online::update(self.coord, &self.store, &actor, |snap| {
            if let Some(existing) = self.read(snap, name)?
                && existing.status == AgentStatus::Active
            {
                if existing.worktree.as_deref() == Some(here.as_str())
                    && existing.role == agent.role
                {
                    return Ok((Change::default(), existing)); // registered here already
                }
                return Err(Error::invalid(
                    "agent name",
                    name,
                    format!(
                        "agent {name} is already active ({}, worktree {}); pick another name, or retire it there first",
                        existing.role,
                        existing.worktree.as_deref().unwrap_or("-")
                    ),
                ));
            }
            Ok((
                write_change(&agent, "register", &actor.agent),
                agent.clone(),
            ))
        })?;
        std::fs::write(
            self.coord.repo.git_dir().join(IDENTITY_FILE),
            format!("{name}\n"),
        )?;
        // Registered whatever happens next: presence is shared on the next contact if not now.
        if self.presence().beat(&actor, name).is_ok() {
            let _ = self.presence().share();
        }
        Ok(registered)
    }

    /// Removes the agent's worktree and marks it retired. Refuses uncommitted changes and commits
    /// not merged into the integration branch unless `force`; keeps the branch unless
    /// `delete_branch`.
    pub fn retire(&self, name: &str, force: bool, delete_branch: bool) -> Result<Agent> {
        let agent = self.show(name)?.agent;
        if agent.status == AgentStatus::Retired {
            return Err(Error::invalid("agent", name, "it is already retired"));
        }
        let actor = self.coord.actor()?;
        if agent.branch.is_none() {
            return self.retire_in_place(&agent, &actor);
        }
        let top = self.main_workdir()?;
        // The document is data: only ever touch the agent's own branch, and a worktree whose
        // identity file names this agent.
        let own_branch = Agent::branch_for(name);
        if agent.branch.as_deref().is_some_and(|b| b != own_branch) {
            return Err(Error::Other(format!(
                "cannot retire {name}: its document names branch {}, not {own_branch}; fix refs/coord/agents:{} first",
                agent.branch.as_deref().unwrap_or_default(),
                Agent::path(name)
            )));
        }
        let worktree = self.own_worktree(&agent)?;
        if let Some(path) = &worktree {
            let dirty = run_git(path, &["status", "--porcelain"])?;
            if !dirty.is_empty() && !force {
                let first: Vec<&str> = dirty.lines().take(5).collect();
                return Err(Error::Other(format!(
                    "cannot retire {name}: its worktree has uncommitted changes ({}); commit them, or pass --force to drop them",
                    first.join(", ")
                )));
            }
        }
        // Whether every commit of the branch is in the integration branch, as counted here.
        let mut merged = false;
        if let Some(branch) = &agent.branch {
            let integration = self.integration_branch()?;
            let counted = probe_git(
                &top,
                &["rev-list", "--count", &format!("{integration}..{branch}")],
            )?
            .and_then(|n| n.trim().parse::<u64>().ok());
            merged = counted == Some(0);
            let unmerged = counted.unwrap_or(0);
            if unmerged > 0 && !force {
                return Err(Error::Other(format!(
                    "cannot retire {name}: {branch} has {unmerged} commit(s) not merged into {integration}; merge them, or pass --force (the branch is kept)"
                )));
            }
        }
        // A process launched for the agent stops first: it works in the worktree about to go.
        stop_launched(self.coord, name)?;
        if let Some(path) = &worktree {
            // A spawn killed after it registered the agent leaves the worktree locked.
            if let Some(branch) = &agent.branch
                && self
                    .spawn_lock(path, branch)?
                    .is_some_and(|pid| !alive(pid))
            {
                let _ = run_git(&top, &["worktree", "unlock", &path.display().to_string()]);
            }
            let path = path.display().to_string();
            let mut args = vec!["worktree", "remove"];
            if force {
                args.push("--force");
            }
            args.push(&path);
            run_git(&top, &args)?;
        }
        let _ = run_git(&top, &["worktree", "prune"]); // a worktree deleted by hand
        let retire = |snap: &crate::store::Snapshot| {
            let mut current = self.read(snap, name)?.ok_or_else(|| no_such_agent(name))?;
            current.status = AgentStatus::Retired;
            current.retired = Some(time::now());
            Ok((write_change(&current, "retire", &actor.agent), current))
        };
        let branch = agent.branch.as_deref().filter(|_| delete_branch);
        let tip = match branch {
            Some(branch) => self.coord.repo.ref_tip(&format!("refs/heads/{branch}"))?,
            None => None,
        };
        // Merged into the integration branch (counted above) or forced: the only checks. A
        // branch already gone (a retire killed before) has nothing left to delete.
        if let (Some(branch), Some(_)) = (branch, tip)
            && !(force || merged)
        {
            return Err(Error::Other(format!(
                "cannot retire {name}: whether {branch} is merged into the integration branch cannot be told; pass --force to delete it anyway, or retire without --delete-branch"
            )));
        }
        let deletion = branch.zip(tip).map(|(b, tip)| RefEdit {
            name: format!("refs/heads/{b}"),
            old: Some(tip),
            new: None,
        });
        if self.coord.confirm_remote()?.is_none() {
            // The branch goes with the retirement, in one ref transaction.
            let others: Vec<RefEdit> = deletion.into_iter().collect();
            return match self.store.update_together(&actor, &others, retire)? {
                Together::Written(retired) => Ok(retired),
                Together::OtherMoved(moved) => Err(Error::Other(format!(
                    "cannot retire {name}: {moved} moved meanwhile; nothing was retired: run it again"
                ))),
            };
        }
        if let Some(deletion) = &deletion
            && self
                .coord
                .repo
                .update_refs(std::slice::from_ref(deletion), "retire")?
                == Cas::Lost
        {
            return Err(Error::Other(format!(
                "cannot retire {name}: {} moved meanwhile; nothing was retired: run it again",
                deletion.name
            )));
        }
        Ok(
            crate::ops::online::update_or_keep(self.coord, &self.store, &actor, retire)?
                .warned(self.coord, |a| format!("agent {} retired", a.name)),
        )
    }

    /// Retires an agent that joined in place: only its registration goes (and the identity file
    /// of its checkout, when that is on this machine and names it); the checkout, its branch and
    /// its work stay as they are.
    fn retire_in_place(&self, agent: &Agent, actor: &crate::store::Actor) -> Result<Agent> {
        let name = agent.name.clone();
        stop_launched(self.coord, &name)?; // a retired agent works no more
        let retired = crate::ops::online::update_or_keep(self.coord, &self.store, actor, |snap| {
            let mut current = self
                .read(snap, &name)?
                .ok_or_else(|| no_such_agent(&name))?;
            current.status = AgentStatus::Retired;
            current.retired = Some(time::now());
            Ok((write_change(&current, "retire", &actor.agent), current))
        })?
        .warned(self.coord, |a| format!("agent {} retired", a.name));
        // The document is data: git is never run in the path it names. Only this checkout's own
        // identity file, or its main worktree's, is removed, and only if it names this agent.
        let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let named = agent.worktree.as_deref().map(|p| canon(Path::new(p)));
        let mut git_dirs = Vec::new();
        if let Some(here) = self.coord.repo.workdir() {
            git_dirs.push((canon(&here), self.coord.repo.git_dir()));
        }
        if let Some(main) = self.coord.repo.main_workdir() {
            git_dirs.push((canon(&main), self.coord.repo.common_dir()));
        }
        if let Some((_, dir)) = git_dirs.iter().find(|(top, _)| Some(top) == named.as_ref()) {
            let file = dir.join(IDENTITY_FILE);
            if std::fs::read_to_string(&file).is_ok_and(|owner| owner.trim() == name) {
                std::fs::remove_file(&file)?;
            }
        }
        Ok(retired)
    }

    /// The branch agents start from: the configured one, else the remote's default branch, else
    /// the branch checked out in the main worktree.
    pub fn integration_branch(&self) -> Result<String> {
        if let Some(branch) = &self.config.integration_branch {
            return Ok(branch.clone());
        }
        let top = self.main_workdir()?;
        if let Some(remote_head) = probe_git(
            &top,
            &[
                "symbolic-ref",
                "--quiet",
                "--short",
                "refs/remotes/origin/HEAD",
            ],
        )? {
            return Ok(remote_head.trim_start_matches("origin/").to_string());
        }
        if let Some(head) = probe_git(&top, &["symbolic-ref", "--quiet", "--short", "HEAD"])? {
            return Ok(head);
        }
        Ok("main".to_string())
    }

    /// Starts `command`, else the agent's role command, in its worktree, detached.
    pub fn launch(&self, name: &str, command: Option<&str>) -> Result<Launched> {
        self.launch_child(name, command)
            .map(|(launched, _)| launched)
    }

    /// [`Agents::launch`], also handing back the runner's process, which a long-lived caller
    /// (supervise) must reap once it ends.
    pub fn launch_child(
        &self,
        name: &str,
        command: Option<&str>,
    ) -> Result<(Launched, std::process::Child)> {
        let view = self.show(name)?;
        let role = self.config().role(&view.agent.role)?;
        let command = command
            .map(str::to_string)
            .or_else(|| role.command.clone())
            .ok_or_else(|| crate::ops::launch::no_command(&role.name))?;
        let worktree = view
            .agent
            .worktree
            .map(PathBuf::from)
            .filter(|w| w.is_dir())
            .ok_or_else(|| Error::invalid("agent", name, "its worktree is not on this machine"))?;
        crate::ops::launch::launch_child(self.coord, name, &worktree, &command)
    }

    fn main_workdir(&self) -> Result<PathBuf> {
        self.coord.repo.main_workdir().ok_or_else(|| {
            Error::Other(
                "this repository has no main worktree (a bare repository); agents need one".into(),
            )
        })
    }

    fn default_worktree(&self, top: &Path, name: &str) -> PathBuf {
        let repo = top
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "repo".into());
        let dir = self.config.worktrees.replace("{repo}", &repo);
        top.parent().unwrap_or(top).join(dir).join(name)
    }
}

/// Stops the process `agent spawn --launch` or `agent launch` started for `agent`, if it runs.
fn stop_launched(coord: &Coord, agent: &str) -> Result<()> {
    if crate::ops::launch::running(coord, agent).is_some() {
        crate::ops::launch::stop(coord, agent)?;
    }
    Ok(())
}

/// Removes the directory that held `path` if nothing else is in it (the `<repo>.agents` folder).
/// The reason a spawn by process `pid` locks the worktree it makes with, until the branch and
/// the registration are written.
fn spawn_lock_reason(branch: &str, pid: u32) -> String {
    format!("git-coord: spawning {branch} in process {pid}")
}

/// Whether `path` is an empty directory last changed longer ago than a ref lock is taken for a
/// killed process's: what a spawn killed between making it and `git worktree add` leaves.
fn is_stale_empty_dir(path: &Path) -> bool {
    let empty = std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none());
    empty
        && std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > crate::git::STALE_LOCK))
}

/// Whether process `pid` still runs on this machine.
fn alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(crate::ops::launch::alive)
}

fn remove_empty_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        let _ = std::fs::remove_dir(parent); // fails, harmlessly, unless empty
    }
}

fn no_such_agent(name: &str) -> Error {
    Error::invalid(
        "agent",
        name,
        "no such agent; `git coord agent list` shows them",
    )
}

fn write_change(agent: &Agent, op: &str, by: &str) -> Change {
    Change {
        reads: None,
        docs: vec![(Agent::path(&agent.name), Some(agent.to_yaml().into_bytes()))],
        subject: format!("{op} agent {} by {by}", agent.name),
        trailers: vec![
            ("Coord-Op", format!("agent-{op}")),
            ("Coord-Target", agent.name.clone()),
        ],
    }
}

/// What an edit of one agent's registration did: the event it adds to its history and the
/// commit that records it.
pub struct RegistrationEdit {
    /// The history event's op (`role`, `pause`, `resume`) and note.
    pub op: String,
    pub note: Option<String>,
    pub subject: String,
    /// The commit's `Coord-Op`.
    pub coord_op: String,
}

/// Rewrites the registration of the active agent `agent_name`: `edit` changes the document (given
/// the acting agent and the time) and says what it did, or None when it is already as asked, and
/// nothing is written. A name that is no agent is refused, and so is a retired one (`retired`
/// says why). One write, as every registration's.
pub fn edit_registration(
    coord: &Coord,
    agent_name: &str,
    retired: &str,
    mut edit: impl FnMut(&mut Agent, &str, &str) -> Result<Option<RegistrationEdit>>,
) -> Result<Agent> {
    name::validate("agent name", agent_name)?;
    let actor = coord.actor()?;
    let store = Store::new(&coord.repo, AGENTS_REF);
    let path = Agent::path(agent_name);
    store.update(&actor, |snap| {
        let bytes = store
            .read(snap, &path)?
            .ok_or_else(|| no_such_agent(agent_name))?;
        let mut agent = Agent::from_yaml(&bytes, AGENTS_REF, &path)?;
        if agent.status == AgentStatus::Retired {
            return Err(Error::invalid("agent", agent_name, retired));
        }
        let at = time::now();
        let Some(done) = edit(&mut agent, &actor.agent, &at)? else {
            return Ok((Change::default(), agent));
        };
        agent.history.push(AgentEvent {
            at,
            by: actor.agent.clone(),
            op: done.op,
            note: done.note,
        });
        let change = Change {
            reads: None,
            docs: vec![(path.clone(), Some(agent.to_yaml().into_bytes()))],
            subject: done.subject,
            trailers: vec![
                ("Coord-Op", done.coord_op),
                ("Coord-Target", agent_name.to_string()),
            ],
        };
        Ok((change, agent))
    })
}
