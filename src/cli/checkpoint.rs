//! `git coord checkpoint ...`: clap definitions and output.

use std::io::Write;

use clap::{Args, Subcommand};

use crate::error::{Error, Result};
use crate::model::checkpoint::{Checkpoint, Outcome};
use crate::ops::checkpoints::{Checkpoints, Report, Request};
use crate::ops::context::Coord;

type Out<'a> = &'a mut dyn Write;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CheckpointArgs {
    #[command(subcommand)]
    command: Option<CheckpointCommand>,
    /// The branch to merge into (default: the integration branch)
    #[arg(long, value_name = "BRANCH")]
    into: Option<String>,
    /// Only these agents' branches (comma-separated)
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "A,B",
        conflicts_with = "tasks"
    )]
    agents: Vec<String>,
    /// The branches of these tasks' assignees (comma-separated ids)
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    tasks: Vec<String>,
    /// A gate command, run with `sh -c` on the merged result (repeat; default: `gates` of .coord.yaml)
    #[arg(long = "gate", value_name = "CMD")]
    gates: Vec<String>,
    /// Merge in memory and report; run no gate, move nothing, record nothing
    #[arg(long)]
    dry_run: bool,
    /// Afterwards bring the merged agents' branches up to the new integration tip
    #[arg(long)]
    refresh: bool,
}

#[derive(Subcommand, Debug)]
pub enum CheckpointCommand {
    /// Every checkpoint, oldest first
    List,
    /// One checkpoint whole
    Show { seq: u64 },
    /// Put the integration branch back to the state after checkpoint SEQ, or with --undo revert
    /// what checkpoint SEQ brought in (a new commit either way; no commit is lost)
    Rollback {
        seq: u64,
        /// Undo checkpoint SEQ alone: revert the changes it brought in, keeping every later
        /// commit's (refused when they conflict)
        #[arg(long)]
        undo: bool,
        /// Roll back even though commits that no checkpoint made came after SEQ: their changes
        /// are dropped (the commits stay in the history)
        #[arg(long, conflicts_with = "undo")]
        force: bool,
    },
}

pub fn run(coord: &Coord, a: CheckpointArgs, out: Out, json: bool) -> Result<()> {
    let checkpoints = Checkpoints::new(coord);
    match a.command {
        Some(CheckpointCommand::List) => {
            let (list, problems) = checkpoints.list()?;
            for p in problems {
                eprintln!("warning: skipped {p}");
            }
            if json {
                writeln!(out, "{}", serde_json::to_value(&list)?)?;
            } else {
                for c in &list {
                    line(out, c)?;
                }
            }
            Ok(())
        }
        Some(CheckpointCommand::Show { seq }) => {
            let c = checkpoints.show(seq)?;
            if json {
                writeln!(out, "{}", serde_json::to_value(&c)?)?;
            } else {
                whole(out, &c)?;
            }
            Ok(())
        }
        Some(CheckpointCommand::Rollback { seq, undo, force }) => {
            let c = checkpoints.rollback(seq, undo, force)?;
            if json {
                writeln!(out, "{}", serde_json::to_value(&c)?)?;
                return Ok(());
            }
            let commit = short(c.after.as_deref().unwrap_or_default());
            if undo {
                writeln!(
                    out,
                    "checkpoint {seq} is undone on {}: commit {commit} reverts its changes, every later commit's are kept; recorded as checkpoint {}",
                    c.into, c.seq
                )?;
            } else {
                writeln!(
                    out,
                    "{} is back to the state after checkpoint {seq} (commit {commit}); recorded as checkpoint {}",
                    c.into, c.seq
                )?;
            }
            for d in &c.dropped {
                writeln!(
                    out,
                    "dropped the changes of {} {}",
                    short(&d.commit),
                    d.subject
                )?;
            }
            Ok(())
        }
        None => {
            let req = Request {
                into: a.into,
                agents: a.agents,
                tasks: a.tasks,
                gates: (!a.gates.is_empty()).then_some(a.gates),
                dry_run: a.dry_run,
                refresh: a.refresh,
            };
            let mut err = std::io::stderr();
            let report = checkpoints.run(&req, &mut |step| {
                let _ = writeln!(err, "checkpoint: {step}");
            })?;
            for warning in &report.warnings {
                eprintln!("warning: {warning}");
            }
            if json {
                writeln!(out, "{}", serde_json::to_value(&report)?)?;
            } else {
                summary(out, &report)?;
            }
            match report.checkpoint.outcome {
                Outcome::GatesFailed => Err(Error::Other(format!(
                    "a gate failed: {} was not moved (checkpoint {}){}",
                    report.checkpoint.into,
                    report.checkpoint.seq,
                    if report.breaker.is_some() {
                        "; the breaker tripped (the organiser is told what it paused)"
                    } else {
                        ""
                    }
                ))),
                Outcome::BranchMoved => Err(Error::Contended {
                    refname: format!("refs/heads/{}", report.checkpoint.into),
                    attempts: 1,
                }),
                _ => Ok(()),
            }
        }
    }
}

