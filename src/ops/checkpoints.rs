//! Checkpoints: merge agent branches into the integration branch in memory, run the gate commands
//! on the result in a throwaway worktree, move the branch only if every gate passed and it did not
//! move meanwhile, and record what happened in refs/coord/checkpoints. Also rollback to an
//! earlier checkpoint (a new commit: nothing is lost) and bringing agent branches up to date.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::git::{Oid, RefEdit, TreeMerge, probe_git, run_git};
use crate::model::agent::Agent;
use crate::model::checkpoint::{
    CHECKPOINT_FORMAT, Checkpoint, CommitRef, ConflictedBranch, GateResult, LeaseBreach,
    LeaseRefusal, MergedBranch, Outcome,
};
use crate::model::message::Importance;
use crate::model::task::{Kind, State};
use crate::model::time;
use crate::ops::agents::Agents;
use crate::ops::context::Coord;
use crate::ops::leases::Leases;
use crate::ops::messages::{InboxFilter, Messages, Outgoing, clip};
use crate::ops::tasks::{NewTask, Tasks};
use crate::store::{Change, Snapshot, Store, Together};

pub use crate::store::CHECKPOINTS_REF;
/// Lines of a gate's output kept in the record.
const OUTPUT_TAIL_LINES: usize = 20;
/// Commits named for each leased path a branch left out changes.
const BREACH_COMMITS: usize = 3;
pub use crate::model::task::CHECKPOINT_LABEL;

/// What to merge and how to check it.
#[derive(Debug, Default, Clone)]
pub struct Request {
    pub into: Option<String>,
    /// Agent names; empty with no tasks: every active agent with a branch.
    pub agents: Vec<String>,
    /// Task ids: the branches of their assignees.
    pub tasks: Vec<String>,
    /// Gate commands; None: those of `.coord.yaml`.
    pub gates: Option<Vec<String>>,
    pub dry_run: bool,
    pub refresh: bool,
}

/// The two sides of one conflicting path, as diffs from their merge base.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConflictDiff {
    pub agent: String,
    pub path: String,
    pub integration: String,
    pub branch: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub checkpoint: Checkpoint,
    /// False for a dry run: nothing was recorded, run or moved.
    pub recorded: bool,
    pub diffs: Vec<ConflictDiff>,
    /// What `--refresh` did to each merged agent's branch.
    pub refreshed: Vec<(String, String)>,
    /// Workflow stages that should have produced code and had none to merge: their checkpoint
    /// task stays open, and the organiser was told.
    pub waiting: Vec<String>,
    /// Why the breaker tripped after this checkpoint, and what it paused, if it did.
    pub breaker: Option<String>,
    /// What failed after the checkpoint was recorded (the branch moved, or not, as recorded):
    /// finishing the workflow's checkpoint tasks, or counting for the breaker.
    pub warnings: Vec<String>,
}

pub struct Checkpoints<'c> {
    coord: &'c Coord,
    store: Store<'c>,
}

impl<'c> Checkpoints<'c> {
    pub fn new(coord: &'c Coord) -> Self {
        Checkpoints {
            coord,
            store: Store::new(&coord.repo, CHECKPOINTS_REF),
        }
    }

