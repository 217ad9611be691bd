//! `sync`, `fetch`, `push` and `project`: clap definitions and output.

use std::io::Write;

use clap::Subcommand;
use serde_json::json;

use crate::error::Result;
use crate::ops::context::Coord;
use crate::ops::notices::Notices;
use crate::ops::projects::{Followed, Projects};
use crate::remote::{self as core, RefReport, resolve_remote};

type Out<'a> = &'a mut dyn Write;

#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    /// Record a related project in this clone (`projects:` in .coord.yaml records it for all)
    Add {
        name: String,
        url: String,
        /// Confirm a new URL for a project this clone fetched from another: its tasks here are
        /// dropped and fetched afresh from URL
        #[arg(long)]
        replace: bool,
    },
    /// The related projects: name, URL, identity, where recorded, when last fetched
    List,
    /// Forget a related project
    Rm { name: String },
}

pub fn sync(coord: &Coord, remote: Option<&str>, out: Out, json: bool) -> Result<()> {
    coord.check_config()?; // read by the projects it follows last
    let remote = resolve_remote(&coord.repo, remote)?;
    let report = core::sync(&coord.repo, &remote, &Notices::new(coord))?;
    let presence = share_presence(coord, &remote, true);
    let followed = Projects::new(coord).follow()?;
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["presence"] = presence_json(&presence);
        value["projects"] = serde_json::to_value(&followed)?;
        writeln!(out, "{value}")?;
        return refused_presence(presence);
    }
    writeln!(
        out,
        "synced with {} ({} round{})",
        report.remote,
        report.tries,
        if report.tries == 1 { "" } else { "s" }
    )?;
    refs(out, &report.refs)?;
    presence_line(out, &presence)?;
    if report.notices > 0 {
        writeln!(
            out,
            "  {} conflict(s) settled; the agents who lost were told in their inbox",
            report.notices
        )?;
    }
    let mut err = std::io::stderr().lock();
    for path in &report.malformed {
        writeln!(
            err,
            "warning: {path} could not be read on either side; kept as found"
        )?;
    }
    drop(err);
    projects_followed(out, &followed)?;
    refused_presence(presence)
}

/// A remote that refuses presence on purpose fails the sync once everything else is reported:
/// without presence there, other clones would take this clone's live agents' tasks over.
fn refused_presence(presence: Result<crate::remote::presence::Exchanged>) -> Result<()> {
    match presence {
        Err(e) if crate::remote::presence::is_refusal(&e) => Err(e),
        _ => Ok(()),
    }
}

/// One line per related project a sync or fetch followed; one warning per one it could not.
fn projects_followed(out: Out, followed: &[Followed]) -> Result<()> {
    for f in followed {
        super::output::skipped_in_projects(&f.skipped);
        for warning in &f.warnings {
            writeln!(
                std::io::stderr(),
                "warning: project {}: {warning}",
                f.project
            )?;
        }
        match &f.error {
            None => writeln!(
                out,
                "  project {:<16} fetched ({} notice{}{}{})",
                f.project,
                f.notices,
                if f.notices == 1 { "" } else { "s" },
                match f.recovered {
                    0 => String::new(),
                    n => format!(
                        "; {n} interrupted filing{} found there and recorded",
                        if n == 1 { "" } else { "s" }
                    ),
                },
                match f.sent {
                    0 => String::new(),
                    n => format!("; {n} queued message(s) and comment(s) sent there"),
                }
            )?,
            Some(why) => writeln!(
                std::io::stderr(),
                "warning: {why}; its tasks here keep their last fetched state"
            )?,
        }
    }
    Ok(())
}

pub fn fetch(coord: &Coord, remote: Option<&str>, out: Out, json: bool) -> Result<()> {
    coord.check_config()?; // read by the projects it follows last
    let remote = resolve_remote(&coord.repo, remote)?;
    let done = core::fetch_and_merge(&coord.repo, &remote, &Notices::new(coord))?;
    if let Err(e) = share_presence(coord, &remote, false) {
        eprintln!("warning: presence not fetched: {e}");
    }
    let followed = Projects::new(coord).follow()?;
    if json {
        writeln!(
            out,
            "{}",
            json!({ "remote": remote.name, "refs": done, "projects": followed })
        )?;
        return Ok(());
    }
    report(
        out,
        false,
        &format!("fetched from {}", remote.name),
        &remote.name.to_string(),
        &done,
    )?;
    projects_followed(out, &followed)
}

