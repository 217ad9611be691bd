//! `git coord agent ...`, `whoami` and `roles`: clap definitions and output.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use crate::error::Result;
use crate::model::agent::{Agent, AgentStatus};
use crate::ops::agents::{AgentView, Agents, Spawn};
use crate::ops::config::normalize_remote_url;
use crate::ops::context::Coord;
use crate::ops::presence::LastSeen;
use crate::views::status::{AgentRow, agent_rows};

#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Create an agent: its branch agent/NAME, its worktree and its registration
    Spawn {
        name: String,
        /// The agent's role (see `git coord roles`)
        #[arg(long)]
        role: String,
        /// Start the branch here instead of the integration branch
        #[arg(long, value_name = "REF")]
        base: Option<String>,
        /// Put the worktree here (default: ../<repo>.agents/NAME beside the main worktree)
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
        /// Start the role's command (from .coord.yaml), or --command, in the new worktree, detached
        #[arg(long)]
        launch: bool,
        /// With --launch: start this instead of the role's command (run with `sh -c`)
        #[arg(long, value_name = "CMD", requires = "launch")]
        command: Option<String>,
    },
    /// Start the agent's role command in its worktree, detached, output in .git/coord/logs/NAME.log
    Launch {
        name: String,
        /// Start this instead of the role's command (run with `sh -c`)
        #[arg(long, value_name = "CMD")]
        command: Option<String>,
    },
    /// End the process `--launch` started for the agent
    Stop { name: String },
    /// Run CMD for agent NAME in the foreground, its output stamped into the agent's log (what
    /// `--launch` and `supervise` start, detached, in the agent's worktree)
    #[command(hide = true)]
    Run {
        name: String,
        #[arg(long, value_name = "CMD")]
        command: String,
    },
    /// Pause agents: their claims are refused, their stop hooks let them stop, `supervise` stops
    /// them and does not launch them again
    Pause {
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Let paused agents take work again
    Resume {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List agents with role, branch and presence
    List {
        /// Retired agents too
        #[arg(long)]
        all: bool,
        /// A related project's agents instead, from this clone's last fetch of it (a sync
        /// fetches it), or fetched now with --fetch
        #[arg(long, value_name = "NAME", conflicts_with = "all")]
        project: Option<String>,
        /// With --project: fetch its agents and presence first
        #[arg(long, requires = "project")]
        fetch: bool,
    },
    /// Show one agent (and, spawned again, what it did before)
    Show { name: String },
    /// Change an agent's role (its next brief, ready and stop hook follow it)
    Edit {
        name: String,
        /// The new role (see `git coord roles`)
        #[arg(long)]
        role: String,
    },
    /// Record that the acting agent is alive and share it through the remote (every command an
    /// agent runs records one too, at most every quarter of stale_after)
    Heartbeat,
    /// Join the team in place: this worktree or clone acts as agent NAME, no new branch or
    /// worktree (`retire` undoes it and keeps the checkout)
    Register {
        name: String,
        /// The agent's role (see `git coord roles`)
        #[arg(long)]
        role: String,
    },
    /// Bring an agent's branch up to the integration branch (when its worktree has no changes)
    Refresh { name: String },
    /// Remove an agent's worktree and mark it retired (the branch is kept)
    Retire {
        name: String,
        /// Drop uncommitted changes and unmerged commits' worktree anyway
        #[arg(long)]
        force: bool,
        /// Delete the branch too
        #[arg(long)]
        delete_branch: bool,
    },
}

pub fn run(coord: &Coord, cmd: AgentCommand, out: &mut dyn Write, json: bool) -> Result<()> {
    let agents = Agents::new(coord)?;
    match cmd {
        AgentCommand::Spawn {
            name,
            role,
            base,
            path,
            launch,
            command,
        } => {
            // Refused before anything is spawned.
            if launch && command.is_none() && agents.config().role(&role)?.command.is_none() {
                return Err(crate::ops::launch::no_command(&role));
            }
            if launch && let Some(run) = crate::ops::launch::running(coord, &name) {
                return Err(crate::ops::launch::already_runs(&name, run.process.pid));
            }
            let agent = agents.spawn(&Spawn {
                name,
                role,
                base,
                path,
            })?;
            let launched = if launch {
                Some(
                    crate::ops::agents::Agents::new(coord)?
                        .launch(&agent.name, command.as_deref())?,
                )
            } else {
                None
            };
            if json {
                let mut value = serde_json::to_value(&agent)?;
                value["launched"] = serde_json::to_value(&launched)?;
                writeln!(out, "{value}")?;
            } else {
                if let Some(l) = &launched {
                    writeln!(
                        out,
                        "launched '{}' as pid {}, output in {}",
                        l.command, l.pid, l.log
                    )?;
                }
                writeln!(
                    out,
                    "spawned {} ({}) on branch {} in {}",
                    agent.name,
                    agent.role,
                    agent.branch.as_deref().unwrap_or("-"),
                    agent.worktree.as_deref().unwrap_or("-")
                )?;
                writeln!(
                    out,
                    "commands run in that worktree act as {} with no flag",
                    agent.name
                )?;
            }
        }
        AgentCommand::List {
            project: Some(project),
            fetch,
            ..
        } => {
            let found = crate::ops::projects::Projects::new(coord).agents(&project, fetch)?;
            if json {
                writeln!(out, "{}", serde_json::to_value(&found)?)?;
            } else {
                writeln!(
                    out,
                    "project {} ({}), fetched {}",
                    found.project,
                    found.url,
                    found.fetched.as_deref().unwrap_or("never")
                )?;
                for a in &found.agents {
                    writeln!(
                        out,
                        "{:<16} {:<10} {:<6} last seen {}{}",
                        a.name,
                        a.role,
                        a.presence,
                        a.last_seen.as_deref().unwrap_or("never"),
                        match a.claimed.as_slice() {
                            [] => String::new(),
                            held => format!("  holds {}", held.join(", ")),
                        }
                    )?;
                }
            }
        }
        AgentCommand::List { all, .. } => {
            let (rows, problems) = crate::views::status::agents_with_claims(coord, all)?;
            for p in problems {
                eprintln!("warning: skipped {p}");
            }
            if json {
                let list: Vec<serde_json::Value> =
                    rows.iter().map(row_json).collect::<Result<_>>()?;
                writeln!(out, "{}", serde_json::Value::Array(list))?;
            } else {
                for row in &rows {
                    line(out, row)?;
                }
            }
        }
        AgentCommand::Show { name } => {
            let view = agents.show(&name)?;
            let earlier = crate::ops::history::earlier_work(coord, &view.agent)?;
            if json {
                let index = crate::ops::tasks::Tasks::new(coord).load_index()?;
                let row = agent_rows(&index, vec![view.clone()])
                    .pop()
                    .expect("one row per view");
                let mut value = row_json(&row)?;
                value["earlier_work"] = serde_json::to_value(&earlier)?;
                writeln!(out, "{value}")?;
            } else {
                show(coord, out, &view, false)?;
                super::history::earlier_work(out, &view.agent, &earlier)?;
            }
        }
        AgentCommand::Edit { name, role } => {
            let agent = crate::ops::agent_role::change_role(coord, &name, &role)?;
            if json {
                writeln!(out, "{}", serde_json::to_value(&agent)?)?;
            } else {
                writeln!(out, "{name} now has role {}", agent.role)?;
            }
        }
        AgentCommand::Heartbeat => {
            let me = coord.actor()?.agent;
            let (view, unshared) = agents.heartbeat(&me)?;
            if let Some(why) = &unshared {
                eprintln!(
                    "warning: heartbeat kept here, not shared ({why}); it goes out with the next `git coord sync` or online write"
                );
            }
            show(coord, out, &view, json)?;
        }
        AgentCommand::Register { name, role } => {
            let agent = agents.register(&name, &role)?;
            if json {
                writeln!(out, "{}", serde_json::to_value(&agent)?)?;
            } else {
                writeln!(
                    out,
                    "registered {} ({}) in place: {}",
                    agent.name,
                    agent.role,
                    agent.worktree.as_deref().unwrap_or("-")
                )?;
                writeln!(
                    out,
                    "commands run here act as {}; `git coord agent retire {}` undoes it and keeps your work",
                    agent.name, agent.name
                )?;
            }
        }
        AgentCommand::Launch { name, command } => {
            let l = crate::ops::agents::Agents::new(coord)?.launch(&name, command.as_deref())?;
            if json {
                writeln!(out, "{}", serde_json::to_value(&l)?)?;
            } else {
                writeln!(
                    out,
                    "launched '{}' for {name} as pid {}, output in {}",
                    l.command, l.pid, l.log
                )?;
            }
        }
        AgentCommand::Stop { name } => {
            let pid = crate::ops::launch::stop(coord, &name)?;
            if json {
                writeln!(out, "{}", json!({ "agent": name, "stopped": pid }))?;
            } else {
                writeln!(out, "stopped {name} (pid {pid})")?;
            }
        }
        AgentCommand::Run { name, command } => {
            // Its exit code is the runner's, not the command's: `run/NAME.exit` has that.
            crate::ops::launch::run_attended(coord, &name, &command)?;
        }
        AgentCommand::Pause { names, reason } => {
            let reason = reason.unwrap_or_else(|| "no reason given".into());
            for name in names {
                let agent = crate::ops::agent_pause::pause(coord, &name, &reason)?;
                if json {
                    writeln!(out, "{}", serde_json::to_value(&agent)?)?;
                } else {
                    writeln!(
                        out,
                        "{name} paused: its claims are refused and its stop hook lets it stop; `git coord agent resume {name}` undoes it"
                    )?;
                }
            }
        }
        AgentCommand::Resume { names } => {
            for name in names {
                let agent = crate::ops::agent_pause::resume(coord, &name)?;
                if json {
                    writeln!(out, "{}", serde_json::to_value(&agent)?)?;
                } else {
                    writeln!(out, "{name} resumed: it may claim again")?;
                }
            }
        }
        AgentCommand::Refresh { name } => {
            let what = crate::ops::checkpoints::Checkpoints::new(coord).refresh(&name)?;
            if json {
                writeln!(out, "{}", json!({ "agent": name, "refreshed": what }))?;
            } else {
                writeln!(out, "{name}: {what}")?;
            }
        }
        AgentCommand::Retire {
            name,
            force,
            delete_branch,
        } => {
            let agent = agents.retire(&name, force, delete_branch)?;
            if json {
                writeln!(out, "{}", serde_json::to_value(&agent)?)?;
            } else {
                let kept = if delete_branch { "deleted" } else { "kept" };
                match agent.branch.as_deref() {
                    Some(branch) => writeln!(
                        out,
                        "retired {}: worktree removed, branch {branch} {kept}",
                        agent.name
                    )?,
                    // Registered in place: its checkout is someone's own, and stays.
                    None => writeln!(
                        out,
                        "retired {}: it worked in place, so its checkout {} and its files stay; it no longer acts as {} there",
                        agent.name,
                        agent.worktree.as_deref().unwrap_or("-"),
                        agent.name
                    )?,
                }
            }
        }
    }
    Ok(())
}

/// An agent as `agent list --json` and `agent show --json` give it: its registration, its
/// presence word, when and where it was last seen, and what it holds.
fn row_json(row: &AgentRow) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(&row.view)?;
    value["presence"] = json!(row.presence());
    value["claimed"] = json!(
        row.claimed
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>()
    );
    value["last_claimed"] = serde_json::to_value(&row.last_claimed)?;
    value["last_done"] = serde_json::to_value(&row.last_done)?;
    Ok(value)
}

