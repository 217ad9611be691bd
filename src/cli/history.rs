//! `git coord log --agent NAME`: an agent's code and coordination commits.

use std::io::Write;

use crate::error::Result;
use crate::ops::context::Coord;
use crate::ops::history;
use crate::ops::tasks::Tasks;

pub fn agent_log(
    coord: &Coord,
    agent: &str,
    task: Option<&str>,
    max_count: Option<usize>,
    out: &mut dyn Write,
    json: bool,
) -> Result<()> {
    let task = task.map(|t| Tasks::new(coord).resolve_now(t)).transpose()?;
    let mut entries = history::agent_log(coord, agent, None)?;
    if let Some(task) = &task {
        entries.retain(|e| e.tasks.contains(task));
    }
    if let Some(n) = max_count {
        entries.truncate(n);
    }
    if json {
        writeln!(out, "{}", serde_json::to_value(&entries)?)?;
        return Ok(());
    }
    if entries.is_empty() {
        writeln!(out, "nothing by {agent}")?;
    }
    for e in &entries {
        let tasks = if e.tasks.is_empty() {
            String::new()
        } else {
            format!("  [{}]", e.tasks.join(", "))
        };
        writeln!(
            out,
            "{} {}  {:<12} {:<22} {}{tasks}",
            &e.commit[..10],
            e.at,
            e.kind,
            e.on,
            e.subject
        )?;
    }
    Ok(())
}

/// The lines `agent show` adds for an agent spawned again: what it did before.
pub fn earlier_work(
    out: &mut dyn Write,
    agent: &crate::model::agent::Agent,
    earlier: &history::EarlierWork,
) -> Result<()> {
    for e in &agent.history {
        writeln!(
            out,
            "changed:   {} {} by {}{}",
            e.at,
            e.op,
            e.by,
            e.note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        )?;
    }
    if earlier.is_empty() {
        return Ok(());
    }
    writeln!(out, "before this spawn, {} did:", agent.name)?;
    for line in earlier.lines(5) {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}