pub fn push(coord: &Coord, remote: Option<&str>, out: Out, json: bool) -> Result<()> {
    let remote = resolve_remote(&coord.repo, remote)?;
    let done = core::push_only(&coord.repo, &remote)?;
    crate::ops::presence::Presence::new(coord, crate::ops::presence::stale_after(coord))
        .share_pending(&remote);
    report(
        out,
        json,
        &format!("pushed to {}", remote.name),
        &remote.name.to_string(),
        &done,
    )
}

fn report(out: Out, json: bool, headline: &str, remote: &str, done: &[RefReport]) -> Result<()> {
    if json {
        writeln!(out, "{}", json!({ "remote": remote, "refs": done }))?;
        return Ok(());
    }
    writeln!(out, "{headline}")?;
    refs(out, done)
}

fn refs(out: Out, refs: &[RefReport]) -> Result<()> {
    for r in refs {
        writeln!(out, "  {:<24} {}", r.refname, r.action)?;
    }
    Ok(())
}

pub fn project(coord: &Coord, cmd: ProjectCommand, out: Out, json: bool) -> Result<()> {
    let projects = Projects::new(coord);
    match cmd {
        ProjectCommand::Add { name, url, replace } => {
            let p = projects.add(&name, &url, replace)?;
            if json {
                writeln!(out, "{}", serde_json::to_value(&p)?)?;
            } else {
                writeln!(out, "recorded project {} at {} ({})", p.name, p.url, p.id)?;
            }
        }
        ProjectCommand::List => {
            let list = projects.list()?;
            let mut switched = Vec::new();
            for p in &list {
                switched.push(projects.switched_from(p)?);
            }
            if json {
                let mut value = serde_json::to_value(&list)?;
                if let Some(items) = value.as_array_mut() {
                    for (item, from) in items.iter_mut().zip(&switched) {
                        if let Some(from) = from {
                            item["switched_from"] = json!(from);
                        }
                    }
                }
                writeln!(out, "{value}")?;
            } else {
                for (p, from) in list.iter().zip(&switched) {
                    writeln!(
                        out,
                        "{:<16} {}  id {}  from {}  fetched {}",
                        p.name,
                        p.url,
                        p.id,
                        p.source,
                        p.fetched.as_deref().unwrap_or("never")
                    )?;
                    if let Some(from) = from {
                        writeln!(
                            out,
                            "{:<16} its tasks here came from {from}: nothing is fetched from the new URL until `git coord project add {} {} --replace` confirms it",
                            "", p.name, p.url
                        )?;
                    }
                }
            }
        }
        ProjectCommand::Rm { name } => {
            projects.remove(&name)?;
            if json {
                writeln!(out, "{}", json!({ "removed": name }))?;
            } else {
                writeln!(out, "forgot project {name}")?;
            }
        }
    }
    Ok(())
}

/// Presence goes with every sync (ops/presence.rs); its failure never fails the sync.
fn share_presence(
    coord: &Coord,
    remote: &crate::remote::Remote,
    push: bool,
) -> Result<crate::remote::presence::Exchanged> {
    // Called after the sync's or fetch's own fetch of every coordination ref, presence too.
    crate::ops::presence::Presence::new(coord, crate::ops::presence::stale_after(coord))
        .share_fetched(remote, push)
}

fn presence_json(presence: &Result<crate::remote::presence::Exchanged>) -> serde_json::Value {
    match presence {
        Ok(p) => json!({ "refname": crate::store::PRESENCE_REF, "action": p.action }),
        Err(e) => {
            json!({ "refname": crate::store::PRESENCE_REF, "action": "failed", "error": e.to_string() })
        }
    }
}

fn presence_line(out: Out, presence: &Result<crate::remote::presence::Exchanged>) -> Result<()> {
    match presence {
        Ok(p) => writeln!(out, "  {:<24} {}", crate::store::PRESENCE_REF, p.action)?,
        Err(e) if crate::remote::presence::is_refusal(e) => writeln!(
            out,
            "  {:<24} refused by the remote (below)",
            crate::store::PRESENCE_REF
        )?,
        Err(e) => writeln!(
            out,
            "  {:<24} not shared ({e}); it goes out with the next sync that reaches the remote",
            crate::store::PRESENCE_REF
        )?,
    }
    Ok(())
}
