//! Lease operations: acquire, renew and release leases on paths, list them, and check paths
//! against the leases of other agents. Each write re-checks for conflicts on the snapshot it
//! commits on, so two overlapping exclusive leases can never both be granted.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;

use crate::error::{Error, Result};
use crate::model::lease::{
    LEASE_FORMAT, Lease, MAX_PATTERNS, MAX_REASON, MAX_TTL, Mode, Pattern, PatternSet, Status,
};
use crate::model::{MAX_DOCUMENT_BYTES, id, time};
use crate::ops::context::Coord;
use crate::store::Problem;
use crate::store::{Actor, Change, Snapshot, Store};

pub use crate::model::lease::LeaseConflict;

pub use crate::store::LEASES_REF;
/// How long a released or expired lease stays in the tree (for `lease list --all`) before the
/// next lease write drops it.
pub const KEEP_ENDED: Duration = Duration::from_secs(24 * 60 * 60);

/// A lease with where it stands now.
#[derive(Debug, Clone)]
pub struct LeaseView {
    pub lease: Lease,
    pub status: Status,
}

/// Every lease document of a snapshot: the ones that load, and the ones that do not.
struct Loaded {
    leases: Vec<Lease>,
    /// Documents that could not be loaded, with the error that says why.
    broken: Vec<(String, Error)>,
}

pub struct Leases<'c> {
    coord: &'c Coord,
    store: Store<'c>,
}

impl<'c> Leases<'c> {
    pub fn new(coord: &'c Coord) -> Self {
        Leases {
            coord,
            store: Store::new(&coord.repo, LEASES_REF),
        }
    }

