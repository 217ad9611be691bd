//! `git coord status` (the team in a screenful, in colour on a terminal) and `git coord graph`
//! (the dependency graph as DOT or Mermaid, for other tools).

use std::io::{IsTerminal, Write};

use serde_json::json;

use crate::error::{Error, Result};
use crate::model::task::State;
use crate::ops::context::Coord;
use crate::ops::messages::clip;
use crate::ops::tasks::Tasks;
use crate::views::status::TeamStatus;

type Out<'a> = &'a mut dyn Write;

/// ANSI colours, or nothing when the output is not a terminal (or NO_COLOR is set).
struct Paint(bool);

impl Paint {
    fn detect() -> Paint {
        Paint(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
    }

    fn with(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn bold(&self, t: &str) -> String {
        self.with("1", t)
    }

    fn state(&self, s: State) -> String {
        let code = match s {
            State::Open => "36",
            State::Claimed => "33",
            State::Done => "32",
            State::Blocked => "31",
        };
        self.with(code, s.as_str())
    }
}

pub fn status(coord: &Coord, fetch: bool, out: Out, json: bool) -> Result<()> {
    let fetched = match fetch {
        true => crate::ops::online::fetch_for_view(coord)?,
        false => crate::ops::online::last_fetch(coord),
    };
    if let Some(crate::ops::online::Fetched {
        remote,
        error: Some(why),
        ..
    }) = fetched.as_ref().filter(|_| fetch)
    {
        eprintln!("warning: not fetched from {remote} ({why}); this clone's state follows");
    }
    if fetch && fetched.is_none() {
        eprintln!("warning: no coordination remote to fetch from; this clone's state follows");
    }
    let st = TeamStatus::gather(coord)?;
    let projects = crate::ops::projects::Projects::new(coord);
    let outbox = projects.outbox().unwrap_or_default();
    // Related projects' agents, as last fetched (unreadable: left out, as the outbox is).
    let related = projects.fetched_agents().unwrap_or_default();
    let me = &st.me;
    let count = |s: State| st.count(s);
    let ready = st.ready;
    let last = st.last_checkpoint.as_ref();
    if json {
        let agent_rows: Vec<_> = st
            .agents
            .iter()
            .map(|r| {
                let v = &r.view;
                let holds: Vec<&str> = r.claimed.iter().map(|(id, _)| id.as_str()).collect();
                json!({ "name": v.agent.name, "role": v.agent.role, "presence": r.presence(), "stale": v.stale, "last_seen": v.last_seen, "claimed": holds })
            })
            .collect();
        let value = json!({
            "agent": me,
            "team": st.team.state.as_str(),
            "tasks": { "open": count(State::Open), "claimed": count(State::Claimed), "blocked": count(State::Blocked), "done": count(State::Done), "ready": ready },
            "agents": agent_rows,
            "leases": st.active_leases,
            "unread": st.unread,
            "last_checkpoint": last.map(|c| json!({ "seq": c.seq, "outcome": c.outcome.as_str(), "at": c.at })),
            "workflows": st.workflows.iter().map(|w| json!({ "id": w.id, "title": w.title, "state": w.state, "done": w.done, "total": w.total, "current": w.current })).collect::<Vec<_>>(),
            "fetched": fetched,
            "outbox": outbox,
            "projects": related,
        });
        writeln!(out, "{value}")?;
        return Ok(());
    }
    let p = Paint::detect();
    writeln!(
        out,
        "{} as {me}: team {}, {} unread for you",
        p.bold("git coord"),
        match st.team.state {
            crate::ops::team::TeamState::Running => p.with("32", "running"),
            other => p.with("31", other.as_str()),
        },
        st.unread
    )?;
    if let Some(f) = &fetched {
        match &f.error {
            None => writeln!(out, "fetched from {} at {}", f.remote, f.at)?,
            Some(_) => writeln!(out, "fetch from {} failed at {}", f.remote, f.at)?,
        }
    }
    for p in &related {
        let agents: Vec<String> = p
            .agents
            .iter()
            .map(|a| format!("{} {}", a.name, a.presence))
            .collect();
        writeln!(
            out,
            "project {} (fetched {}): {}",
            p.project,
            p.fetched.as_deref().unwrap_or("never"),
            if agents.is_empty() {
                "no active agent".to_string()
            } else {
                agents.join(", ")
            }
        )?;
    }
    if !outbox.is_empty() {
        let waiting: Vec<String> = outbox
            .iter()
            .map(|q| format!("{}: {}", q.project, q.what))
            .collect();
        writeln!(
            out,
            "outbox: {} wait for their project to be reachable: {} (the next sync sends them)",
            outbox.len(),
            waiting.join(", ")
        )?;
    }
    writeln!(
        out,
        "tasks: {} {}, {} {}, {} {}, {} {}; {ready} ready",
        count(State::Open),
        p.state(State::Open),
        count(State::Claimed),
        p.state(State::Claimed),
        count(State::Blocked),
        p.state(State::Blocked),
        count(State::Done),
        p.state(State::Done)
    )?;
    writeln!(out, "{}", p.bold(&format!("agents ({}):", st.agents.len())))?;
    for r in &st.agents {
        let v = &r.view;
        let holds: Vec<String> = r
            .claimed
            .iter()
            .map(|(id, title)| format!("{id} {}", clip(title, 40)))
            .collect();
        writeln!(
            out,
            "  {:<12} {:<10} {}  {}",
            v.agent.name,
            v.agent.role,
            match r.presence() {
                "stale" => p.with("31", "stale"),
                "busy" => p.with("33", "busy "),
                word => p.with("32", &format!("{word:<5}")),
            },
            if holds.is_empty() {
                "-".to_string()
            } else {
                holds.join("; ")
            }
        )?;
    }
    writeln!(out, "leases: {} active", st.active_leases)?;
    for w in &st.workflows {
        writeln!(
            out,
            "workflow {} {}: {}, {}/{} done{}",
            w.id,
            clip(&w.title, 50),
            w.state,
            w.done,
            w.total,
            w.current
                .as_deref()
                .filter(|_| w.state == "running")
                .map(|c| format!(", at {c}"))
                .unwrap_or_default()
        )?;
    }
    match last {
        Some(c) => writeln!(
            out,
            "last checkpoint: {} {} at {} ({} merged)",
            c.seq,
            c.outcome.as_str(),
            c.at,
            c.merged.len()
        )?,
        None => writeln!(out, "last checkpoint: none")?,
    }
    Ok(())
}

pub fn graph(coord: &Coord, format: &str, no_done: bool, out: Out, json: bool) -> Result<()> {
    let tasks = Tasks::new(coord);
    let index = tasks.load_index()?;
    let mut nodes: Vec<_> = index
        .tasks()
        .filter(|t| !(no_done && t.state() == State::Done))
        .collect();
    nodes.sort_by(|a, b| a.id().cmp(b.id()));
    let shown = |id: &str| nodes.iter().any(|t| t.id() == id);
    if json {
        // The shape of the dashboard's /api/graph (docs/FORMAT.md).
        let edges: Vec<serde_json::Value> = nodes
            .iter()
            .flat_map(|t| {
                t.deps()
                    .filter(|d| shown(d))
                    .map(|d| serde_json::json!([d, t.id()]))
                    .collect::<Vec<_>>()
            })
            .collect();
        let nodes: Vec<serde_json::Value> = nodes
            .iter()
            .map(|t| serde_json::json!({ "id": t.id(), "title": t.title(), "state": t.state().as_str(), "assignee": t.assignee() }))
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({ "nodes": nodes, "edges": edges })
        )?;
        return Ok(());
    }
    match format {
        "dot" => {
            writeln!(out, "digraph tasks {{")?;
            writeln!(out, "  rankdir=LR;")?;
            writeln!(out, "  node [shape=box, style=\"rounded,filled\"];")?;
            for t in &nodes {
                let fill = match t.state() {
                    State::Open => "#e0f2fe",
                    State::Claimed => "#fef3c7",
                    State::Done => "#dcfce7",
                    State::Blocked => "#fee2e2",
                };
                writeln!(
                    out,
                    "  \"{}\" [label=\"{}\\n{} ({})\", fillcolor=\"{fill}\"];",
                    t.id(),
                    dot_escape(&clip(t.title(), 60)),
                    t.state().as_str(),
                    t.assignee().unwrap_or("-")
                )?;
            }
            for t in &nodes {
                for d in t.deps().filter(|d| shown(d)) {
                    writeln!(out, "  \"{d}\" -> \"{}\";", t.id())?;
                }
            }
            writeln!(out, "}}")?;
        }
        "mermaid" => {
            writeln!(out, "graph LR")?;
            for t in &nodes {
                writeln!(
                    out,
                    "  t{}[\"{} ({})\"]:::{}",
                    t.id(),
                    mermaid_escape(&clip(t.title(), 60)),
                    t.state().as_str(),
                    t.state().as_str()
                )?;
            }
            for t in &nodes {
                for d in t.deps().filter(|d| shown(d)) {
                    writeln!(out, "  t{d} --> t{}", t.id())?;
                }
            }
            writeln!(out, "  classDef open fill:#e0f2fe;")?;
            writeln!(out, "  classDef claimed fill:#fef3c7;")?;
            writeln!(out, "  classDef done fill:#dcfce7;")?;
            writeln!(out, "  classDef blocked fill:#fee2e2;")?;
        }
        other => {
            return Err(Error::invalid("format", other, "use dot or mermaid"));
        }
    }
    Ok(())
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;").replace(['[', ']', '<', '>'], " ")
}
