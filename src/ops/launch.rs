//! Launching agents: the command a role has in `.coord.yaml` (an agent CLI with its model and
//! flags) started detached in the agent's worktree, with the agent's identity in its environment
//! and its output stamped into a log file; and stopping it. Only local configuration and
//! committed files decide what runs: nothing stored in refs/coord/ is ever executed.
//!
//! A launch starts `git-coord agent run NAME --command CMD` in a session of its own: that process
//! (the agent's *runner*) holds `run/<agent>.lock` (an advisory lock, so a second runner for the
//! same agent refuses to start), records its own identity in `run/<agent>.pid`, runs `sh -c CMD`
//! with its output through a pipe, stamps each line into the agent's log (ops/agent_logs.rs),
//! and when the command ends records how in `run/<agent>.exit`. The identity is the pid and the
//! process's start time (field 22 of /proc/<pid>/stat): a pid the system gave to another process
//! since is never taken for the agent's.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::time;
use crate::ops::agent_logs::{LogWriter, MAX_LOG_BYTES};
use crate::ops::context::{AGENT_ENV, Coord};

pub use crate::ops::agent_logs::log_file;

/// A launched agent: its process and where its output goes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Launched {
    pub agent: String,
    pub pid: u32,
    /// The process's start time, in clock ticks after boot (with the pid, its identity).
    pub start: u64,
    pub command: String,
    pub log: String,
}

/// One process as this machine knows it: its pid and when it started, so that a pid reused by
/// another process is never mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub pid: u32,
    /// Clock ticks after boot (field 22 of /proc/<pid>/stat); 0 where there is no /proc.
    pub start: u64,
}

impl ProcessIdentity {
    /// The identity of the live process `pid` now (None when it is gone or a zombie).
    pub fn of(pid: u32) -> Option<ProcessIdentity> {
        if pid == 0 || pid > i32::MAX as u32 {
            return None;
        }
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                // pid (comm) state ppid ...: comm may hold spaces and parentheses.
                let rest = stat.rsplit_once(')')?.1;
                let fields: Vec<&str> = rest.split_whitespace().collect();
                if matches!(fields.first(), Some(&"Z") | Some(&"X") | None) {
                    return None;
                }
                let start = fields.get(19)?.parse().ok()?;
                Some(ProcessIdentity { pid, start })
            }
            // No /proc on this system: only whether the pid lives can be told.
            Err(_) if !std::path::Path::new("/proc/self/stat").exists() => {
                alive(pid as i32).then_some(ProcessIdentity { pid, start: 0 })
            }
            Err(_) => None,
        }
    }

    /// Whether the process this identity names still runs (the same pid, started at the same
    /// time).
    pub fn alive(&self) -> bool {
        ProcessIdentity::of(self.pid) == Some(*self)
    }
}

/// Whether process `pid` exists on this machine (one of another user's counts too).
#[allow(unsafe_code)]
pub(crate) fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// What `run/<agent>.pid` holds: the runner's identity, and what it runs since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    #[serde(flatten)]
    pub process: ProcessIdentity,
    pub command: String,
    pub started: String,
}

/// What `run/<agent>.exit` holds: how the runner's command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    #[serde(flatten)]
    pub process: ProcessIdentity,
    /// The command's exit code, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub at: String,
}

