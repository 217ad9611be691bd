//! Launching agents: the command a role has in `.coord.yaml` (an agent CLI with its model and
//! flags) started detached in the agent's worktree, with the agent's identity in its environment
//! and its output in a log file; and stopping it. Only local configuration and committed files
//! decide what runs: nothing stored in refs/coord/ is ever executed.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::ops::agents::Agents;
use crate::ops::context::{AGENT_ENV, Coord};

/// A launched agent: its process and where its output goes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Launched {
    pub agent: String,
    pub pid: u32,
    pub command: String,
    pub log: String,
}

fn run_dir(coord: &Coord) -> PathBuf {
    coord.repo.common_dir().join("coord").join("run")
}

fn pid_file(coord: &Coord, agent: &str) -> PathBuf {
    run_dir(coord).join(format!("{agent}.pid"))
}

pub fn log_file(coord: &Coord, agent: &str) -> PathBuf {
    coord
        .repo
        .common_dir()
        .join("coord")
        .join("logs")
        .join(format!("{agent}.log"))
}

/// Whether process `pid` exists on this machine (one of another user's counts too).
pub(crate) fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// The pid of the agent's running process, if one runs.
pub fn running(coord: &Coord, agent: &str) -> Option<u32> {
    let text = std::fs::read_to_string(pid_file(coord, agent)).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    alive(pid).then_some(pid as u32)
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

/// Starts `command`, else the agent's role command, in its worktree, detached.
pub fn launch(coord: &Coord, agent: &str, command: Option<&str>) -> Result<Launched> {
    let agents = Agents::new(coord)?;
    let view = agents.show(agent)?;
    let role = agents.config().role(&view.agent.role)?;
    let command = command
        .map(str::to_string)
        .or_else(|| role.command.clone())
        .ok_or_else(|| no_command(&role.name))?;
    let worktree = view
        .agent
        .worktree
        .map(PathBuf::from)
        .filter(|w| w.is_dir())
        .ok_or_else(|| Error::invalid("agent", agent, "its worktree is not on this machine"))?;
    if let Some(pid) = running(coord, agent) {
        return Err(already_runs(agent, pid));
    }
    let log = log_file(coord, agent);
    std::fs::create_dir_all(log.parent().expect("a logs directory"))?;
    std::fs::create_dir_all(run_dir(coord))?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let err = out.try_clone()?;
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &command])
        .current_dir(&worktree)
        .env(AGENT_ENV, agent)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe; the child leads its own session, so it outlives us
    // and `agent stop` can end it with everything it started.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start '{command}': {e}")))?;
    let pid = child.id();
    std::fs::write(pid_file(coord, agent), format!("{pid}\n"))?;
    Ok(Launched {
        agent: agent.to_string(),
        pid,
        command,
        log: log.display().to_string(),
    })
}

/// Ends the agent's process and everything it started: SIGTERM, then SIGKILL after 5 seconds.
pub fn stop(coord: &Coord, agent: &str) -> Result<u32> {
    let Some(pid) = running(coord, agent) else {
        let _ = std::fs::remove_file(pid_file(coord, agent));
        return Err(Error::invalid(
            "agent",
            agent,
            "it is not running (no process started by `agent spawn --launch` or `agent launch`)",
        ));
    };
    let group = -(pid as i32);
    // SAFETY: signals to the process group the launched agent leads.
    unsafe { libc::kill(group, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid as i32) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid as i32) {
        // SAFETY: as above.
        unsafe { libc::kill(group, libc::SIGKILL) };
    }
    let _ = std::fs::remove_file(pid_file(coord, agent));
    Ok(pid)
}
