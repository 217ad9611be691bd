//! `git coord supervise`: keeps the team's launched agents running. A flow over agents, launch,
//! tasks, the team's state and messages: it launches every active agent whose role has a
//! command, launches again one that ended while it holds a claim or its role has ready work
//! (backing off after a run that did nothing, giving up after `supervise_restarts` of them in a
//! row: the agent is paused, its claims released, the organiser told why), and stops agents when
//! the team is paused or cancelled, when one is paused, and when supervision ends.
//!
//! It keeps nothing of its own that matters: the runners it starts record their identity
//! (ops/launch.rs), so a supervisor started again after a crash finds them; `run/supervise.pid`
//! and the advisory lock on `run/supervise.lock` only keep a second supervisor from starting.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::model::task::State;
use crate::model::time;
use crate::ops::agents::Agents;
use crate::ops::context::Coord;
use crate::ops::launch::{self, ProcessIdentity, RunRecord};
use crate::ops::tasks::{TASKS_REF, Tasks};
use crate::ops::team::{self, TeamState};

/// The longest wait between two launches of one agent.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Something the supervisor did or saw, for the command line to show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// Started the agent's command.
    Launched { agent: String, pid: u32 },
    /// Found the agent running (launched before this supervisor started, or by hand).
    Found { agent: String, pid: u32 },
    /// The agent's command ended; `fruitless` when it failed or changed no task.
    Exited {
        agent: String,
        how: String,
        fruitless: bool,
    },
    /// Stopped the agent, for `why`.
    Stopped { agent: String, why: String },
    /// Will launch it again in `after_seconds`.
    Waiting { agent: String, after_seconds: u64 },
    /// Gave up on it: paused, its claims released, the organiser told.
    GaveUp { agent: String, why: String },
    /// Could not launch it, or a step about it failed.
    Failed { agent: String, error: String },
}

#[derive(Debug, Default)]
struct Tracked {
    /// The runner seen running, while it runs.
    process: Option<ProcessIdentity>,
    /// refs/coord/tasks when it was launched or found: a run that leaves it as it was did nothing.
    tasks_at_start: Option<String>,
    started: Option<Instant>,
    /// Fruitless runs in a row.
    failures: u32,
    last_failure: String,
    not_before: Option<Instant>,
    /// Launched (or found) once by this supervisor: from then on only work brings it back.
    seen: bool,
}

/// The supervisor of this machine's agents for one repository.
pub struct Supervisor<'c> {
    coord: &'c Coord,
    tracked: BTreeMap<String, Tracked>,
    /// Runners this process started, reaped once they end (else they stay zombies).
    children: Vec<std::process::Child>,
    _lock: std::fs::File,
}

fn supervisor_pid_file(coord: &Coord) -> std::path::PathBuf {
    launch::run_dir(coord).join("supervise.pid")
}

/// The supervisor running for this repository, if one does (its recorded identity, alive).
pub fn running_supervisor(coord: &Coord) -> Option<RunRecord> {
    let text = std::fs::read_to_string(supervisor_pid_file(coord)).ok()?;
    crate::model::parse_yaml::<RunRecord>(&text)
        .ok()
        .filter(|r| r.process.alive())
}