fn short(oid: &str) -> &str {
    &oid[..oid.len().min(12)]
}

fn line(out: Out, c: &Checkpoint) -> std::io::Result<()> {
    let what = match c.rollback_of {
        Some(n) => format!("rollback to {n}"),
        None => format!(
            "{} merged, {} left out",
            c.merged.len(),
            c.conflicts.len() + c.lease_refusals.len()
        ),
    };
    writeln!(
        out,
        "{:>4}  {}  {:<16}  {} -> {}  {what}  by {}",
        c.seq,
        c.at,
        c.outcome.as_str(),
        short(&c.before),
        short(c.after.as_deref().unwrap_or("-")),
        c.by
    )
}

fn whole(out: Out, c: &Checkpoint) -> std::io::Result<()> {
    writeln!(out, "checkpoint {}  {}", c.seq, c.outcome.as_str())?;
    fields(out, c, "after:  ")
}

fn fields(out: Out, c: &Checkpoint, after_label: &str) -> std::io::Result<()> {
    writeln!(out, "into:    {}", c.into)?;
    writeln!(out, "before:  {}", c.before)?;
    if let Some(after) = &c.after {
        writeln!(out, "{after_label} {after}")?;
    }
    writeln!(out, "at:      {} by {}", c.at, c.by)?;
    if let Some(n) = c.rollback_of {
        writeln!(out, "rollback of checkpoint {n}")?;
    }
    for m in &c.merged {
        writeln!(
            out,
            "merged:  {} ({}) of {}",
            m.branch,
            short(&m.commit),
            m.agent
        )?;
    }
    for x in &c.conflicts {
        writeln!(
            out,
            "left out: {} ({}): conflicts in {}{}",
            x.branch,
            short(&x.commit),
            x.paths.join(", "),
            x.resolve_task
                .as_deref()
                .map(|t| format!("; task {t}"))
                .unwrap_or_default()
        )?;
    }
    for x in &c.lease_refusals {
        writeln!(
            out,
            "left out: {} ({}): it changes paths leased to other agents",
            x.branch,
            short(&x.commit),
        )?;
        for b in &x.breaches {
            writeln!(
                out,
                "    {}: leased to {} until {} (lease {}, pattern '{}'); changed by {} {}",
                b.path,
                b.holder,
                b.until,
                b.lease,
                b.pattern,
                short(&b.commit),
                b.subject
            )?;
        }
    }
    if !c.tasks.is_empty() {
        writeln!(out, "tasks:   {}", c.tasks.join(", "))?;
    }
    for g in &c.gates {
        writeln!(
            out,
            "gate:    {} {} ({:.1}s)",
            if g.passed { "passed" } else { "FAILED" },
            g.command,
            g.seconds
        )?;
        if !g.passed {
            for l in g.output_tail.lines() {
                writeln!(out, "    {l}")?;
            }
        }
    }
    Ok(())
}

fn summary(out: Out, r: &Report) -> std::io::Result<()> {
    let c = &r.checkpoint;
    if r.recorded {
        whole(out, c)?;
    } else {
        // Nothing happened: say what would, never `moved`.
        let would = match c.outcome {
            Outcome::NothingToMerge => "nothing to merge".to_string(),
            _ if c.merged.is_empty() => format!("would not move {}", c.into),
            _ => format!("would move {} once the gates pass", c.into),
        };
        writeln!(
            out,
            "dry run: {would} (no gate was run; nothing was moved or recorded)"
        )?;
        fields(out, c, "result: ")?;
    }
    for d in &r.diffs {
        writeln!(
            out,
            "\n{} ({}), on {}:\n{}",
            d.path, d.agent, c.into, d.integration
        )?;
        writeln!(
            out,
            "{} ({}), on the agent's branch:\n{}",
            d.path, d.agent, d.branch
        )?;
    }
    for (agent, what) in &r.refreshed {
        writeln!(out, "refreshed {agent}: {what}")?;
    }
    for what in &r.waiting {
        writeln!(out, "waiting: {what}; the organiser was told")?;
    }
    if let Some(why) = &r.breaker {
        writeln!(
            out,
            "{why}: the team is paused and the organiser was told (`git coord resume` when it is fixed)"
        )?;
    }
    Ok(())
}
