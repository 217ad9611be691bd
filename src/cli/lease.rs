//! `git coord lease ...`: reserve paths, renew and release leases, list them, check paths.

use std::io::{self, Write};

use clap::Subcommand;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::model::lease::{DEFAULT_TTL, Lease, Status, parse_ttl};
use crate::ops::context::Coord;
use crate::ops::leases::{LeaseView, Leases};

#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
    /// Reserve paths (gitignore-style globs) for this agent and print the lease id
    Acquire {
        /// Paths or globs, relative to the repository root (`src/**`, `docs/`, `*.md`)
        #[arg(required = true, value_name = "GLOB")]
        globs: Vec<String>,
        /// How long the lease lasts: 90s, 30m, 2h, 1d (default 30m, at most 7d)
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl_arg)]
        ttl: Option<std::time::Duration>,
        /// Let other agents hold shared leases on the same paths
        #[arg(long)]
        shared: bool,
        /// The task this lease is for (released when the task is done)
        #[arg(long, value_name = "ID")]
        task: Option<String>,
        /// Why, for whoever finds the paths leased
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Extend one of your leases to DURATION from now
    Renew {
        id: String,
        /// How long from now: 90s, 30m, 2h, 1d (default 30m, at most 7d)
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl_arg)]
        ttl: Option<std::time::Duration>,
    },
    /// Release a lease, or all of yours with --all
    Release {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Release every lease you hold
        #[arg(long)]
        all: bool,
        /// Release a lease held by another agent
        #[arg(long, conflicts_with = "all")]
        force: bool,
    },
    /// Active leases, oldest first
    List {
        /// Also expired leases, and those released in the last day
        #[arg(long)]
        all: bool,
    },
    /// Exit 0 if this agent may touch every PATH, else name the leases in the way and exit 3
    Check {
        /// Paths relative to the repository root
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
    },
}

pub fn run(coord: &Coord, cmd: LeaseCommand, out: &mut dyn Write, json: bool) -> Result<()> {
    let leases = Leases::new(coord);
    match cmd {
        LeaseCommand::Acquire {
            globs,
            ttl,
            shared,
            task,
            reason,
        } => {
            let ttl = ttl.unwrap_or(DEFAULT_TTL);
            let lease = leases.acquire(&globs, ttl, shared, task.as_deref(), reason.as_deref())?;
            if json {
                writeln!(out, "{}", lease_json(&lease, Status::Active))?;
            } else {
                writeln!(
                    out,
                    "acquired lease {} ({}) on {} until {}",
                    lease.id,
                    lease.mode.as_str(),
                    lease.patterns.join(", "),
                    lease.expires
                )?;
            }
        }
        LeaseCommand::Renew { id, ttl } => {
            let lease = leases.renew(&id, ttl.unwrap_or(DEFAULT_TTL))?;
            if json {
                writeln!(out, "{}", lease_json(&lease, Status::Active))?;
            } else {
                writeln!(out, "renewed lease {} until {}", lease.id, lease.expires)?;
            }
        }
        LeaseCommand::Release { id, all, force } => {
            let released = match id {
                Some(id) if !all => vec![leases.release(&id, force)?],
                _ => leases.release_all()?,
            };
            if json {
                let values: Vec<Value> = released
                    .iter()
                    .map(|l| lease_json(l, Status::Released))
                    .collect();
                match (all, values.as_slice()) {
                    (false, [one]) => writeln!(out, "{one}")?,
                    _ => writeln!(out, "{}", Value::Array(values))?,
                }
            } else if released.is_empty() {
                writeln!(out, "no leases to release")?;
            } else {
                for lease in &released {
                    writeln!(
                        out,
                        "released lease {} ({})",
                        lease.id,
                        lease.patterns.join(", ")
                    )?;
                }
            }
        }
        LeaseCommand::List { all } => {
            let (views, problems) = leases.list(all)?;
            super::output::problems(crate::ops::leases::LEASES_REF, &problems);
            if json {
                let values: Vec<Value> = views
                    .iter()
                    .map(|v| lease_json(&v.lease, v.status))
                    .collect();
                writeln!(out, "{}", Value::Array(values))?;
            } else {
                for view in &views {
                    list_line(out, view, all)?;
                }
            }
        }
        LeaseCommand::Check { paths } => {
            let agent = coord.actor()?.agent;
            let conflicts = leases.check(&agent, &paths)?;
            if !conflicts.is_empty() {
                if !json {
                    for c in &conflicts {
                        writeln!(
                            out,
                            "{}: leased by {} until {} ({} lease {}, pattern '{}')",
                            c.path, c.holder, c.expires, c.mode, c.lease_id, c.pattern
                        )?;
                    }
                }
                if !json {
                    // Said once: the list is the answer, the error only counts it.
                    return Err(Error::PathsLeased {
                        count: conflicts.len(),
                    });
                }
                // The JSON form of the conflicts goes out with the error (output::error).
                return Err(Error::LeaseConflict(conflicts));
            }
            if json {
                writeln!(out, "{}", json!({ "conflicts": [] }))?;
            } else {
                writeln!(
                    out,
                    "ok: no other agent holds an exclusive lease on {}",
                    if paths.len() == 1 {
                        paths[0].clone()
                    } else {
                        format!("these {} paths", paths.len())
                    }
                )?;
            }
        }
    }
    Ok(())
}

/// A bad --ttl is a usage error (exit 2), found while the command line is read.
fn parse_ttl_arg(text: &str) -> std::result::Result<std::time::Duration, String> {
    parse_ttl(text).map_err(|e| e.to_string())
}

/// The stable JSON form of a lease: every field present, null when unset.
pub fn lease_json(lease: &Lease, status: Status) -> Value {
    json!({
        "id": lease.id,
        "agent": lease.agent,
        "human": lease.human,
        "patterns": lease.patterns,
        "mode": lease.mode.as_str(),
        "task": lease.task,
        "reason": lease.reason,
        "acquired": lease.acquired,
        "expires": lease.expires,
        "released": lease.released,
        "status": status.as_str(),
    })
}

fn list_line(out: &mut dyn Write, view: &LeaseView, all: bool) -> io::Result<()> {
    let lease = &view.lease;
    write!(out, "{}  ", lease.id)?;
    if all {
        write!(out, "{:<8}  ", view.status.as_str())?;
    }
    write!(
        out,
        "{:<9}  {:<12}  until {}  {}",
        lease.mode.as_str(),
        lease.agent,
        lease.expires,
        lease.patterns.join(", ")
    )?;
    if let Some(task) = &lease.task {
        write!(out, "  task {task}")?;
    }
    if let Some(reason) = &lease.reason {
        write!(out, "  ({reason})")?;
    }
    writeln!(out)
}
