//! `git coord logs`: launched agents' output, interleaved in time order, each line after its
//! agent's name; `-f` follows.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;

use crate::error::Result;
use crate::model::time;
use crate::ops::agent_logs::LogFollower;
use crate::ops::context::Coord;

use super::supervise::{ENDING, on_signal};

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Only these agents (default: every agent with a log)
    names: Vec<String>,
    /// Keep printing lines as they are written
    #[arg(short, long)]
    follow: bool,
    /// Only lines from this time on: a timestamp (2025-05-01T09:30:00Z) or a duration ago (10m)
    #[arg(long, value_name = "T", value_parser = parse_since)]
    since: Option<String>,
}

/// `git coord logs`: the launched agents' output, interleaved in time order, each line after
/// its agent's name.
pub fn logs(coord: &Coord, args: LogsArgs, out: &mut dyn Write, json: bool) -> Result<()> {
    for name in &args.names {
        crate::model::name::validate("agent name", name)?;
    }
    let mut follower = LogFollower::new(args.names, args.since);
    if args.follow {
        // SAFETY: the handler only stores to an atomic.
        #[allow(unsafe_code)]
        unsafe {
            for signal in [libc::SIGINT, libc::SIGTERM] {
                libc::signal(signal, on_signal as *const () as libc::sighandler_t);
            }
        }
    }
    loop {
        for line in follower.poll(coord)? {
            if json {
                writeln!(out, "{}", serde_json::to_value(&line)?)?;
            } else {
                writeln!(out, "[{}] {} {}", line.agent, line.at, line.text)?;
            }
        }
        out.flush()?;
        if !args.follow || ENDING.load(Ordering::SeqCst) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A timestamp, or a duration before now, as the timestamp it means.
fn parse_since(text: &str) -> std::result::Result<String, String> {
    if let Some(at) = time::parse(text.trim()) {
        return Ok(time::format_timestamp(at));
    }
    let ago = crate::ops::config::parse_duration(text)
        .map_err(|_| "write a timestamp (2025-05-01T09:30:00Z) or a duration (10m)".to_string())?;
    let now = jiff::Timestamp::now();
    let span = jiff::SignedDuration::try_from(ago).map_err(|e| e.to_string())?;
    now.checked_sub(span)
        .map(time::format_timestamp)
        .map_err(|e| e.to_string())
}
