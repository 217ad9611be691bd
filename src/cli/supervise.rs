//! `git coord supervise`: clap arguments, the foreground loop's signals, and output.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;

use crate::error::{Error, Result};
use crate::model::time;
use crate::ops::context::Coord;
use crate::ops::supervision::{self, Event, Supervisor};

#[derive(Args, Debug)]
pub struct SuperviseArgs {
    /// Run in the background (output in .git/coord/logs/supervise.out); print its pid
    #[arg(long, conflicts_with = "stop")]
    detach: bool,
    /// End the supervisor running for this repository (it stops its agents first)
    #[arg(long)]
    stop: bool,
}

/// How often the supervisor looks at the team.
const TICK: Duration = Duration::from_millis(300);

pub(super) static ENDING: AtomicBool = AtomicBool::new(false);

pub(super) extern "C" fn on_signal(_: libc::c_int) {
    ENDING.store(true, Ordering::SeqCst);
}

pub fn supervise(
    coord: &Coord,
    args: SuperviseArgs,
    out: &mut dyn Write,
    json: bool,
) -> Result<()> {
    if args.stop {
        let text = match supervision::stop_supervisor(coord, Duration::from_secs(30))? {
            Some(pid) => format!("supervisor (pid {pid}) ended; it stopped its agents"),
            None => "no supervisor runs for this repository".to_string(),
        };
        return say(out, json, serde_json::json!({ "stopped": text }), &text);
    }
    if args.detach {
        return detach(coord, out, json);
    }
    // SAFETY: the handler only stores to an atomic.
    #[allow(unsafe_code)]
    unsafe {
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::signal(signal, on_signal as *const () as libc::sighandler_t);
        }
    }
    let mut supervisor = Supervisor::start(coord)?;
    let report = |events: Vec<Event>, out: &mut dyn Write| -> Result<()> {
        for event in events {
            if json {
                writeln!(out, "{}", serde_json::to_value(&event)?)?;
            } else {
                writeln!(out, "{} {}", time::now(), describe(&event))?;
            }
        }
        out.flush()?;
        Ok(())
    };
    if !json {
        writeln!(
            out,
            "{} supervising the agents of this repository; Ctrl-C (or `git coord supervise --stop`) stops them and ends",
            time::now()
        )?;
    }
    while !ENDING.load(Ordering::SeqCst) {
        match supervisor.tick() {
            Ok(events) => report(events, out)?,
            // A passing failure (a malformed .coord.yaml being edited, say) must not end it.
            Err(e) => eprintln!("{} warning: {e}", time::now()),
        }
        std::thread::sleep(TICK);
    }
    let events = supervisor.shutdown();
    report(events, out)
}

fn describe(event: &Event) -> String {
    match event {
        Event::Launched { agent, pid } => format!("[{agent}] launched (pid {pid})"),
        Event::Found { agent, pid } => format!("[{agent}] found running (pid {pid})"),
        Event::Exited {
            agent,
            how,
            fruitless,
        } => format!(
            "[{agent}] its command {how}{}",
            if *fruitless { " (a fruitless run)" } else { "" }
        ),
        Event::Stopped { agent, why } => format!("[{agent}] stopped: {why}"),
        Event::Waiting {
            agent,
            after_seconds,
        } => format!("[{agent}] launching again in {after_seconds}s if work waits"),
        Event::GaveUp { agent, why } => format!(
            "[{agent}] gave up: {why}; it is paused and the organiser told (`git coord agent resume {agent}`)"
        ),
        Event::Failed { agent, error } => format!("[{agent}] failed: {error}"),
    }
}

/// Starts `supervise` again in the background, in a session of its own.
fn detach(coord: &Coord, out: &mut dyn Write, json: bool) -> Result<()> {
    use std::os::unix::process::CommandExt;
    if let Some(run) = supervision::running_supervisor(coord) {
        return Err(Error::Refused {
            why: format!(
                "a supervisor already runs for this repository (pid {})",
                run.process.pid
            ),
            hint: "`git coord supervise --stop` ends it".into(),
        });
    }
    let dir = crate::ops::agent_logs::logs_dir(coord);
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("supervise.out");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)?;
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("-C")
        .arg(&coord.start_dir)
        .arg("supervise")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the supervisor outlives this command.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while supervision::running_supervisor(coord).map(|r| r.process.pid) != Some(pid) {
        if let Some(status) = child.try_wait()? {
            return Err(Error::Other(format!(
                "the supervisor ended at once ({status}); see {}",
                file.display()
            )));
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::Other(format!(
                "the supervisor (pid {pid}) did not start within 10 seconds; see {}",
                file.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = format!(
        "supervising in the background (pid {pid}), output in {}; `git coord supervise --stop` ends it",
        file.display()
    );
    say(
        out,
        json,
        serde_json::json!({ "pid": pid, "output": file.display().to_string() }),
        &text,
    )
}

fn say(out: &mut dyn Write, json: bool, value: serde_json::Value, text: &str) -> Result<()> {
    if json {
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{text}")?;
    }
    Ok(())
}
