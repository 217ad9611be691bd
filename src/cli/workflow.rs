//! `git coord workflow ...`: clap definitions and output.

use std::io::Write;

use clap::Subcommand;

use crate::error::Result;
use crate::ops::context::Coord;
use crate::ops::workflows;

#[derive(Subcommand, Debug)]
pub enum WorkflowCommand {
    /// Create an epic and its stage tasks from a template (feature, bugfix, or .coord/workflows/NAME.yaml)
    Start {
        template: String,
        title: String,
        /// A template variable, as {K} in its texts (repeat)
        #[arg(long = "var", value_name = "K=V", value_parser = parse_var)]
        vars: Vec<(String, String)>,
    },
    /// Stages, progress and what waits, of one workflow or all
    Status { id: Option<String> },
}

pub fn run(coord: &Coord, cmd: WorkflowCommand, out: &mut dyn Write, json: bool) -> Result<()> {
    match cmd {
        WorkflowCommand::Start {
            template,
            title,
            vars,
        } => {
            let (epic, stages) = workflows::start(coord, &template, &title, &vars)?;
            if json {
                let ids: Vec<&str> = stages.iter().map(|t| t.id.as_str()).collect();
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "id": epic.id, "title": epic.title, "tasks": ids })
                )?;
            } else {
                writeln!(
                    out,
                    "started {template} workflow {}: {}",
                    epic.id, epic.title
                )?;
                for t in &stages {
                    writeln!(
                        out,
                        "  {}  {:<10} {}",
                        t.id,
                        t.role.as_deref().unwrap_or("-"),
                        t.title
                    )?;
                }
            }
        }
        WorkflowCommand::Status { id } => {
            let list = workflows::status(coord, id.as_deref())?;
            if json {
                writeln!(out, "{}", serde_json::to_value(&list)?)?;
                return Ok(());
            }
            for w in &list {
                writeln!(
                    out,
                    "{}  {} ({}): {}/{} done, {}",
                    w.id,
                    w.title,
                    w.template,
                    w.done,
                    w.total,
                    match &w.current {
                        Some(stage) => format!("at {stage}"),
                        None => "finished".into(),
                    }
                )?;
                for s in &w.stages {
                    let mark = match s.state.as_str() {
                        "done" => "x",
                        "claimed" => ">",
                        "blocked" => "!",
                        _ => " ",
                    };
                    writeln!(
                        out,
                        "  [{mark}] {:<12} {}  {:<8} {:<10} {}",
                        s.stage,
                        s.id,
                        s.state,
                        s.assignee
                            .as_deref()
                            .or(s.role.as_deref().map(|_| "-"))
                            .unwrap_or("-"),
                        s.title
                    )?;
                    if s.sent_back > 0 {
                        writeln!(out, "      sent back {} time(s)", s.sent_back)?;
                    }
                    for r in &s.rounds {
                        writeln!(out, "      round {}: {} ({})", r.round, r.result, r.at)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// A --var that is not K=V is a usage error (exit 2), found while the command line is read.
fn parse_var(text: &str) -> std::result::Result<(String, String), String> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| "write it as K=V".to_string())
}