impl ExitRecord {
    /// `exited with status 1`, `killed by signal 9`.
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exited with status {code}"),
            (_, Some(signal)) => format!("killed by signal {signal}"),
            _ => "ended".into(),
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

pub fn run_dir(coord: &Coord) -> PathBuf {
    coord.repo.common_dir().join("coord").join("run")
}

fn pid_file(coord: &Coord, agent: &str) -> PathBuf {
    run_dir(coord).join(format!("{agent}.pid"))
}

fn exit_file(coord: &Coord, agent: &str) -> PathBuf {
    run_dir(coord).join(format!("{agent}.exit"))
}

fn lock_file(coord: &Coord, agent: &str) -> PathBuf {
    run_dir(coord).join(format!("{agent}.lock"))
}

/// Writes `text` to `path` whole or not at all (a kill mid-write leaves the old file).
pub(crate) fn write_atomically(path: &std::path::Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The recorded runner of `agent`, whatever its state. A pid file without a start time (from an
/// older build) cannot prove whose pid it is, and is not taken for the agent's.
pub fn record(coord: &Coord, agent: &str) -> Option<RunRecord> {
    let text = std::fs::read_to_string(pid_file(coord, agent)).ok()?;
    crate::model::parse_yaml::<RunRecord>(&text).ok()
}

/// The agent's runner, if it runs: the recorded identity, alive.
pub fn running(coord: &Coord, agent: &str) -> Option<RunRecord> {
    record(coord, agent).filter(|r| r.process.alive())
}

/// How the runner `process` of `agent` ended, if it recorded it.
pub fn exit_record(coord: &Coord, agent: &str, process: ProcessIdentity) -> Option<ExitRecord> {
    let text = std::fs::read_to_string(exit_file(coord, agent)).ok()?;
    crate::model::parse_yaml::<ExitRecord>(&text)
        .ok()
        .filter(|e| e.process == process)
}

/// What launching an agent whose process still runs says.
pub fn already_runs(agent: &str, pid: u32) -> Error {
    Error::invalid(
        "agent",
        agent,
        format!("it already runs (pid {pid}); `git coord agent stop {agent}` first"),
    )
}

/// What a role without a command says to `--launch`.
pub fn no_command(role: &str) -> Error {
    Error::invalid(
        "role",
        role,
        format!(
            "it has no command to launch (the default roles have none): pass one with --command, e.g. --command 'claude -p \"Run git coord brief and do the work it gives you\"', or give the role a command in .coord.yaml (roles: - name: {role}, command: ...)"
        ),
    )
}

/// Starts `command` in `worktree` as agent `agent`, detached, with its output in the agent's
/// log; hands back the runner's process, which a long-lived caller (supervise) must reap once it
/// ends. [`crate::ops::agents::Agents::launch`] finds the worktree and the role's command.
pub fn launch_child(
    coord: &Coord,
    agent: &str,
    worktree: &std::path::Path,
    command: &str,
) -> Result<(Launched, std::process::Child)> {
    if let Some(run) = running(coord, agent) {
        return Err(already_runs(agent, run.process.pid));
    }
    let log = log_file(coord, agent);
    std::fs::create_dir_all(log.parent().expect("a logs directory"))?;
    std::fs::create_dir_all(run_dir(coord))?;
    // The runner's own complaints (it could not start the command) go to the log too.
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let err = out.try_clone()?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::Other(format!("cannot find the git-coord binary to launch: {e}")))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["agent", "run", agent, "--command", command])
        .current_dir(worktree)
        .env(AGENT_ENV, agent)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe; the runner leads its own session, so it outlives us
    // and `agent stop` can end it with everything it started.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start '{command}': {e}")))?;
    let pid = child.id();
    // The runner records itself; wait for it, so that a launch that reports success is found.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Its pid file, or (a command that ended at once) the record of how it ended.
        let recorded = record(coord, agent)
            .map(|r| r.process)
            .filter(|p| p.pid == pid)
            .or_else(|| {
                let text = std::fs::read_to_string(exit_file(coord, agent)).ok()?;
                let exit = crate::model::parse_yaml::<ExitRecord>(&text).ok()?;
                Some(exit.process).filter(|p| p.pid == pid)
            });
        if let Some(process) = recorded {
            return Ok((
                Launched {
                    agent: agent.to_string(),
                    pid,
                    start: process.start,
                    command: command.to_string(),
                    log: log.display().to_string(),
                },
                child,
            ));
        }
        if let Some(status) = child.try_wait()? {
            return Err(match (status.code(), running(coord, agent)) {
                (Some(RUNNER_REFUSED), Some(other)) => already_runs(agent, other.process.pid),
                _ => Error::Other(format!(
                    "the runner of {agent} ended at once ({status}); see {}",
                    log.display()
                )),
            });
        }
        if Instant::now() > deadline {
            return Err(Error::Other(format!(
                "the runner of {agent} (pid {pid}) did not record itself within 10 seconds; see {}",
                log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The exit code of a runner that found another runner of the same agent.
pub const RUNNER_REFUSED: i32 = 3;

extern "C" fn ignore_signal(_: libc::c_int) {}

/// `git coord agent run NAME --command CMD`, in the agent's worktree: what a launch starts.
/// Runs `sh -c CMD` in the foreground, its output stamped into the agent's log, and returns the
/// command's exit code. SIGTERM, SIGINT and SIGHUP do not end the runner itself: it ends when the
/// command's output does, so it records how the command ended.
pub fn run_attended(coord: &Coord, agent: &str, command: &str) -> Result<i32> {
    crate::model::name::validate("agent name", agent)?;
    std::fs::create_dir_all(run_dir(coord))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_file(coord, agent))?;
    // The lock goes with the process (the descriptor is close-on-exec, so the command does not
    // inherit it).
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        let pid = running(coord, agent).map_or(0, |r| r.process.pid);
        return Err(Error::Refused {
            why: format!("agent {agent} already runs (pid {pid})"),
            hint: format!("`git coord agent stop {agent}` first"),
        });
    }
    let me = ProcessIdentity::of(std::process::id())
        .ok_or_else(|| Error::Other("cannot read this process's own identity from /proc".into()))?;
    let record = RunRecord {
        process: me,
        command: command.to_string(),
        started: time::now(),
    };
    write_atomically(
        &pid_file(coord, agent),
        &serde_saphyr::to_string(&record).expect("a run record serializes"),
    )?;
    let (reader, writer) = std::io::pipe()?;
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", command])
        .env(AGENT_ENV, agent)
        .stdin(std::process::Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    // SAFETY: a handler that does nothing; at exec the command gets the default actions back.
    #[allow(unsafe_code)]
    unsafe {
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::signal(signal, ignore_signal as *const () as libc::sighandler_t);
        }
    }
    let spawned = cmd.spawn();
    drop(cmd); // its copies of the pipe's writing end: the log ends when the command's output does
    let mut log = LogWriter::open(&log_file(coord, agent), MAX_LOG_BYTES)?;
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let _ = log.line(format!("git-coord: cannot start '{command}': {e}").as_bytes());
            finish(coord, agent, me, None);
            return Err(Error::Other(format!("cannot start '{command}': {e}")));
        }
    };
    let copied = log.copy_lines(reader);
    let status = child.wait()?;
    let exit = ExitRecord {
        process: me,
        code: status.code(),
        signal: status.signal(),
        at: time::now(),
    };
    let _ = log.line(format!("git-coord: the command {}", exit.describe()).as_bytes());
    finish(coord, agent, me, Some(&exit));
    copied?;
    Ok(status.code().unwrap_or(128 + status.signal().unwrap_or(0)))
}

/// Records how the runner's command ended and removes the runner's pid file, if it is its own.
fn finish(coord: &Coord, agent: &str, me: ProcessIdentity, exit: Option<&ExitRecord>) {
    if let Some(exit) = exit {
        let _ = write_atomically(
            &exit_file(coord, agent),
            &serde_saphyr::to_string(exit).expect("an exit record serializes"),
        );
    }
    if record(coord, agent).is_some_and(|r| r.process == me) {
        let _ = std::fs::remove_file(pid_file(coord, agent));
    }
}

/// Ends the agent's process and everything it started: SIGTERM, then SIGKILL after 5 seconds.
pub fn stop(coord: &Coord, agent: &str) -> Result<u32> {
    let Some(run) = running(coord, agent) else {
        let _ = std::fs::remove_file(pid_file(coord, agent));
        return Err(Error::invalid(
            "agent",
            agent,
            "it is not running (no process started by `agent spawn --launch`, `agent launch` or `supervise`)",
        ));
    };
    stop_process(run.process, Duration::from_secs(5));
    if record(coord, agent).is_some_and(|r| r.process == run.process) {
        let _ = std::fs::remove_file(pid_file(coord, agent));
    }
    Ok(run.process.pid)
}

/// Sends SIGTERM to the process group `process` leads, then SIGKILL after `grace` if it still
/// runs. The identity is checked before each signal, so a pid reused meanwhile is left alone.
pub fn stop_process(process: ProcessIdentity, grace: Duration) {
    let group = -(process.pid as i32);
    if !process.alive() {
        return;
    }
    // SAFETY: signals to the process group the launched process leads, checked to be it.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(group, libc::SIGTERM)
    };
    let deadline = Instant::now() + grace;
    while process.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if process.alive() {
        // SAFETY: as above.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(group, libc::SIGKILL)
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while process.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Writes `line` to the log of `agent`, stamped, as the runner would (what supervise says about
/// an agent shows among its output).
pub fn note_in_log(coord: &Coord, agent: &str, line: &str) -> Result<()> {
    let mut log = LogWriter::open(&log_file(coord, agent), MAX_LOG_BYTES)?;
    log.line(format!("git-coord: {line}").as_bytes())
}