fn line(out: &mut dyn Write, row: &AgentRow) -> Result<()> {
    let a = &row.view.agent;
    writeln!(
        out,
        "{:<16} {:<10} {:<8} {:<24} seen {}{}",
        a.name,
        a.role,
        row.presence(),
        a.branch.as_deref().unwrap_or("(in place)"),
        LastSeen::describe(row.view.last_seen.as_ref()),
        match &row.last_done {
            Some(last) => format!("; last done {} at {}", last.id, last.at),
            None => String::new(),
        }
    )?;
    Ok(())
}

fn show(coord: &Coord, out: &mut dyn Write, view: &AgentView, json: bool) -> Result<()> {
    let index = crate::ops::tasks::Tasks::new(coord).load_index()?;
    let row = agent_rows(&index, vec![view.clone()])
        .pop()
        .expect("one row per view");
    if json {
        writeln!(out, "{}", row_json(&row)?)?;
        return Ok(());
    }
    let a: &Agent = &view.agent;
    writeln!(out, "{}  ({})", a.name, row.presence())?;
    writeln!(out, "role:      {}", a.role)?;
    writeln!(out, "human:     {}", a.human)?;
    writeln!(
        out,
        "branch:    {}",
        a.branch.as_deref().unwrap_or("- (joined in place)")
    )?;
    writeln!(out, "worktree:  {}", a.worktree.as_deref().unwrap_or("-"))?;
    if !a.capabilities.is_empty() {
        writeln!(out, "can:       {}", a.capabilities.join(", "))?;
    }
    writeln!(out, "created:   {} by {}", a.created, a.created_by)?;
    writeln!(
        out,
        "seen:      {}",
        LastSeen::describe(view.last_seen.as_ref())
    )?;
    for (id, title) in &row.claimed {
        writeln!(out, "holds:     {id} {title}")?;
    }
    if let Some(last) = &row.last_claimed {
        writeln!(
            out,
            "claimed:   {} {} (at {})",
            last.id, last.title, last.at
        )?;
    }
    if let Some(last) = &row.last_done {
        writeln!(
            out,
            "finished:  {} {} (at {})",
            last.id, last.title, last.at
        )?;
    }
    if let Some(pause) = &a.paused {
        writeln!(
            out,
            "paused:    {} (by {} at {})",
            pause.reason, pause.by, pause.at
        )?;
    }
    if let Some(retired) = &a.retired {
        writeln!(out, "retired:   {retired}")?;
    }
    Ok(())
}