    /// Takes a lease on `patterns` for `ttl`, for the acting agent. Refused with
    /// [`Error::LeaseConflict`] when another agent's active lease overlaps it and either is
    /// exclusive.
    pub fn acquire(
        &self,
        patterns: &[String],
        ttl: Duration,
        shared: bool,
        task: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Lease> {
        let actor = self.coord.actor()?;
        let patterns = self.parse_patterns(patterns)?;
        let ttl = check_ttl(ttl)?;
        let reason = check_reason(reason)?;
        let task = task
            .map(|t| crate::store::task_ids::resolve_now(&self.coord.repo, t))
            .transpose()?;
        let mine = PatternSet::new(&patterns)?;
        let mode = if shared {
            Mode::Shared
        } else {
            Mode::Exclusive
        };
        let mut existing = None;
        crate::ops::online::update(self.coord, &self.store, &actor, |snap| {
            let now = Timestamp::now();
            let loaded = self.load_all(snap)?;
            let wanted = Wanted {
                agent: &actor.agent,
                mode,
                patterns: &patterns,
                set: &mine,
                except: None,
            };
            let conflicts = self.conflicts(&wanted, &loaded.leases, now, &mut existing)?;
            if !conflicts.is_empty() {
                return Err(Error::LeaseConflict(conflicts));
            }
            let id = fresh_id(&loaded);
            let lease = Lease {
                format: LEASE_FORMAT,
                id: id.clone(),
                agent: actor.agent.clone(),
                human: actor.human.clone(),
                patterns: patterns.iter().map(|p| p.text.clone()).collect(),
                mode,
                task: task.clone(),
                reason: reason.clone(),
                acquired: time::format_timestamp(now),
                expires: expiry(now, ttl)?,
                released: None,
                revoked_by: None,
                extra: Default::default(),
            };
            let mut change = write_change("acquire", &[&lease], &actor);
            prune(&loaded.leases, now, &mut change);
            Ok((change, lease))
        })
    }

    /// Moves the expiry of one of the acting agent's leases to `ttl` from now. An active lease is
    /// always renewed; an expired one only if nothing another agent took meanwhile overlaps it.
    pub fn renew(&self, input: &str, ttl: Duration) -> Result<Lease> {
        let actor = self.coord.actor()?;
        let prefix = id::parse_prefix(input)?;
        let ttl = check_ttl(ttl)?;
        let mut existing = None;
        self.store.update(&actor, |snap| {
            let now = Timestamp::now();
            let mut loaded = self.load_all(snap)?;
            let mut lease = resolve(&mut loaded, &prefix)?;
            if let Some(at) = &lease.released {
                return Err(Error::LeaseReleased {
                    id: lease.id.clone(),
                    at: at.clone(),
                });
            }
            if lease.agent != actor.agent {
                return Err(Error::LeaseHeldByOther {
                    id: lease.id.clone(),
                    holder: lease.agent.clone(),
                });
            }
            if !lease.is_active(now) {
                // An expired lease is taken again: check it like a new one.
                let patterns = lease.parsed_patterns()?;
                let set = PatternSet::new(&patterns)?;
                let wanted = Wanted {
                    agent: &actor.agent,
                    mode: lease.mode,
                    patterns: &patterns,
                    set: &set,
                    except: Some(&lease.id),
                };
                let conflicts = self.conflicts(&wanted, &loaded.leases, now, &mut existing)?;
                if !conflicts.is_empty() {
                    return Err(Error::LeaseConflict(conflicts));
                }
            }
            lease.expires = expiry(now, ttl)?;
            let mut change = write_change("renew", &[&lease], &actor);
            prune(&loaded.leases, now, &mut change);
            Ok((change, lease))
        })
    }

    /// Releases one lease: the acting agent's, or anyone's with `force`. Releasing a released
    /// lease changes nothing.
    pub fn release(&self, input: &str, force: bool) -> Result<Lease> {
        let actor = self.coord.actor()?;
        let prefix = id::parse_prefix(input)?;
        self.store.update(&actor, |snap| {
            let mut loaded = self.load_all(snap)?;
            let lease = resolve(&mut loaded, &prefix)?;
            if lease.released.is_some() {
                return Ok((Change::default(), lease));
            }
            if lease.agent != actor.agent && !force {
                return Err(Error::LeaseHeldByOther {
                    id: lease.id.clone(),
                    holder: lease.agent.clone(),
                });
            }
            let (change, mut released) =
                self.release_matching(&loaded, &actor, |l| l.id == lease.id)?;
            Ok((change, released.remove(0)))
        })
    }

    /// Releases every lease the acting agent holds (expired ones included). Returns them.
    pub fn release_all(&self) -> Result<Vec<Lease>> {
        let actor = self.coord.actor()?;
        self.store.update(&actor, |snap| {
            let loaded = self.load_all(snap)?;
            self.release_matching(&loaded, &actor, |l| l.agent == actor.agent)
        })
    }

    /// Releases every lease taken for `task_id` (a full task id, as stored in the lease), whoever
    /// holds it: the task is finished. Returns them; none is not an error and writes nothing.
    pub fn release_for_task(&self, task_id: &str) -> Result<Vec<Lease>> {
        let actor = self.coord.actor()?;
        self.store.update(&actor, |snap| {
            let loaded = self.load_all(snap)?;
            self.release_matching(&loaded, &actor, |l| l.task.as_deref() == Some(task_id))
        })
    }

    /// Releases every lease taken for one of `task_ids` (`None`: every lease), whoever holds
    /// it, in one commit. Returns them.
    pub fn release_for_tasks(&self, task_ids: Option<&[String]>) -> Result<Vec<Lease>> {
        let actor = self.coord.actor()?;
        self.store
            .update(&actor, |snap| self.release_change(snap, &actor, task_ids))
    }

    /// The change of refs/coord/leases that releases, in `snap`, every lease taken for one of
    /// `task_ids` (`None`: every lease), for a write of its own or one with other refs.
    pub fn release_change(
        &self,
        snap: &Snapshot,
        actor: &Actor,
        task_ids: Option<&[String]>,
    ) -> Result<(Change, Vec<Lease>)> {
        let loaded = self.load_all(snap)?;
        self.release_matching(&loaded, actor, |l| match task_ids {
            None => true,
            Some(ids) => l.task.as_ref().is_some_and(|t| ids.contains(t)),
        })
    }

    /// Passes `holder`'s active leases taken for `task_id` to the acting agent, which has just
    /// taken the task over: one write, confirmed at the remote when one is configured, whose
    /// commit (`Coord-Op: takeover`) records it. Returns the leases as they are now.
    pub fn pass_for_task(&self, task_id: &str, holder: &str) -> Result<Vec<Lease>> {
        let actor = self.coord.actor()?;
        crate::ops::online::update(self.coord, &self.store, &actor, |snap| {
            let now = Timestamp::now();
            let loaded = self.load_all(snap)?;
            let passed: Vec<Lease> = loaded
                .leases
                .iter()
                .filter(|l| {
                    l.agent == holder && l.task.as_deref() == Some(task_id) && l.is_active(now)
                })
                .map(|l| Lease {
                    agent: actor.agent.clone(),
                    human: actor.human.clone(),
                    ..l.clone()
                })
                .collect();
            if passed.is_empty() {
                return Ok((Change::default(), passed));
            }
            let mut change = write_change("takeover", &passed.iter().collect::<Vec<_>>(), &actor);
            change.subject = format!("{} (from {holder})", change.subject);
            prune(&loaded.leases, now, &mut change);
            Ok((change, passed))
        })
    }

    /// The active leases, or with `all` every lease still in the tree (expired ones, and released
    /// ones for a day), oldest first; and the documents that could not be loaded.
    pub fn list(&self, all: bool) -> Result<(Vec<LeaseView>, Vec<Problem>)> {
        let loaded = self.load_all(&self.store.snapshot()?)?;
        let now = Timestamp::now();
        let mut views: Vec<LeaseView> = loaded
            .leases
            .into_iter()
            .map(|lease| LeaseView {
                status: lease.status(now),
                lease,
            })
            .filter(|v| all || v.status == Status::Active)
            .collect();
        views.sort_by(|a, b| {
            (&a.lease.acquired, &a.lease.id).cmp(&(&b.lease.acquired, &b.lease.id))
        });
        let problems = loaded
            .broken
            .into_iter()
            .map(|(path, err)| Problem {
                path,
                why: problem_reason(&err),
            })
            .collect();
        Ok((views, problems))
    }

    /// Which of `paths` (relative to the repository root) `agent` may not touch: each path
    /// covered by another agent's active exclusive lease, once per such lease. A path also
    /// conflicts with a lease whose pattern, read as a path, lies under it (`src/` and a lease on
    /// `src/main.rs`). Empty when the agent may touch them all.
    pub fn check(&self, agent: &str, paths: &[String]) -> Result<Vec<LeaseConflict>> {
        let checked = paths
            .iter()
            .map(|p| Pattern::literal(p))
            .collect::<Result<Vec<_>>>()?;
        let loaded = self.load_all(&self.store.snapshot()?)?;
        let now = Timestamp::now();
        let held = Held::new(
            loaded
                .leases
                .iter()
                .filter(|l| l.agent != agent && l.mode == Mode::Exclusive && l.is_active(now)),
        )?;
        if held.leases.is_empty() || checked.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: BTreeMap<(usize, usize), LeaseConflict> = BTreeMap::new();
        for (n, path) in checked.iter().enumerate() {
            for (l, pattern) in held.covering(&path.path, path.dir_only) {
                found
                    .entry((n, l))
                    .or_insert_with(|| conflict(&paths[n], held.leases[l], pattern));
            }
        }
        let as_paths = PatternSet::literal(&checked)?;
        for (l, pattern) in &held.patterns {
            for n in as_paths.matches(&pattern.path, true) {
                found
                    .entry((n, *l))
                    .or_insert_with(|| conflict(&paths[n], held.leases[*l], pattern));
            }
        }
        self.bound_by_task(agent, found.into_values().collect(), &loaded.leases)
    }

    /// The other agents' active leases that may not overlap `wanted`, and a witness of each
    /// overlap: a pattern of one side read as a path and covered by the other, or a path that
    /// exists and is covered by both.
    fn conflicts(
        &self,
        wanted: &Wanted,
        leases: &[Lease],
        now: Timestamp,
        existing: &mut Option<Vec<String>>,
    ) -> Result<Vec<LeaseConflict>> {
        let Wanted {
            agent,
            mode,
            patterns: mine,
            set: mine_set,
            except,
        } = *wanted;
        let held = Held::new(leases.iter().filter(|l| {
            l.agent != agent
                && !mode.compatible(l.mode)
                && Some(l.id.as_str()) != except
                && l.is_active(now)
        }))?;
        if held.leases.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: BTreeMap<usize, LeaseConflict> = BTreeMap::new();
        for pattern in mine {
            for (l, theirs) in held.covering(&pattern.path, true) {
                found
                    .entry(l)
                    .or_insert_with(|| conflict(&pattern.path, held.leases[l], theirs));
            }
        }
        for (l, theirs) in &held.patterns {
            if !found.contains_key(l) && mine_set.is_match(&theirs.path, true) {
                found.insert(*l, conflict(&theirs.path, held.leases[*l], theirs));
            }
        }
        if found.len() < held.leases.len() {
            // Listing the paths costs a git process: only when the patterns did not settle it,
            // and once per command however many retries.
            if existing.is_none() {
                *existing = Some(self.coord.repo.existing_paths()?);
            }
            for path in existing.iter().flatten() {
                if !mine_set.is_match(path, false) {
                    continue;
                }
                for (l, theirs) in held.covering(path, false) {
                    found
                        .entry(l)
                        .or_insert_with(|| conflict(path, held.leases[l], theirs));
                }
                if found.len() == held.leases.len() {
                    break;
                }
            }
        }
        self.bound_by_task(agent, found.into_values().collect(), leases)
    }

    /// `conflicts` without those whose lease follows a task that ended or passed: a lease taken
    /// for a task ends when the task is done, and binds whoever holds the task now. The write
    /// that finishes or takes over a task is, for its leases, the whole operation: the lease
    /// writes after it (release, pass) only tidy up, and a command killed between them leaves
    /// no lease in anyone's way. Reads the tasks of the conflicting leases only.
    fn bound_by_task(
        &self,
        agent: &str,
        conflicts: Vec<LeaseConflict>,
        leases: &[Lease],
    ) -> Result<Vec<LeaseConflict>> {
        let bound: Vec<(&str, &str)> = conflicts
            .iter()
            .filter_map(|c| {
                let lease = leases.iter().find(|l| l.id == c.lease_id)?;
                Some((lease.id.as_str(), lease.task.as_deref()?))
            })
            .collect();
        if bound.is_empty() {
            return Ok(conflicts);
        }
        let tasks = Store::new(&self.coord.repo, crate::store::TASKS_REF);
        let snap = tasks.snapshot()?;
        let mut ended = std::collections::BTreeSet::new();
        for (lease, task) in bound {
            let path = crate::model::task::Task::path(task);
            let Some(bytes) = tasks.read(&snap, &path).ok().flatten() else {
                continue; // not here (yet): the lease holds as written
            };
            let Ok(t) = crate::model::task::Task::from_yaml(&bytes, crate::store::TASKS_REF, &path)
            else {
                continue;
            };
            let passed = t.state == crate::model::task::State::Claimed
                && t.assignee.as_deref() == Some(agent);
            if t.state == crate::model::task::State::Done || passed {
                ended.insert(lease);
            }
        }
        Ok(conflicts
            .into_iter()
            .filter(|c| !ended.contains(c.lease_id.as_str()))
            .collect())
    }

    /// Marks the leases that `pick` selects (and are not released yet) released, in one change.
    fn release_matching(
        &self,
        loaded: &Loaded,
        actor: &Actor,
        pick: impl Fn(&Lease) -> bool,
    ) -> Result<(Change, Vec<Lease>)> {
        let now = Timestamp::now();
        let at = time::format_timestamp(now);
        let released: Vec<Lease> = loaded
            .leases
            .iter()
            .filter(|l| l.released.is_none() && pick(l))
            .map(|l| Lease {
                released: Some(at.clone()),
                ..l.clone()
            })
            .collect();
        if released.is_empty() {
            return Ok((Change::default(), released));
        }
        let mut change = write_change("release", &released.iter().collect::<Vec<_>>(), actor);
        prune(&loaded.leases, now, &mut change);
        Ok((change, released))
    }

    fn load_all(&self, snap: &Snapshot) -> Result<Loaded> {
        let repo = &self.coord.repo;
        let mut loaded = Loaded {
            leases: Vec::new(),
            broken: Vec::new(),
        };
        let Some(tree) = snap.tree else {
            return Ok(loaded);
        };
        let Some(dir) = repo.lookup_path(tree, "leases")? else {
            return Ok(loaded);
        };
        // Parsed leases are cached by file name and blob id: most writes change one lease, and
        // reading a thousand blobs and YAML documents is most of the cost of a lease command.
        let cache_file = repo.common_dir().join("coord/cache/leases.jsonl");
        let cached = read_lease_cache(&cache_file);
        let mut fresh = Vec::new();
        let mut missed = false;
        for entry in repo.tree_entries(dir)? {
            if let Some(odd) = entry.odd {
                let path = format!("leases/{}", entry.name.escape_debug());
                let why = format!("skipped: {odd}");
                loaded.broken.push((
                    path.clone(),
                    Error::Malformed {
                        refname: LEASES_REF.into(),
                        path,
                        why,
                    },
                ));
                continue;
            }
            if !entry.is_blob || !entry.name.ends_with(".yaml") {
                continue;
            }
            let key = format!("{} {}", entry.name, entry.oid);
            if let Some(lease) = cached.get(&key) {
                fresh.push((key, lease.clone()));
                loaded.leases.push(lease.clone());
                continue;
            }
            missed = true;
            let path = format!("leases/{}", entry.name);
            let result = match crate::store::read_blob(
                repo,
                entry.oid,
                MAX_DOCUMENT_BYTES,
                LEASES_REF,
                &path,
            ) {
                Ok(bytes) => Lease::from_yaml(&bytes, LEASES_REF, &path),
                Err(e @ Error::Malformed { .. }) => Err(e),
                Err(e) => return Err(e),
            };
            match result {
                Ok(lease) => {
                    fresh.push((key, lease.clone()));
                    loaded.leases.push(lease);
                }
                Err(e @ (Error::Malformed { .. } | Error::NewerFormat { .. })) => {
                    tracing::warn!("skipping lease {path}: {e}");
                    loaded.broken.push((path, e));
                }
                Err(e) => return Err(e),
            }
        }
        if missed || fresh.len() != cached.len() {
            write_lease_cache(&cache_file, &fresh);
        }
        Ok(loaded)
    }

    /// Checks and normalises the patterns of a new lease; repeats are kept once.
    fn parse_patterns(&self, inputs: &[String]) -> Result<Vec<Pattern>> {
        if inputs.is_empty() {
            return Err(Error::invalid(
                "lease",
                "",
                "give at least one pattern (a path or glob)",
            ));
        }
        if inputs.len() > MAX_PATTERNS {
            return Err(Error::invalid(
                "lease",
                format!("{} patterns", inputs.len()),
                format!("a lease has at most {MAX_PATTERNS} patterns"),
            ));
        }
        let mut patterns: Vec<Pattern> = Vec::with_capacity(inputs.len());
        for input in inputs {
            let pattern = Pattern::parse(input)?;
            self.check_not_filesystem_path(input.trim(), &pattern)?;
            if !patterns.iter().any(|p| p.text == pattern.text) {
                patterns.push(pattern);
            }
        }
        Ok(patterns)
    }

    /// A leading `/` anchors a pattern at the repository root, but `/home/ada/repo/src` or
    /// `/tmp/x` were surely meant as filesystem paths: refuse those, and say what to write.
    fn check_not_filesystem_path(&self, input: &str, pattern: &Pattern) -> Result<()> {
        if !input.starts_with('/') {
            return Ok(());
        }
        let Some(workdir) = self.coord.repo.workdir() else {
            return Ok(());
        };
        let absolute = Path::new(input);
        for root in [Some(workdir.clone()), workdir.canonicalize().ok()]
            .into_iter()
            .flatten()
        {
            if let Ok(inside) = absolute.strip_prefix(&root) {
                return Err(Error::invalid(
                    "pattern",
                    input,
                    format!(
                        "that is an absolute filesystem path; give it relative to the repository root: '{}'",
                        inside.display()
                    ),
                ));
            }
        }
        let first = pattern.path.split('/').next().unwrap_or_default();
        let on_machine = Path::new("/").join(first);
        if on_machine.exists() && !workdir.join(first).exists() {
            return Err(Error::invalid(
                "pattern",
                input,
                format!(
                    "it looks like an absolute filesystem path ({} exists on this machine, not in the repository); give paths relative to the repository root, or write './{}' to mean the repository's own",
                    on_machine.display(),
                    pattern.text.trim_start_matches('/')
                ),
            ));
        }
        Ok(())
    }
}

/// Names this cache's layout and the build that wrote it.
const LEASE_CACHE_MAGIC: &str = concat!(
    "git-coord lease cache 1, git-coord ",
    env!("CARGO_PKG_VERSION")
);

/// The parsed leases of the last run, by `<file name> <blob id>`; empty when missing, from another
/// build, or damaged. Derived data only: deleting it loses nothing.
fn read_lease_cache(file: &Path) -> std::collections::HashMap<String, Lease> {
    let mut out = std::collections::HashMap::new();
    let Ok(text) = std::fs::read_to_string(file) else {
        return out;
    };
    let mut lines = text.lines();
    if lines.next() != Some(LEASE_CACHE_MAGIC) {
        return out;
    }
    for line in lines {
        let mut parts = line.splitn(3, ' ');
        let (Some(name), Some(oid), Some(json)) = (parts.next(), parts.next(), parts.next()) else {
            return std::collections::HashMap::new();
        };
        match serde_json::from_str::<Lease>(json) {
            Ok(lease) => {
                out.insert(format!("{name} {oid}"), lease);
            }
            Err(_) => return std::collections::HashMap::new(),
        }
    }
    out
}

fn write_lease_cache(file: &Path, leases: &[(String, Lease)]) {
    let mut text = String::with_capacity(leases.len() * 300);
    text.push_str(LEASE_CACHE_MAGIC);
    text.push('\n');
    for (key, lease) in leases {
        let Ok(json) = serde_json::to_string(lease) else {
            return;
        };
        text.push_str(key);
        text.push(' ');
        text.push_str(&json);
        text.push('\n');
    }
    let Some(dir) = file.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(".leases-{}", std::process::id()));
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, file);
    } else {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// What a new or renewed lease asks for.
#[derive(Clone, Copy)]
struct Wanted<'a> {
    agent: &'a str,
    mode: Mode,
    patterns: &'a [Pattern],
    set: &'a PatternSet,
    /// The lease being renewed, which does not conflict with itself.
    except: Option<&'a str>,
}

