//! `git coord wait`: clap arguments and output.

use std::io::Write;

use std::time::Duration;

use clap::Args;

use crate::error::Result;
use crate::ops::context::Coord;
use crate::ops::wait::{Arrival, DEFAULT_INTERVAL, WaitFor, wait};

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// An unread message for you (returns at once if one is already there)
    #[arg(long)]
    inbox: bool,
    /// A change to this task after the wait began
    #[arg(long, value_name = "ID")]
    task: Option<String>,
    /// Ready work for your role (returns at once if some is already there)
    #[arg(long)]
    ready: bool,
    /// Give up after this long (90s, 10m, 1h) with exit code 3; default: wait for ever
    #[arg(long, value_name = "DUR", value_parser = parse_duration_arg)]
    timeout: Option<Duration>,
    /// With a remote, fetch this often (default 5s; doubles after each failed fetch)
    #[arg(long, value_name = "DUR", value_parser = parse_duration_arg)]
    interval: Option<Duration>,
}

pub fn run(coord: &Coord, args: WaitArgs, out: &mut dyn Write, json: bool) -> Result<()> {
    let timeout = args.timeout;
    let interval = args.interval.unwrap_or(DEFAULT_INTERVAL);
    let nothing_named = !args.inbox && !args.ready && args.task.is_none();
    let what = WaitFor {
        inbox: args.inbox || nothing_named,
        task: args.task,
        ready: args.ready || nothing_named,
        timeout,
        interval,
    };
    let arrived = wait(coord, &what)?;
    if json {
        writeln!(out, "{}", serde_json::json!({ "arrived": arrived }))?;
        return Ok(());
    }
    for a in &arrived {
        match a {
            Arrival::Message {
                id, from, subject, ..
            } => writeln!(
                out,
                "message {id} from {from}: {subject}  (git coord read {id})"
            )?,
            Arrival::Task { task } => writeln!(
                out,
                "task {} changed: {} {}{}",
                task.id,
                task.state.as_str(),
                task.title,
                task.assignee
                    .as_deref()
                    .map(|a| format!(" (held by {a})"))
                    .unwrap_or_default()
            )?,
            Arrival::Ready {
                id,
                title,
                priority,
                ..
            } => writeln!(
                out,
                "ready {id} P{priority} {title}  (git coord task claim {id})"
            )?,
        }
    }
    Ok(())
}

/// A bad duration is a usage error (exit 2), found while the command line is read.
pub(crate) fn parse_duration_arg(text: &str) -> std::result::Result<Duration, String> {
    crate::ops::config::parse_duration(text).map_err(|e| e.to_string())
}