    /// Runs a checkpoint. `progress` hears each step as it happens (for stderr).
    pub fn run(&self, req: &Request, progress: &mut dyn FnMut(&str)) -> Result<Report> {
        let repo = &self.coord.repo;
        let actor = self.coord.actor()?;
        let agents = Agents::new(self.coord)?;
        let into = match &req.into {
            Some(b) => b.clone(),
            None => agents.integration_branch()?,
        };
        let before = repo
            .resolve_commit(&format!("refs/heads/{into}"))?
            .ok_or_else(|| {
                Error::invalid(
                    "branch",
                    &into,
                    "no such branch to merge into (--into BRANCH)",
                )
            })?;
        let candidates = self.branches(&agents, req)?;
        let mut current = before;
        let mut merged = Vec::new();
        // The tree of each clean merge, to write the merge commits again once gates have run.
        let mut trees = Vec::new();
        let mut conflicts = Vec::new();
        let mut lease_refusals = Vec::new();
        let mut diffs = Vec::new();
        let leases = Leases::new(self.coord);
        for (agent, branch, commit) in candidates {
            if repo.is_ancestor(commit, current)? {
                continue; // already in
            }
            // The rule of the pre-commit guard, for commits made with the hooks off.
            let breaches = self.lease_breaches(&leases, &agent, current, commit)?;
            if !breaches.is_empty() {
                let mut paths: Vec<&str> = breaches.iter().map(|b| b.path.as_str()).collect();
                paths.dedup();
                progress(&format!(
                    "left out {branch}: it changes {}, leased to other agents",
                    paths.join(", ")
                ));
                lease_refusals.push(LeaseRefusal {
                    agent,
                    branch,
                    commit: commit.to_string(),
                    breaches,
                });
                continue;
            }
            match repo.merge_commits(current, commit)? {
                TreeMerge::Clean(tree) => {
                    let message = format!("checkpoint: merge {branch} into {into}");
                    current = repo.commit_tree_as_user(tree, &[current, commit], &message)?;
                    trees.push(tree);
                    progress(&format!("merged {branch}"));
                    merged.push(MergedBranch {
                        agent,
                        branch,
                        commit: commit.to_string(),
                    });
                }
                TreeMerge::Conflicted(paths) => {
                    progress(&format!(
                        "left out {branch}: conflicts in {}",
                        paths.join(", ")
                    ));
                    let base = repo.merge_base(current, commit)?;
                    for path in &paths {
                        let side = |to: Oid| -> String {
                            base.and_then(|b| repo.diff_path(b, to, path).ok())
                                .unwrap_or_default()
                        };
                        diffs.push(ConflictDiff {
                            agent: agent.clone(),
                            path: path.clone(),
                            integration: side(current),
                            branch: side(commit),
                        });
                    }
                    conflicts.push(ConflictedBranch {
                        agent,
                        branch,
                        commit: commit.to_string(),
                        paths,
                        resolve_task: None,
                    });
                }
            }
        }
        let tasks = self.covered(req, &merged)?;
        let mut checkpoint = Checkpoint {
            format: CHECKPOINT_FORMAT,
            seq: 0,
            into: into.clone(),
            outcome: if merged.is_empty() {
                Outcome::NothingToMerge
            } else {
                Outcome::Moved
            },
            before: before.to_string(),
            after: (!merged.is_empty()).then(|| current.to_string()),
            merged,
            conflicts,
            lease_refusals,
            tasks,
            gates: Vec::new(),
            rollback_of: None,
            undo: false,
            dropped: Vec::new(),
            at: time::now(),
            by: actor.agent.clone(),
            extra: Default::default(),
        };
        if req.dry_run {
            return Ok(Report {
                checkpoint,
                recorded: false,
                diffs,
                refreshed: Vec::new(),
                waiting: Vec::new(),
                breaker: None,
                warnings: Vec::new(),
            });
        }
        // What could refuse comes before the gates run and the branch moves: a dirty checkout
        // of the branch, and the tasks that resolve the branches left out (filed whatever the
        // outcome).
        if !checkpoint.merged.is_empty() {
            self.clean_checkout_of(&into)?;
        }
        for conflict in &mut checkpoint.conflicts {
            let task = self.open_resolve_task(conflict, &into, &diffs)?;
            conflict.resolve_task = Some(task);
        }
        for refusal in &checkpoint.lease_refusals {
            self.tell_lease_refusal(refusal, &into)?;
        }
        if !checkpoint.merged.is_empty() {
            let gates = match &req.gates {
                Some(g) => g.clone(),
                None => agents.config().gates.clone(),
            };
            checkpoint.gates = self.run_gates(current, &gates, progress)?;
            // The same trees again, now with messages naming the agents, tasks and gate results.
            current = self.attributed_merges(before, &into, &checkpoint, &trees)?;
            checkpoint.after = Some(current.to_string());
            if checkpoint.gates.iter().any(|g| !g.passed) {
                checkpoint.outcome = Outcome::GatesFailed;
            }
        }
        checkpoint = match checkpoint.outcome {
            Outcome::Moved => match self.move_and_record(checkpoint.clone(), current, before)? {
                Some(recorded) => {
                    progress(&format!("{into} moved to {}", &current.to_string()[..12]));
                    recorded
                }
                None => {
                    checkpoint.outcome = Outcome::BranchMoved;
                    self.record(checkpoint)?
                }
            },
            _ => self.record(checkpoint)?,
        };
        // Recorded: what follows is said, not failed on, so that a checkpoint that moved the
        // branch never reports an error.
        let mut warnings = Vec::new();
        let mut waiting = Vec::new();
        if matches!(checkpoint.outcome, Outcome::Moved | Outcome::NothingToMerge) {
            match self.finish_checkpoint_tasks(&checkpoint) {
                Ok(w) => waiting = w,
                Err(e) => warnings.push(format!(
                    "the workflow's checkpoint tasks were not marked done ({e}); run the checkpoint again, or mark them done by hand"
                )),
            }
        }
        if checkpoint.outcome == Outcome::GatesFailed {
            for m in &checkpoint.merged {
                if let Err(e) = self.tell_gate_failure(&checkpoint, m, &into) {
                    warnings.push(format!(
                        "{} was not told that the gates failed ({e})",
                        m.agent
                    ));
                }
            }
        }
        let breaker = crate::ops::workflows::after_checkpoint(self.coord, &checkpoint)
            .unwrap_or_else(|e| {
                warnings.push(format!("the breaker did not count this checkpoint ({e})"));
                None
            });
        let mut refreshed = Vec::new();
        if req.refresh && checkpoint.outcome == Outcome::Moved {
            for m in &checkpoint.merged {
                let what = self
                    .refresh(&m.agent)
                    .unwrap_or_else(|e| format!("not refreshed: {e}"));
                refreshed.push((m.agent.clone(), what));
            }
        }
        Ok(Report {
            checkpoint,
            recorded: true,
            diffs,
            refreshed,
            waiting,
            breaker,
            warnings,
        })
    }

    /// Writes the chain of merge commits again (same trees, same merged commits) with messages
    /// that name each merged agent and its tasks, and on the last one every agent, task and gate
    /// result of the checkpoint. Returns the new tip.
    fn attributed_merges(
        &self,
        before: Oid,
        into: &str,
        checkpoint: &Checkpoint,
        trees: &[Oid],
    ) -> Result<Oid> {
        let repo = &self.coord.repo;
        let tasks = Tasks::new(self.coord);
        let index = tasks.load_index()?;
        let tasks_of = |agent: &str| -> Vec<String> {
            checkpoint
                .tasks
                .iter()
                .filter(|t| index.get(t).is_some_and(|x| x.assignee() == Some(agent)))
                .cloned()
                .collect()
        };
        let title = |id: &str| {
            index
                .get(id)
                .map(|t| t.title().to_string())
                .unwrap_or_default()
        };
        let mut current = before;
        for (n, (m, tree)) in checkpoint.merged.iter().zip(trees).enumerate() {
            let last = n + 1 == checkpoint.merged.len();
            let mine = tasks_of(&m.agent);
            let mut body = format!("Work of {} ({}).\n", m.agent, m.branch);
            for t in &mine {
                body.push_str(&format!("- task {t}: {}\n", clip(&title(t), 100)));
            }
            let mut trailers = vec![
                ("Coord-Op", "checkpoint".to_string()),
                ("Coord-Agent", m.agent.clone()),
            ];
            trailers.extend(mine.iter().map(|t| ("Coord-Task", t.clone())));
            if last {
                let agents: Vec<&str> =
                    checkpoint.merged.iter().map(|m| m.agent.as_str()).collect();
                body.push_str(&format!(
                    "\nThis checkpoint merged: {}.\n",
                    agents.join(", ")
                ));
                if !checkpoint.tasks.is_empty() {
                    body.push_str(&format!("Tasks: {}.\n", checkpoint.tasks.join(", ")));
                }
                body.push_str("Gates:");
                if checkpoint.gates.is_empty() {
                    body.push_str(" none configured\n");
                } else {
                    body.push('\n');
                }
                for g in &checkpoint.gates {
                    let result = if g.passed { "passed" } else { "FAILED" };
                    body.push_str(&format!("- {result} ({:.1}s): {}\n", g.seconds, g.command));
                    trailers.push(("Coord-Gate", format!("{result} {}", g.command)));
                }
                for other in checkpoint.merged.iter().filter(|o| o.agent != m.agent) {
                    trailers.push(("Coord-Agent", other.agent.clone()));
                    trailers.extend(
                        tasks_of(&other.agent)
                            .into_iter()
                            .map(|t| ("Coord-Task", t)),
                    );
                }
            }
            let mut message = format!("checkpoint: merge {} into {into}\n\n{body}\n", m.branch);
            for (k, v) in &trailers {
                message.push_str(&format!("{k}: {}\n", v.replace('\n', " ")));
            }
            let commit = Oid::from_hex(m.commit.as_bytes())
                .map_err(|e| Error::Other(format!("merged commit {}: {e}", m.commit)))?;
            current = repo.commit_tree_as_user(*tree, &[current, commit], &message)?;
        }
        Ok(current)
    }