/// Other agents' leases, with all their patterns compiled into one set.
struct Held<'l> {
    leases: Vec<&'l Lease>,
    /// Every pattern, with the index of its lease in `leases`.
    patterns: Vec<(usize, Pattern)>,
    set: PatternSet,
}

impl<'l> Held<'l> {
    fn new(leases: impl Iterator<Item = &'l Lease>) -> Result<Held<'l>> {
        let leases: Vec<&Lease> = leases.collect();
        let mut patterns = Vec::new();
        for (n, lease) in leases.iter().enumerate() {
            patterns.extend(lease.parsed_patterns()?.into_iter().map(|p| (n, p)));
        }
        let set = PatternSet::new(patterns.iter().map(|(_, p)| p))?;
        Ok(Held {
            leases,
            patterns,
            set,
        })
    }

    /// The leases covering `path`, each with the pattern that does.
    fn covering(&self, path: &str, is_dir: bool) -> Vec<(usize, &Pattern)> {
        let mut out: Vec<(usize, &Pattern)> = Vec::new();
        for n in self.set.matches(path, is_dir) {
            let (lease, pattern) = &self.patterns[n];
            if !out.iter().any(|(l, _)| l == lease) {
                out.push((*lease, pattern));
            }
        }
        out
    }
}

fn conflict(path: &str, lease: &Lease, pattern: &Pattern) -> LeaseConflict {
    LeaseConflict {
        path: path.to_string(),
        lease_id: lease.id.clone(),
        holder: lease.agent.clone(),
        pattern: pattern.text.clone(),
        expires: lease.expires.clone(),
        mode: lease.mode.as_str(),
    }
}

/// Finds the one lease whose id starts with `prefix`. A document that matches but could not be
/// loaded gives the error that says why.
fn resolve(loaded: &mut Loaded, prefix: &str) -> Result<Lease> {
    let broken_id = |path: &str| {
        path.strip_prefix("leases/")
            .and_then(|p| p.strip_suffix(".yaml"))
            .map(str::to_string)
    };
    let mut candidates: Vec<String> = loaded
        .leases
        .iter()
        .map(|l| l.id.clone())
        .chain(loaded.broken.iter().filter_map(|(path, _)| broken_id(path)))
        .filter(|id| id.starts_with(prefix))
        .collect();
    if candidates.len() > 1 {
        if !candidates.iter().any(|c| c == prefix) {
            return Err(Error::AmbiguousId {
                prefix: prefix.into(),
                candidates,
            });
        }
        candidates = vec![prefix.to_string()];
    }
    let Some(found) = candidates.pop() else {
        return Err(Error::NoSuchLease(prefix.into()));
    };
    if let Some(lease) = loaded.leases.iter().find(|l| l.id == found) {
        return Ok(lease.clone());
    }
    let at = loaded
        .broken
        .iter()
        .position(|(path, _)| broken_id(path).as_deref() == Some(found.as_str()))
        .expect("a candidate is loaded or broken");
    Err(loaded.broken.swap_remove(at).1)
}

fn problem_reason(err: &Error) -> String {
    match err {
        Error::Malformed { why, .. } => why.clone(),
        Error::NewerFormat {
            found, supported, ..
        } => {
            format!("format version {found} is newer than this git-coord understands ({supported})")
        }
        other => other.to_string(),
    }
}

fn fresh_id(loaded: &Loaded) -> String {
    loop {
        let id = id::new_id();
        let path = Lease::path(&id);
        if !loaded.leases.iter().any(|l| l.id == id)
            && !loaded.broken.iter().any(|(p, _)| *p == path)
        {
            return id;
        }
    }
}

fn expiry(now: Timestamp, ttl: Duration) -> Result<String> {
    let ttl = jiff::SignedDuration::try_from(ttl)
        .map_err(|e| Error::Other(format!("lease duration: {e}")))?;
    now.checked_add(ttl)
        .map(time::format_timestamp)
        .map_err(|e| Error::Other(format!("lease expiry: {e}")))
}

fn check_ttl(ttl: Duration) -> Result<Duration> {
    if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
        return Err(Error::invalid(
            "ttl",
            format!("{}s", ttl.as_secs()),
            "a lease lasts from 1s to 7d",
        ));
    }
    Ok(ttl)
}