/// Asks the running supervisor to end (SIGTERM: it stops its agents first) and waits up to
/// `wait` for it. Returns its pid, or None when none runs.
pub fn stop_supervisor(coord: &Coord, wait: Duration) -> Result<Option<u32>> {
    let Some(run) = running_supervisor(coord) else {
        return Ok(None);
    };
    // SAFETY: a signal to the one process whose identity was just checked.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(run.process.pid as i32, libc::SIGTERM)
    };
    let deadline = Instant::now() + wait;
    while run.process.alive() {
        if Instant::now() > deadline {
            return Err(Error::Other(format!(
                "the supervisor (pid {}) did not end within {}s",
                run.process.pid,
                wait.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Some(run.process.pid))
}

impl<'c> Supervisor<'c> {
    /// Becomes this repository's supervisor; refused while another one runs.
    pub fn start(coord: &'c Coord) -> Result<Supervisor<'c>> {
        coord.check_config()?;
        std::fs::create_dir_all(launch::run_dir(coord))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(launch::run_dir(coord).join("supervise.lock"))?;
        // The lock goes with the process.
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            let pid = running_supervisor(coord).map_or(0, |r| r.process.pid);
            return Err(Error::Refused {
                why: format!("a supervisor already runs for this repository (pid {pid})"),
                hint: "`git coord supervise --stop` ends it".into(),
            });
        }
        let me = ProcessIdentity::of(std::process::id())
            .ok_or_else(|| Error::Other("cannot read this process's identity".into()))?;
        let record = RunRecord {
            process: me,
            command: "git coord supervise".into(),
            started: time::now(),
        };
        launch::write_atomically(
            &supervisor_pid_file(coord),
            &serde_saphyr::to_string(&record).expect("a run record serializes"),
        )?;
        Ok(Supervisor {
            coord,
            tracked: BTreeMap::new(),
            children: Vec::new(),
            _lock: lock,
        })
    }

    /// One look at the team: launches, relaunches and stops what it must.
    pub fn tick(&mut self) -> Result<Vec<Event>> {
        self.children
            .retain_mut(|c| c.try_wait().map(|s| s.is_none()).unwrap_or(false));
        let coord = self.coord;
        let agents = Agents::new(coord)?;
        let config = agents.config().clone();
        let team = team::get(coord)?;
        let (views, _) = agents.list(false)?;
        let tasks = Tasks::new(coord);
        let mut index = None;
        let mut events = Vec::new();
        let active: Vec<String> = views.iter().map(|v| v.agent.name.clone()).collect();
        self.tracked.retain(|name, _| active.contains(name));
        for view in views {
            let agent = view.agent;
            let name = agent.name.clone();
            let Some(command) = config
                .role(&agent.role)
                .ok()
                .and_then(|r| r.command.clone())
            else {
                continue;
            };
            if !matches!(agents.own_worktree(&agent), Ok(Some(_))) {
                continue; // another machine's agent, or a worktree that is gone
            }
            let running = launch::running(coord, &name);
            let tracked = self.tracked.entry(name.clone()).or_default();
            let halt = match (&team.state, &agent.paused) {
                (TeamState::Running, None) => None,
                (TeamState::Running, Some(pause)) => Some(format!("paused: {}", pause.reason)),
                (state, _) => Some(format!(
                    "the team is {}{}",
                    state.as_str(),
                    team.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                )),
            };
            if let Some(why) = halt {
                if let Some(run) = running {
                    launch::stop_process(run.process, Duration::from_secs(5));
                    let _ =
                        launch::note_in_log(coord, &name, &format!("supervise stopped it ({why})"));
                    events.push(Event::Stopped {
                        agent: name.clone(),
                        why,
                    });
                }
                // Resumed, it comes back when it has work; its count starts again.
                *tracked = Tracked {
                    seen: true,
                    ..Tracked::default()
                };
                continue;
            }
            let tasks_tip = coord.repo.ref_tip(TASKS_REF)?.map(|o| o.to_string());
            if let Some(run) = running {
                if tracked.process != Some(run.process) {
                    events.push(Event::Found {
                        agent: name.clone(),
                        pid: run.process.pid,
                    });
                    tracked.process = Some(run.process);
                    tracked.tasks_at_start = tasks_tip;
                    tracked.started = Some(Instant::now());
                    tracked.seen = true;
                }
                continue;
            }
            if let Some(ended) = tracked.process.take() {
                let exit = launch::exit_record(coord, &name, ended);
                let how = exit
                    .as_ref()
                    .map_or("ended without saying how".into(), |e| e.describe());
                let ran = tracked.started.map(|s| s.elapsed()).unwrap_or_default();
                let idle = tracked.tasks_at_start == tasks_tip;
                // A run that wrote a task itself did work, however it ended (a kill after an
                // hour of it is no crash loop).
                let fruitless = !wrote_since(coord, &name, tracked.tasks_at_start.as_deref())
                    && (!exit.as_ref().is_some_and(|e| e.success()) || idle);
                events.push(Event::Exited {
                    agent: name.clone(),
                    how: how.clone(),
                    fruitless,
                });
                if fruitless {
                    tracked.failures += 1;
                    tracked.last_failure = format!(
                        "{how} after {:.1}s{}",
                        ran.as_secs_f64(),
                        if idle { ", having changed no task" } else { "" }
                    );
                    if tracked.failures >= config.supervise_restarts {
                        let why = format!(
                            "its command ended {} times in a row without doing any work (last: {})",
                            tracked.failures, tracked.last_failure
                        );
                        events.extend(give_up(coord, &name, &command, &why));
                        *tracked = Tracked {
                            seen: true,
                            ..Tracked::default()
                        };
                        continue;
                    }
                    let wait = config
                        .supervise_backoff
                        .saturating_mul(1 << (tracked.failures - 1).min(16))
                        .min(MAX_BACKOFF);
                    tracked.not_before = Some(Instant::now() + wait);
                    events.push(Event::Waiting {
                        agent: name.clone(),
                        after_seconds: wait.as_secs(),
                    });
                } else {
                    tracked.failures = 0;
                    tracked.not_before = None;
                }
            }
            if tracked.not_before.is_some_and(|t| Instant::now() < t) {
                continue;
            }
            if tracked.seen {
                // Launched before: only work it holds or work waiting for its role brings it back.
                if index.is_none() {
                    index = Some(tasks.load_ready_index()?);
                }
                let index = index.as_ref().expect("loaded above");
                let holds = index
                    .tasks()
                    .any(|t| t.state() == State::Claimed && t.assignee() == Some(name.as_str()));
                if !holds && crate::ops::tasks::ready_tasks(index, Some(&agent.role)).is_empty() {
                    continue;
                }
            }
            tracked.seen = true;
            match Agents::new(coord).and_then(|a| a.launch_child(&name, None)) {
                Ok((launched, child)) => {
                    self.children.push(child);
                    tracked.process = Some(ProcessIdentity {
                        pid: launched.pid,
                        start: launched.start,
                    });
                    tracked.tasks_at_start = tasks_tip;
                    tracked.started = Some(Instant::now());
                    events.push(Event::Launched {
                        agent: name.clone(),
                        pid: launched.pid,
                    });
                }
                Err(e) => {
                    tracked.failures += 1;
                    tracked.last_failure = format!("could not launch: {e}");
                    tracked.not_before = Some(Instant::now() + config.supervise_backoff);
                    events.push(Event::Failed {
                        agent: name.clone(),
                        error: e.to_string(),
                    });
                    if tracked.failures >= config.supervise_restarts {
                        let why = format!(
                            "it could not be launched {} times in a row (last: {e})",
                            tracked.failures
                        );
                        events.extend(give_up(coord, &name, &command, &why));
                        *tracked = Tracked {
                            seen: true,
                            ..Tracked::default()
                        };
                    }
                }
            }
        }
        Ok(events)
    }

    /// Ends supervision: stops every agent of this repository running on this machine.
    pub fn shutdown(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        let names: Vec<String> = match Agents::new(self.coord).and_then(|a| a.list(false)) {
            Ok((views, _)) => views.into_iter().map(|v| v.agent.name).collect(),
            Err(_) => self.tracked.keys().cloned().collect(),
        };
        for name in names {
            if let Some(run) = launch::running(self.coord, &name) {
                launch::stop_process(run.process, Duration::from_secs(5));
                let _ = launch::note_in_log(self.coord, &name, "supervise ended: stopped");
                events.push(Event::Stopped {
                    agent: name,
                    why: "supervise is ending".into(),
                });
            }
        }
        for mut child in self.children.drain(..) {
            let _ = child.wait();
        }
        let me = ProcessIdentity::of(std::process::id());
        if running_supervisor(self.coord).map(|r| r.process) == me {
            let _ = std::fs::remove_file(supervisor_pid_file(self.coord));
        }
        events
    }
}

/// Pauses the agent, releases what it holds and tells the organiser why.
fn give_up(coord: &Coord, name: &str, command: &str, why: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let mut fail = |e: Error| {
        events.push(Event::Failed {
            agent: name.to_string(),
            error: e.to_string(),
        })
    };
    if let Err(e) = crate::ops::agent_pause::pause(coord, name, &format!("supervise: {why}")) {
        fail(e);
    }
    let tasks = Tasks::new(coord);
    let mut released = Vec::new();
    if let Ok(index) = tasks.load_ready_index() {
        let held: Vec<String> = index
            .tasks()
            .filter(|t| t.state() == State::Claimed && t.assignee() == Some(name))
            .map(|t| t.id().to_string())
            .collect();
        for id in held {
            match tasks.release(&id, true) {
                Ok(_) => released.push(id),
                Err(e) => fail(e),
            }
        }
    }
    let log = launch::log_file(coord, name);
    let tail: Vec<String> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .rev()
        .take(8)
        .map(|l| crate::ops::messages::clip(l, 200))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let body = format!(
        "Supervise stopped launching {name}: {why}.\n\
         Its command: `{command}`.\n\
         {name} is paused{}. Fix the command or what it needs, then `git coord agent resume {name}`: supervise launches it again when its role has work.\n\
         The last lines of its log ({}; all of it: `git coord logs {name}`):\n{}",
        if released.is_empty() {
            String::new()
        } else {
            format!(" and its claims are released ({})", released.join(", "))
        },
        log.display(),
        tail.join("\n")
    );
    if let Err(e) = crate::ops::messages::tell_organiser(
        coord,
        "",
        &format!("Supervise gave up on {name}: crash loop"),
        &body,
        None,
    ) {
        fail(e);
    }
    let _ = launch::note_in_log(coord, name, &format!("supervise gave up: {why}"));
    events.push(Event::GaveUp {
        agent: name.to_string(),
        why: why.to_string(),
    });
    events
}

/// Whether `agent` wrote to refs/coord/tasks since the tip `since` (its run's start): a commit
/// of its own (`Coord-Agent: NAME`) among the newest 10,000. Without a start tip, no.
fn wrote_since(coord: &Coord, agent: &str, since: Option<&str>) -> bool {
    let since = since.and_then(|s| crate::git::Oid::from_hex(s.as_bytes()).ok());
    let (Some(since), Ok(Some(tip))) = (since, coord.repo.ref_tip(TASKS_REF)) else {
        return false;
    };
    let trailer = format!("Coord-Agent: {agent}");
    let mut wrote = false;
    let mut seen = 0;
    let walked = coord.repo.walk_history(tip, |commit| {
        seen += 1;
        if commit.oid == since {
            return false;
        }
        wrote = commit.message.lines().any(|l| l.trim() == trailer);
        !wrote && seen < 10_000
    });
    walked.is_ok() && wrote
}