/// `git coord whoami`: who acts here, as what, where, for which project.
pub fn whoami(coord: &Coord, out: &mut dyn Write, json: bool) -> Result<()> {
    let (actor, source) = coord.identity()?;
    let agents = Agents::new(coord)?;
    let registered = agents.get(&actor.agent)?;
    let remote = coord.repo.config_string("remote.origin.url");
    let project = crate::ops::config::project_id(remote.as_deref(), &coord.repo.common_dir());
    let worktree = coord.repo.workdir().map(|p| p.display().to_string());
    let view = match &registered {
        Some(_) => Some(agents.show(&actor.agent)?),
        None => None,
    };
    let row = match view {
        Some(v) => {
            let index = crate::ops::tasks::Tasks::new(coord).load_index()?;
            agent_rows(&index, vec![v]).pop()
        }
        None => None,
    };
    let stale = row.as_ref().is_some_and(|r| r.view.stale);
    let presence = row.as_ref().map(|r| r.presence());
    let last_seen = row.as_ref().and_then(|r| r.view.last_seen.clone());
    if json {
        let value = json!({
            "agent": actor.agent,
            "source": source,
            "human": actor.human,
            "registered": registered.is_some(),
            "role": registered.as_ref().map(|a| a.role.clone()),
            "branch": registered.as_ref().and_then(|a| a.branch.clone()),
            "status": registered.as_ref().map(|a| a.status),
            "stale": stale,
            "presence": presence,
            "last_seen": last_seen,
            "worktree": worktree,
            "project": project,
            "remote": remote.as_deref().and_then(normalize_remote_url),
        });
        writeln!(out, "{value}")?;
        return Ok(());
    }
    let how = match source {
        crate::ops::context::IdentitySource::Flag => "from --agent",
        crate::ops::context::IdentitySource::Environment => "from GIT_COORD_AGENT",
        crate::ops::context::IdentitySource::Worktree => "this worktree's agent",
        crate::ops::context::IdentitySource::GitUser => "from git user.name",
    };
    writeln!(out, "{} ({how}), for {}", actor.agent, actor.human)?;
    match &registered {
        Some(a) => writeln!(
            out,
            "role {} on branch {}{}",
            a.role,
            a.branch.as_deref().unwrap_or("- (joined in place)"),
            if a.status == AgentStatus::Retired {
                " (retired)"
            } else {
                ""
            }
        )?,
        None => writeln!(
            out,
            "not a registered agent (`git coord agent register NAME --role ROLE` joins here, `agent spawn` makes a new worktree)"
        )?,
    }
    if let Some(word) = presence {
        writeln!(
            out,
            "{word}, last seen {}",
            LastSeen::describe(last_seen.as_ref())
        )?;
    }
    writeln!(
        out,
        "worktree {}",
        worktree.as_deref().unwrap_or("(none: bare repository)")
    )?;
    writeln!(out, "project {project}")?;
    Ok(())
}

/// `git coord roles`: the roles of this project, from .coord.yaml or the defaults.
pub fn roles(coord: &Coord, out: &mut dyn Write, json: bool) -> Result<()> {
    let agents = Agents::new(coord)?;
    let roles = &agents.config().roles;
    if json {
        writeln!(out, "{}", serde_json::to_value(roles)?)?;
        return Ok(());
    }
    for role in roles {
        let caps = if role.capabilities.is_empty() {
            String::new()
        } else {
            format!(" [{}]", role.capabilities.join(", "))
        };
        writeln!(out, "{:<12} {}{caps}", role.name, role.description)?;
    }
    Ok(())
}