fn check_reason(reason: Option<&str>) -> Result<Option<String>> {
    let Some(reason) = reason.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if reason.contains('\n') || reason.chars().count() > MAX_REASON {
        return Err(Error::invalid(
            "reason",
            reason,
            format!("a reason is one line of at most {MAX_REASON} characters"),
        ));
    }
    Ok(Some(reason.to_string()))
}

/// Drops the leases that ended (released or expired) more than [`KEEP_ENDED`] ago, so the tree
/// holds only what is live or recent. Correctness never depends on it: ended leases never count.
fn prune(leases: &[Lease], now: Timestamp, change: &mut Change) {
    let Ok(keep) = jiff::SignedDuration::try_from(KEEP_ENDED) else {
        return;
    };
    let mut pruned = 0;
    for lease in leases {
        let touched = change
            .docs
            .iter()
            .any(|(p, _)| *p == Lease::path(&lease.id));
        let ended_long_ago = lease.status(now) != Status::Active
            && lease
                .ended_at()
                .and_then(|t| t.checked_add(keep).ok())
                .is_some_and(|t| t <= now);
        if ended_long_ago && !touched {
            change.docs.push((Lease::path(&lease.id), None));
            pruned += 1;
        }
    }
    if pruned > 0 {
        change.trailers.push(("Coord-Pruned", pruned.to_string()));
    }
}

fn write_change(op: &str, leases: &[&Lease], actor: &Actor) -> Change {
    let subject = match leases {
        [one] => format!("{op} {} by {}", one.id, actor.agent),
        many => format!("{op} {} leases by {}", many.len(), actor.agent),
    };
    let mut trailers = vec![("Coord-Op", op.to_string())];
    trailers.extend(leases.iter().map(|l| ("Coord-Lease", l.id.clone())));
    let mut tasks: Vec<&str> = leases.iter().filter_map(|l| l.task.as_deref()).collect();
    tasks.sort_unstable();
    tasks.dedup();
    trailers.extend(tasks.into_iter().map(|t| ("Coord-Task", t.to_string())));
    Change {
        reads: None,
        docs: leases
            .iter()
            .map(|l| (Lease::path(&l.id), Some(l.to_yaml().into_bytes())))
            .collect(),
        subject,
        trailers,
    }
}