    /// (agent, branch, commit) of each branch a request covers, by agent name.
    fn branches(&self, agents: &Agents, req: &Request) -> Result<Vec<(String, String, Oid)>> {
        let mut names: Vec<String> = req.agents.clone();
        if !req.tasks.is_empty() {
            let tasks = Tasks::new(self.coord);
            for t in &req.tasks {
                let task = tasks.show(t)?;
                match task.assignee {
                    Some(a) => names.push(a),
                    None => {
                        return Err(Error::invalid(
                            "task",
                            t,
                            "no agent worked on it, so it has no branch to merge",
                        ));
                    }
                }
            }
        }
        if names.is_empty() {
            names = agents
                .list(false)?
                .0
                .into_iter()
                .filter(|v| v.agent.branch.is_some())
                .map(|v| v.agent.name)
                .collect();
        }
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            let agent = agents.show(&name)?.agent;
            // Only ever the agent's own branch, whatever its document says.
            let Some(branch) = agent.branch.map(|_| Agent::branch_for(&agent.name)) else {
                if req.agents.contains(&name) {
                    return Err(Error::invalid("agent", &name, "it has no branch"));
                }
                continue;
            };
            let Some(commit) = self
                .coord
                .repo
                .resolve_commit(&format!("refs/heads/{branch}"))?
            else {
                continue; // its branch is gone (retired with --delete-branch)
            };
            out.push((name, branch, commit));
        }
        Ok(out)
    }

    /// The tasks a checkpoint covers: the ones asked for, else the done tasks of the agents merged.
    fn covered(&self, req: &Request, merged: &[MergedBranch]) -> Result<Vec<String>> {
        let tasks = Tasks::new(self.coord);
        if !req.tasks.is_empty() {
            return req.tasks.iter().map(|t| tasks.resolve_now(t)).collect();
        }
        let index = tasks.load_index()?;
        let mut out: Vec<String> = index
            .tasks()
            .filter(|t| t.state() == State::Done)
            .filter(|t| {
                merged
                    .iter()
                    .any(|m| Some(m.agent.as_str()) == t.assignee())
            })
            .map(|t| t.id().to_string())
            .collect();
        out.sort();
        Ok(out)
    }

    /// Runs each gate with `sh -c` in a throwaway worktree of `commit`; stops at the first failure.
    fn run_gates(
        &self,
        commit: Oid,
        gates: &[String],
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<GateResult>> {
        let repo = &self.coord.repo;
        remove_stale_gates(repo);
        if gates.is_empty() {
            return Ok(Vec::new());
        }
        // Named by this process's identity (pid and start time), so that a later checkpoint
        // never takes a reused pid for this one.
        let me = std::process::id();
        let start = crate::ops::launch::ProcessIdentity::of(me).map_or(0, |p| p.start);
        let dir = repo
            .common_dir()
            .join("coord")
            .join("gates")
            .join(format!("{}-{me}.{start}", &commit.to_string()[..12],));
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let path = dir.display().to_string();
        repo.git_ok(&[
            "worktree",
            "add",
            "--detach",
            "--quiet",
            &path,
            &commit.to_string(),
        ])?;
        let results = run_each(&dir, gates, progress);
        let _ = repo.git(&["worktree", "remove", "--force", &path]);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = repo.git(&["worktree", "prune"]);
        results
    }

    /// Moves the integration branch from `before` to `after` and records `checkpoint` (whose
    /// outcome says the move) in one ref transaction: the branch and refs/coord/checkpoints move
    /// together or not at all. A worktree that has the branch checked out (refused when it has
    /// uncommitted changes) is brought to `after` first, as `git merge --ff-only` would, and put
    /// back when the branch moved meanwhile. None when it did: nothing moved, nothing recorded.
    fn move_and_record(
        &self,
        checkpoint: Checkpoint,
        after: Oid,
        before: Oid,
    ) -> Result<Option<Checkpoint>> {
        let repo = &self.coord.repo;
        let into = checkpoint.into.clone();
        let refname = format!("refs/heads/{into}");
        let worktree = self.clean_checkout_of(&into)?;
        if repo.resolve_commit(&refname)? != Some(before) {
            return Ok(None);
        }
        if let Some(worktree) = &worktree {
            check_out(repo, worktree, &into, before, after)?;
        }
        let branch = RefEdit {
            name: refname,
            old: Some(before),
            new: Some(after),
        };
        match self.record_with(checkpoint, &[branch])? {
            Together::Written(recorded) => Ok(Some(recorded)),
            Together::OtherMoved(_) => {
                if let Some(worktree) = &worktree
                    && let Err(e) = check_out(repo, worktree, &into, after, before)
                {
                    self.coord.warn(format!(
                        "{into} moved meanwhile, and {} could not be put back on it ({e}); `git reset --keep {into}` there does",
                        worktree.path.display()
                    ));
                }
                Ok(None)
            }
        }
    }

    /// The worktree that has `into` checked out, if one has; refused when it has uncommitted
    /// changes, which a fast-forward there would have to carry.
    fn clean_checkout_of(&self, into: &str) -> Result<Option<crate::git::Worktree>> {
        let refname = format!("refs/heads/{into}");
        let checked_out = self
            .coord
            .repo
            .worktrees()?
            .into_iter()
            .find(|w| w.branch.as_deref() == Some(refname.as_str()));
        let Some(worktree) = checked_out else {
            return Ok(None);
        };
        let dirty = run_git(
            &worktree.path,
            &["status", "--porcelain", "--untracked-files=no"],
        )?;
        if !dirty.is_empty() {
            return Err(Error::Other(format!(
                "{into} is checked out in {} with uncommitted changes: commit or stash them there, then run the checkpoint again (nothing was moved)",
                worktree.path.display()
            )));
        }
        Ok(Some(worktree))
    }

    /// Writes the checkpoint under the next number.
    fn record(&self, checkpoint: Checkpoint) -> Result<Checkpoint> {
        match self.record_with(checkpoint, &[])? {
            Together::Written(recorded) => Ok(recorded),
            Together::OtherMoved(name) => Err(Error::Other(format!("{name} moved"))),
        }
    }

    /// Writes the checkpoint under the next number, moving `others` in the same transaction.
    fn record_with(
        &self,
        checkpoint: Checkpoint,
        others: &[RefEdit],
    ) -> Result<Together<Checkpoint>> {
        let actor = self.coord.actor()?;
        self.store.update_together(&actor, others, |snap| {
            let mut c = checkpoint.clone();
            c.seq = self.last_seq(snap)? + 1;
            let change = Change {
                reads: None,
                docs: vec![(Checkpoint::path(c.seq), Some(c.to_yaml().into_bytes()))],
                subject: format!(
                    "checkpoint {} {} into {} by {}",
                    c.seq,
                    c.outcome.as_str(),
                    c.into,
                    actor.agent
                ),
                trailers: std::iter::once(("Coord-Op", "checkpoint".to_string()))
                    .chain(c.tasks.iter().map(|t| ("Coord-Task", t.clone())))
                    .collect(),
            };
            Ok((change, c))
        })
    }

    fn last_seq(&self, snap: &Snapshot) -> Result<u64> {
        let repo = &self.coord.repo;
        let Some(tree) = snap.tree else { return Ok(0) };
        let Some(dir) = repo.lookup_path(tree, "checkpoints")? else {
            return Ok(0);
        };
        Ok(repo
            .tree_entries(dir)?
            .iter()
            .filter(|e| e.is_blob)
            .filter_map(|e| e.name.strip_suffix(".yaml")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0))
    }

    /// Every checkpoint, oldest first, and the documents that do not load.
    pub fn list(&self) -> Result<(Vec<Checkpoint>, Vec<String>)> {
        crate::store::checkpoint_log::list(&self.coord.repo)
    }

    pub fn show(&self, seq: u64) -> Result<Checkpoint> {
        crate::store::checkpoint_log::show(&self.coord.repo, seq)
    }

    /// Goes back on checkpoint `seq` with one new commit on top of its branch, so every commit
    /// stays in the history. With `undo`, the changes checkpoint `seq` brought in are reverted
    /// (merged in memory like a checkpoint: refused on conflicts) and every later commit's are
    /// kept. Without, the branch gets checkpoint `seq`'s content back, undoing every later
    /// checkpoint; refused when commits that no checkpoint made came after it, unless `force`
    /// (their changes are then dropped, and named in the commit and the record).
    pub fn rollback(&self, seq: u64, undo: bool, force: bool) -> Result<Checkpoint> {
        let target = self.show(seq)?;
        let repo = &self.coord.repo;
        let moved = matches!(target.outcome, Outcome::Moved | Outcome::RolledBack);
        let Some(after) = target.after.as_deref().filter(|_| moved) else {
            return Err(Error::invalid(
                "checkpoint",
                seq.to_string(),
                "it did not move the branch, so there is nothing of it to go back to or undo; `git coord checkpoint list` shows those whose outcome is moved",
            ));
        };
        let parse = |hex: &str| {
            Oid::from_hex(hex.as_bytes())
                .map_err(|e| Error::Other(format!("checkpoint {seq}: {e}")))
        };
        let (after, start) = (parse(after)?, parse(&target.before)?);
        // The record is data that may have come from a remote: it may only move this clone's
        // integration branch, and only by states that branch's own history holds.
        let into = Agents::new(self.coord)?.integration_branch()?;
        if target.into != into {
            return Err(Error::Other(format!(
                "checkpoint {seq} is recorded for branch '{}', not the integration branch '{into}': nothing was changed",
                target.into
            )));
        }
        let before = repo
            .resolve_commit(&format!("refs/heads/{into}"))?
            .ok_or_else(|| {
                Error::invalid("branch", &into, "the integration branch no longer exists")
            })?;
        let forged = |oid: Oid| {
            Error::Other(format!(
                "checkpoint {seq} names {oid}, which {into} never held: its record may be forged or come from another history; nothing was changed (`git log {into}` shows the states it can go back to)"
            ))
        };
        if !repo.has_commit(after)? || !repo.is_ancestor(after, before)? {
            return Err(forged(after));
        }
        if undo && (!repo.has_commit(start)? || !repo.is_ancestor(start, after)?) {
            return Err(forged(start));
        }
        let current_tree = repo.commit_tree(before)?;
        let (tree, message, dropped) = if undo {
            let tree = match repo.merge_on_base(after, before, start)? {
                TreeMerge::Clean(tree) => tree,
                TreeMerge::Conflicted(paths) => {
                    return Err(Error::Refused {
                        why: format!(
                            "undoing checkpoint {seq} conflicts with what {into} holds now, in {}: commits made since change the same lines; nothing was changed",
                            paths.join(", ")
                        ),
                        hint: format!(
                            "undo it by hand in a checkout of {into}: `git diff {after} {start} | git apply --3way`, resolve, commit"
                        ),
                    });
                }
            };
            if tree == current_tree {
                return Err(Error::invalid(
                    "checkpoint",
                    seq.to_string(),
                    format!("none of its changes is left in {into}: there is nothing to undo"),
                ));
            }
            let message = format!(
                "checkpoint: undo checkpoint {seq} on {into}\n\nReverts the changes checkpoint {seq} brought in ({}..{}); every later commit and its changes stay.",
                &start.to_string()[..12],
                &after.to_string()[..12]
            );
            (tree, message, Vec::new())
        } else {
            let tree = repo.commit_tree(after)?;
            if tree == current_tree {
                return Err(Error::invalid(
                    "checkpoint",
                    seq.to_string(),
                    format!(
                        "{into} already holds the state after it; to undo checkpoint {seq} itself, run `git coord checkpoint rollback --undo {seq}`"
                    ),
                ));
            }
            let (dropped, later) = self.made_since(&into, after, before)?;
            if !dropped.is_empty() && !force {
                let mut why = format!(
                    "rolling {into} back to checkpoint {seq} would drop the changes of {} commit(s) made on it since, which no checkpoint made; nothing was changed:",
                    dropped.len()
                );
                for c in &dropped {
                    why.push_str(&format!("\n  {} {}", &c.commit[..12], c.subject));
                }
                let keep = match later.as_slice() {
                    [] => String::new(),
                    seqs => format!(
                        "to keep them, undo the later checkpoints instead, newest first ({}); ",
                        seqs.iter()
                            .map(|n| format!("`git coord checkpoint rollback --undo {n}`"))
                            .collect::<Vec<_>>()
                            .join(", then ")
                    ),
                };
                return Err(Error::Refused {
                    why,
                    hint: format!(
                        "{keep}to drop them, `git coord checkpoint rollback {seq} --force`"
                    ),
                });
            }
            let mut message = format!(
                "checkpoint: roll {into} back to checkpoint {seq}\n\nThe content of {after}; every later commit stays in the history."
            );
            if !dropped.is_empty() {
                message.push_str(&format!(
                    "\n\nWith --force, the changes of these commits, made on {into} after checkpoint {seq} by no checkpoint, are dropped:\n"
                ));
                for c in &dropped {
                    message.push_str(&format!("- {} {}\n", &c.commit[..12], c.subject));
                }
            }
            (tree, message, dropped)
        };
        let commit = repo.commit_tree_as_user(tree, &[before], &message)?;
        // One transaction, from the tip read above: interrupted, the branch and the record are
        // either both as they were or both new.
        let actor = self.coord.actor()?;
        let record = Checkpoint {
            format: CHECKPOINT_FORMAT,
            seq: 0,
            into: into.clone(),
            outcome: Outcome::RolledBack,
            before: before.to_string(),
            after: Some(commit.to_string()),
            merged: Vec::new(),
            conflicts: Vec::new(),
            lease_refusals: Vec::new(),
            tasks: Vec::new(),
            gates: Vec::new(),
            rollback_of: Some(seq),
            undo,
            dropped,
            at: time::now(),
            by: actor.agent,
            extra: Default::default(),
        };
        self.move_and_record(record, commit, before)?
            .ok_or_else(|| {
                Error::Other(format!(
                    "{into} moved meanwhile: nothing was changed; run the rollback again"
                ))
            })
    }

    /// What was done on `into` since `since` (its first-parent line from `tip`): the commits no
    /// checkpoint made, newest first, and the later checkpoints that moved it, newest first. A
    /// commit is a checkpoint's when it lies between the `before` and `after` of a checkpoint
    /// that moved `into` and says so in its subject (a record alone, which may come from a
    /// remote, never hides a commit).
    fn made_since(&self, into: &str, since: Oid, tip: Oid) -> Result<(Vec<CommitRef>, Vec<u64>)> {
        let repo = &self.coord.repo;
        let chain = repo.first_parent_commits(tip, since)?;
        let (records, _) = self.list()?;
        // Each checkpoint's `after`, with its `before` and number.
        let mut ranges = std::collections::HashMap::new();
        for r in records
            .iter()
            .filter(|r| r.into == into && matches!(r.outcome, Outcome::Moved | Outcome::RolledBack))
        {
            if let (Some(after), Ok(before)) = (
                r.after
                    .as_deref()
                    .and_then(|a| Oid::from_hex(a.as_bytes()).ok()),
                Oid::from_hex(r.before.as_bytes()),
            ) {
                ranges.insert(after, (before, r.seq));
            }
        }
        let mut foreign = Vec::new();
        let mut later = Vec::new();
        // The `before` of the checkpoint whose commits the walk is in, if it is in one.
        let mut inside: Option<Oid> = None;
        for commit in chain {
            if inside == Some(commit) {
                inside = None;
            }
            if let Some((before, n)) = ranges.get(&commit) {
                inside = Some(*before);
                later.push(*n);
            }
            let message = repo.commit_message(commit)?;
            let subject = message.lines().next().unwrap_or_default().to_string();
            if inside.is_none() || !subject.starts_with("checkpoint: ") {
                foreign.push(CommitRef {
                    commit: commit.to_string(),
                    subject,
                });
            }
        }
        Ok((foreign, later))
    }

    /// What `agent`'s branch at `tip` would change, merged into `current`, on paths another
    /// agent holds an exclusive lease on: each such path with its lease and the commits of the
    /// branch that change it (newest first, at most [`BREACH_COMMITS`]; the holder's own commits,
    /// merged into this branch, aside). A path only the holder's commits change is no breach.
    fn lease_breaches(
        &self,
        leases: &Leases,
        agent: &str,
        current: Oid,
        tip: Oid,
    ) -> Result<Vec<LeaseBreach>> {
        let repo = &self.coord.repo;
        let Some(base) = repo.merge_base(current, tip)? else {
            return Ok(Vec::new()); // unrelated histories: the merge itself refuses
        };
        let paths = repo.changed_paths(base, tip)?;
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let mut breaches = Vec::new();
        for conflict in leases.check(agent, &paths)? {
            let by_holder = |message: &str| {
                message.lines().any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| {
                        k.trim() == "Coord-Agent" && v.trim() == conflict.holder
                    })
                })
            };
            let changing = repo.commits_changing(tip, current, &conflict.path)?;
            let mut offenders = Vec::new();
            for commit in &changing {
                let message = repo.commit_message(*commit)?;
                if !by_holder(&message) {
                    offenders.push((*commit, message));
                }
                if offenders.len() == BREACH_COMMITS {
                    break;
                }
            }
            if offenders.is_empty() {
                if !changing.is_empty() {
                    continue;
                }
                // Only a merge changes it: name the branch's tip.
                offenders.push((tip, repo.commit_message(tip)?));
            }
            for (commit, message) in offenders {
                breaches.push(LeaseBreach {
                    path: conflict.path.clone(),
                    holder: conflict.holder.clone(),
                    lease: conflict.lease_id.clone(),
                    pattern: conflict.pattern.clone(),
                    until: conflict.expires.clone(),
                    commit: commit.to_string(),
                    subject: message.lines().next().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(breaches)
    }

    /// Tells the agent whose branch was left out for leases which paths, leases and commits, and
    /// what to do; once for the same branch tip while the message is unread.
    /// Tells the agent of a merged branch that the gates failed on the merge: the code that
    /// failed is its (or its and the others' merged with it), so it hears it, not only the
    /// organiser. A message in its inbox, pushed at once with a remote.
    fn tell_gate_failure(
        &self,
        checkpoint: &Checkpoint,
        m: &MergedBranch,
        into: &str,
    ) -> Result<()> {
        let Some(failed) = checkpoint.gates.iter().find(|g| !g.passed) else {
            return Ok(());
        };
        let others: Vec<&str> = checkpoint
            .merged
            .iter()
            .filter(|o| o.agent != m.agent)
            .map(|o| o.branch.as_str())
            .collect();
        let with = match others.as_slice() {
            [] => String::new(),
            branches => format!(" together with {}", branches.join(", ")),
        };
        let code = failed
            .exit_code
            .map_or_else(|| "no exit code".to_string(), |c| format!("exit {c}"));
        let subject = format!(
            "Checkpoint {}: gate `{}` failed on your branch",
            checkpoint.seq, failed.command
        );
        let body = format!(
            "Checkpoint {} merged {} ({}){with} into {into} in memory and ran the gates: `{}` failed ({code}), so {into} did not move. Its last lines:\n\n{}\n\nFix it on your branch and commit; the next checkpoint merges it again.",
            checkpoint.seq,
            m.branch,
            &m.commit[..m.commit.len().min(12)],
            failed.command,
            failed.output_tail
        );
        let key = format!("gate-failed:{}:{}:{}", checkpoint.seq, m.agent, m.commit);
        crate::ops::notices::deliver(
            self.coord,
            &key,
            &m.agent,
            &subject,
            &body,
            crate::ops::messages::NoticeAbout::Nothing,
            &checkpoint.at,
        )?;
        crate::ops::online::push_inbox(self.coord);
        Ok(())
    }

    fn tell_lease_refusal(&self, refusal: &LeaseRefusal, into: &str) -> Result<()> {
        let messages = Messages::new(self.coord);
        let subject = format!(
            "Checkpoint left {} ({}) out: it changes paths leased to other agents",
            refusal.branch,
            &refusal.commit[..12]
        );
        let inbox = messages.inbox(&refusal.agent, &InboxFilter::default())?;
        if inbox
            .messages
            .iter()
            .any(|i| !i.read && i.message.subject == subject)
        {
            return Ok(());
        }
        let mut body = format!(
            "The checkpoint into {into} left {} out: it changes paths another agent holds an exclusive lease on (a commit made with the git hooks off is checked here too).\n",
            refusal.branch
        );
        for b in &refusal.breaches {
            body.push_str(&format!(
                "- {}: leased to {} until {} (lease {}, pattern '{}'); changed by {} \"{}\"\n",
                b.path,
                b.holder,
                b.until,
                b.lease,
                b.pattern,
                &b.commit[..12],
                clip(&b.subject, 100)
            ));
        }
        body.push_str(&format!(
            "\nTake those changes out of your branch (`git checkout $(git merge-base HEAD {into}) -- PATH`, then commit), or ask the holder to release the lease, or wait until it expires. The next checkpoint takes your branch once it changes no path leased to another agent."
        ));
        messages.send_here(Outgoing {
            target: refusal.agent.clone(),
            subject: Some(subject),
            importance: Importance::High,
            body,
            ..Outgoing::default()
        })?;
        Ok(())
    }

    /// A task for the agent whose branch conflicts, with the paths and both sides' diffs, and a
    /// message on its thread. An open one for the same branch is reused.
    fn open_resolve_task(
        &self,
        conflict: &ConflictedBranch,
        into: &str,
        diffs: &[ConflictDiff],
    ) -> Result<String> {
        let tasks = Tasks::new(self.coord);
        let title = format!("Resolve conflicts merging {} into {into}", conflict.branch);
        let index = tasks.load_index()?;
        if let Some(existing) = index
            .tasks()
            .find(|t| t.title() == title && t.state() != State::Done)
        {
            return Ok(existing.id().to_string());
        }
        let mut description = format!(
            "A checkpoint could not merge {} ({}) into {into}: both changed the same lines.\n\nConflicting paths:\n",
            conflict.branch,
            &conflict.commit[..12]
        );
        for p in &conflict.paths {
            description.push_str(&format!("- {p}\n"));
        }
        description.push_str(&format!(
            "\nSteps: in your worktree, `git merge {into}`, resolve, commit; then `git coord task done ID`.\n\nAcceptance criteria:\n- {into} merges into {} without conflicts\n",
            conflict.branch
        ));
        for d in diffs.iter().filter(|d| d.agent == conflict.agent) {
            description.push_str(&format!(
                "\n{} on {into}:\n{}\n{} on {}:\n{}\n",
                d.path,
                clip(&d.integration, 2000),
                d.path,
                conflict.branch,
                clip(&d.branch, 2000)
            ));
        }
        let role = Agents::new(self.coord)?
            .show(&conflict.agent)
            .ok()
            .map(|v| v.agent.role);
        let task = tasks.create(NewTask {
            title,
            description,
            priority: Some(1),
            kind: Some(Kind::Bug),
            role,
            labels: vec!["merge-conflict".into()],
            ..NewTask::default()
        })?;
        tasks.assign(&task.id, &conflict.agent)?;
        Messages::new(self.coord).send_here(Outgoing {
            target: format!("#{}", task.id),
            subject: Some(format!("Your branch {} conflicts with {into}", conflict.branch)),
            importance: Importance::High,
            body: format!(
                "The checkpoint left {} out: conflicts in {}. Task {} is yours: merge {into} into your branch, resolve, commit, then `git coord task done {}`.",
                conflict.branch,
                conflict.paths.join(", "),
                task.id,
                task.id
            ),
            ..Outgoing::default()
        })?;
        Ok(task.id)
    }

    /// Marks done the workflow tasks that wait for a checkpoint whose stage is now done.
    /// Returns the stages left open because they have no code to merge, each with what the
    /// organiser was told.
    fn finish_checkpoint_tasks(&self, checkpoint: &Checkpoint) -> Result<Vec<String>> {
        let repo = &self.coord.repo;
        let tasks = Tasks::new(self.coord);
        let agents = Agents::new(self.coord)?;
        let index = tasks.load_index()?;
        let mut open_stages = Vec::new();
        let Some(integrated) = repo.resolve_commit(&format!("refs/heads/{}", checkpoint.into))?
        else {
            return Ok(open_stages);
        };
        let mut due = Vec::new();
        for t in crate::ops::tasks::ready_tasks(&index, None) {
            if !t.labels().any(|l| l == CHECKPOINT_LABEL) {
                continue;
            }
            // Due only when the work of the stage it follows is in the integration branch: the
            // branch of whoever did that stage is merged (or the stage left no branch).
            let mut in_branch = true;
            let mut without_code = Vec::new();
            for stage in t.deps().filter_map(|d| index.get(d)) {
                let no_code = stage
                    .labels()
                    .any(|l| l == crate::ops::workflows::NO_CODE_LABEL);
                let Some(agent) = stage.assignee() else {
                    continue;
                };
                let Some(registered) = agents.get(agent)? else {
                    continue;
                };
                let Some(branch) = registered
                    .branch
                    .as_ref()
                    .map(|_| Agent::branch_for(&registered.name))
                else {
                    continue;
                };
                if let Some(tip) = repo.resolve_commit(&format!("refs/heads/{branch}"))? {
                    in_branch &= repo.is_ancestor(tip, integrated)?;
                    // A stage that should produce code passes only once its code is merged.
                    if !no_code
                        && !crate::ops::workflows::stage_produced_code(
                            self.coord,
                            stage.id(),
                            &registered,
                            tip,
                        )?
                    {
                        without_code.push((stage.id().to_string(), agent.to_string()));
                    }
                }
            }
            if !without_code.is_empty() {
                for (stage, agent) in without_code {
                    open_stages.push(crate::ops::workflows::no_code_to_merge(
                        self.coord,
                        checkpoint,
                        t.id(),
                        &stage,
                        &agent,
                    ));
                }
            } else if in_branch {
                due.push(t.id().to_string());
            }
        }
        for id in due {
            let summary = format!(
                "checkpoint {}: {} ({} merged)",
                checkpoint.seq,
                checkpoint.outcome.as_str(),
                checkpoint.merged.len()
            );
            crate::ops::work::done(&tasks, &id, Some(summary), true)?;
        }
        Ok(open_stages)
    }

    /// Brings an agent's branch up to the integration branch when its worktree has no local
    /// changes: a fast-forward when it can, else a merge (abandoned on conflicts). Says what it did.
    pub fn refresh(&self, agent: &str) -> Result<String> {
        let agents = Agents::new(self.coord)?;
        let a = agents.show(agent)?.agent;
        let into = agents.integration_branch()?;
        let Some(worktree) = agents.own_worktree(&a)? else {
            return Ok("no worktree on this machine: left as it is".into());
        };
        // Untracked files (attachments saved with `read --save-attachments`, notes) do not stop
        // a refresh: git itself refuses a merge that would overwrite one, and that is reported.
        let dirty = run_git(
            &worktree,
            &["status", "--porcelain", "--untracked-files=no"],
        )?;
        if !dirty.is_empty() {
            return Ok("uncommitted changes in its worktree: left as it is".into());
        }
        let repo = &self.coord.repo;
        let (Some(target), Some(head)) = (
            repo.resolve_commit(&format!("refs/heads/{into}"))?,
            repo.resolve_commit(&format!("refs/heads/{}", Agent::branch_for(&a.name)))?,
        ) else {
            return Ok("no branch: left as it is".into());
        };
        if repo.is_ancestor(target, head)? {
            return Ok(format!("already contains {into}"));
        }
        let short = &target.to_string()[..12];
        if repo.is_ancestor(head, target)? {
            if probe_git(
                &worktree,
                &["merge", "--ff-only", "--quiet", &target.to_string()],
            )?
            .is_none()
            {
                return Ok(format!(
                    "untracked files in its worktree would be overwritten by {into}: left as it is; move them away and refresh again"
                ));
            }
            return Ok(format!("fast-forwarded to {into} ({short})"));
        }
        let message = format!("Merge {into} into {}", Agent::branch_for(&a.name));
        if probe_git(
            &worktree,
            &[
                "merge",
                "--no-edit",
                "--quiet",
                "-m",
                &message,
                &target.to_string(),
            ],
        )?
        .is_some()
        {
            return Ok(format!("merged {into} ({short})"));
        }
        let _ = probe_git(&worktree, &["merge", "--abort"]);
        Ok(format!(
            "merging {into} conflicts: left as it was; merge it by hand"
        ))
    }
}

/// Removes the gate worktrees that killed checkpoints left behind. Each is named
/// `<commit>-<pid>` after the checkpoint process that made it: one whose process no longer runs
/// is stale; one whose process runs (a checkpoint in progress) is kept. They are found both in
/// the gates directory and among the registered worktrees: a checkpoint killed inside `git
/// worktree add` leaves a registration locked "initializing" whose directory may be gone, which
/// `git worktree prune` does not remove while it is locked.
fn remove_stale_gates(repo: &crate::git::Repo) {
    let gates = repo.common_dir().join("coord").join("gates");
    let mut found: Vec<PathBuf> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&gates) {
        // Only real directories: never follow a link out of the gates directory.
        found.extend(
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    let gates_real = gates.canonicalize().ok();
    let is_gate = |path: &Path| {
        let parent = path.parent();
        parent == Some(gates.as_path())
            || (gates_real.is_some() && parent.and_then(|p| p.canonicalize().ok()) == gates_real)
    };
    for worktree in repo.worktrees().unwrap_or_default() {
        if is_gate(&worktree.path)
            && !found
                .iter()
                .any(|f| f.file_name() == worktree.path.file_name())
        {
            found.push(worktree.path);
        }
    }
    let mut removed = false;
    for path in found {
        // `<commit>-<pid>.<start>`, or `<commit>-<pid>` as older versions named them (which
        // leave the newer names alone: `<pid>.<start>` is no pid to them).
        let Some((_, process)) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit_once('-'))
        else {
            continue;
        };
        let running = match process.split_once('.') {
            Some((pid, start)) => match (pid.parse(), start.parse()) {
                (Ok(pid), Ok(start)) => crate::ops::launch::ProcessIdentity { pid, start }.alive(),
                _ => continue,
            },
            None => match process.parse::<i32>() {
                Ok(pid) => pid == std::process::id() as i32 || crate::ops::launch::alive(pid),
                Err(_) => continue,
            },
        };
        if running {
            continue;
        }
        let shown = path.display().to_string();
        let _ = repo.git(&["worktree", "unlock", &shown]);
        let _ = repo.git(&["worktree", "remove", "--force", "--force", &shown]);
        // Only what lies in the gates directory itself is removed by hand.
        if path.parent() == Some(gates.as_path()) {
            let _ = std::fs::remove_dir_all(&path);
        }
        removed = true;
    }
    if removed {
        let _ = repo.git(&["worktree", "prune"]);
    }
}

fn run_each(
    dir: &Path,
    gates: &[String],
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<GateResult>> {
    let mut results = Vec::new();
    for (n, gate) in gates.iter().enumerate() {
        progress(&format!("gate {}/{}: {gate}", n + 1, gates.len()));
        let started = Instant::now();
        let out = std::process::Command::new("sh")
            .args(["-c", gate])
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::Other(format!("cannot run gate '{gate}': {e}")))?;
        let seconds = started.elapsed().as_secs_f64();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(OUTPUT_TAIL_LINES)..].join("\n");
        let passed = out.status.success();
        progress(&format!(
            "gate {}/{}: {} in {seconds:.1}s",
            n + 1,
            gates.len(),
            if passed { "passed" } else { "FAILED" }
        ));
        results.push(GateResult {
            command: gate.clone(),
            passed,
            exit_code: out.status.code(),
            seconds: (seconds * 10.0).round() / 10.0,
            output_tail: tail,
        });
        if !passed {
            break;
        }
    }
    Ok(results)
}

/// Brings `worktree`, which has `into` checked out at `from`, to `to`: its index and files, as
/// `git merge --ff-only` would (a two-tree `git read-tree -m -u`, refused when it would overwrite
/// an untracked file), leaving the branch itself to the caller's transaction.
fn check_out(
    repo: &crate::git::Repo,
    worktree: &crate::git::Worktree,
    into: &str,
    from: Oid,
    to: Oid,
) -> Result<()> {
    let (from_hex, to_hex) = (from.to_string(), to.to_string());
    let out = crate::git::run_git_with_env(
        &worktree.path,
        &["read-tree", "-m", "-u", &from_hex, &to_hex],
        &[],
    )?;
    if out.success {
        return Ok(());
    }
    let mut why = match out.failure() {
        w if w.is_empty() => "git read-tree -m -u failed".to_string(),
        w => w,
    };
    if why.to_lowercase().contains("untracked") {
        // read-tree names the first such file; name them all, as `git merge` does.
        let mut args = vec!["ls-files", "-z", "--others", "--exclude-standard", "--"];
        let changed = repo.changed_paths(from, to)?;
        args.extend(changed.iter().map(String::as_str));
        let listed = run_git(&worktree.path, &args)?;
        let in_the_way: Vec<&str> = listed.split('\0').filter(|p| !p.is_empty()).collect();
        if !in_the_way.is_empty() {
            why = format!(
                "The following untracked working tree files would be overwritten by merge: {}",
                in_the_way.join(", ")
            );
        }
    }
    let fix = if why.contains("untracked") {
        "move or remove those files there, then run it again"
    } else {
        "fix that there, then run it again"
    };
    Err(Error::Other(format!(
        "cannot fast-forward {into} in {}: {why}; nothing was moved: {fix}",
        worktree.path.display(),
    )))
}
