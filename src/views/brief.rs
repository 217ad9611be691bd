//! `git coord brief`: what one agent needs to know now, or what the organiser needs to see, in a
//! bounded number of characters. Sections come in order of importance; when they do not all fit,
//! items are left out from the least important end and replaced by a line that says how many and
//! which command shows them. Lines are never cut.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::error::{Error, Result};
use crate::model::agent::AgentStatus;
use crate::model::task::{Kind, State};
use crate::ops::agents::Agents;
use crate::ops::context::Coord;
use crate::ops::leases::Leases;
use crate::ops::messages::{InboxFilter, Messages, clip};
use crate::ops::projects::ProjectNames;
use crate::ops::tasks::Tasks;

pub const DEFAULT_MAX_CHARS: usize = 4000;
/// The smallest budget accepted: it holds who the agent is and a pointer to what was left out
/// (a smaller one is refused, never silently raised).
pub const MIN_MAX_CHARS: usize = 200;
/// A lease that ends sooner than this is flagged.
const EXPIRING_SOON: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);

/// One part of a brief: a heading and its items. An item may span lines; it is kept or left out
/// whole.
#[derive(Debug, Clone)]
struct Section {
    heading: String,
    items: Vec<String>,
    /// Items known but not listed at all (beyond what was loaded).
    unlisted: usize,
    /// The command that shows everything this section summarises.
    see: String,
}

/// What a brief left out of one section.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Omitted {
    pub section: String,
    pub count: usize,
    pub see: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Brief {
    pub agent: String,
    pub organiser: bool,
    pub max_chars: usize,
    pub text: String,
    pub omitted: Vec<Omitted>,
}

/// `max_chars` if a brief can be laid out in it.
pub fn check_budget(max_chars: usize) -> Result<usize> {
    if max_chars < MIN_MAX_CHARS {
        return Err(Error::invalid(
            "--max-chars",
            max_chars.to_string(),
            format!("a brief needs at least {MIN_MAX_CHARS} characters"),
        ));
    }
    Ok(max_chars)
}

/// The brief of `agent` (the acting agent unless the caller names another).
pub fn agent_brief(coord: &Coord, agent: &str, max_chars: usize) -> Result<Brief> {
    check_budget(max_chars)?;
    let agents = Agents::new(coord)?;
    let registered = agents.get(agent)?;
    let role = registered.as_ref().map(|a| a.role.clone());
    let mut head = format!("You are {agent}");
    match &registered {
        Some(a) => {
            head.push_str(&format!(", role {}", a.role));
            if let Some(branch) = &a.branch {
                head.push_str(&format!(", branch {branch}"));
            }
            if a.status == AgentStatus::Retired {
                head.push_str(" (retired)");
            }
        }
        None => head.push_str(" (not a registered agent)"),
    }
    head.push('.');
    // Clients in headless mode do not show the stop hook's stopReason: the next session reads
    // why the team stopped here.
    let team = crate::ops::team::get(coord)?;
    if team.state != crate::ops::team::TeamState::Running {
        let what = match team.state {
            crate::ops::team::TeamState::Paused => "stop here until `git coord resume`",
            _ => "its work is called off",
        };
        head.push_str(&format!(
            " The team is {}{}: {what}.",
            team.state.as_str(),
            team.reason.map(|r| format!(" ({r})")).unwrap_or_default()
        ));
    }

    let tasks = Tasks::new(coord);
    let index = tasks.load_index()?;
    let mut sections = Vec::new();

    // Claimed tasks, with their acceptance criteria.
    let mut mine: Vec<_> = index
        .tasks()
        .filter(|t| t.assignee() == Some(agent) && t.state() == State::Claimed)
        .collect();
    mine.sort_by_key(|t| t.urgency_key());
    let mut claimed = Vec::new();
    for t in &mine {
        let mut item = format!("- {} P{} {}", t.id(), t.priority(), t.title());
        if let Ok(task) = tasks.show(t.id()) {
            for line in criteria(&task.description) {
                item.push_str(&format!("\n    {}", clip(line, 160)));
            }
        }
        claimed.push(item);
    }
    sections.push(Section {
        heading: format!("Your claimed tasks ({}):", mine.len()),
        items: claimed,
        unlisted: 0,
        see: format!("git coord task list --assignee {agent} --state claimed"),
    });

    // The artifacts earlier workflow stages left for the tasks it holds.
    let ids: Vec<&str> = mine.iter().map(|t| t.id()).collect();
    let inputs = crate::views::artifacts::inputs_of(coord, &index, &ids)?;
    if !inputs.is_empty() {
        sections.push(Section {
            heading: format!("Inputs for your tasks ({}):", inputs.len()),
            items: inputs,
            unlisted: 0,
            see: "git coord artifact list".into(),
        });
    }

    // The next ready task for its role.
    let ready = crate::ops::tasks::ready_tasks(&index, role.as_deref());
    sections.push(Section {
        heading: format!(
            "Next ready{}:",
            role.as_deref()
                .map(|r| format!(" for role {r}"))
                .unwrap_or_default()
        ),
        items: ready
            .first()
            .map(|t| {
                format!(
                    "- {} P{} {}  (git coord task claim {})",
                    t.id(),
                    t.priority(),
                    t.title(),
                    t.id()
                )
            })
            .into_iter()
            .collect(),
        unlisted: ready.len().saturating_sub(1),
        see: format!(
            "git coord ready{}",
            role.as_deref()
                .map(|r| format!(" --role {r}"))
                .unwrap_or_default()
        ),
    });

    // Unread messages: subject and first line, the most important and newest first.
    let inbox = Messages::new(coord).inbox(
        agent,
        &InboxFilter {
            limit: Some(50),
            ..InboxFilter::default()
        },
    )?;
    let names = sender_names(coord, &inbox);
    sections.push(Section {
        heading: format!("Unread messages ({}):", inbox.unread),
        items: inbox
            .messages
            .iter()
            .map(|m| {
                let s = &m.message;
                let importance = if s.importance == crate::model::message::Importance::High {
                    " [high]"
                } else {
                    ""
                };
                let mut item = format!(
                    "- {} from {}{importance}: {}",
                    s.id,
                    names.sender(&s.from),
                    clip(&s.subject, 100)
                );
                if !s.first_line.is_empty() && s.first_line != s.subject {
                    item.push_str(&format!("\n    {}", clip(&s.first_line, 140)));
                }
                item
            })
            .collect(),
        unlisted: inbox.unread.saturating_sub(inbox.messages.len()),
        see: "git coord inbox".into(),
    });

    // Leases, flagging those about to expire.
    let now = Timestamp::now();
    let (leases, _) = Leases::new(coord).list(false)?;
    let held: Vec<String> = leases
        .iter()
        .filter(|v| v.lease.agent == agent)
        .map(|v| {
            let l = &v.lease;
            let soon = l
                .expires_at()
                .and_then(|t| now.checked_add(EXPIRING_SOON).ok().map(|limit| t <= limit))
                .unwrap_or(false);
            let mut item = format!(
                "- {} {} on {} until {}",
                l.id,
                l.mode.as_str(),
                clip(&l.patterns.join(", "), 100),
                l.expires
            );
            if soon {
                item.push_str(&format!("  EXPIRES SOON: git coord lease renew {}", l.id));
            }
            item
        })
        .collect();
    sections.push(Section {
        heading: format!("Your leases ({}):", held.len()),
        items: held,
        unlisted: 0,
        see: "git coord lease list".into(),
    });

    // What blocks it: its claimed tasks' unfinished dependencies, its blocked tasks.
    let mut blockers = Vec::new();
    for t in &mine {
        for dep in t.deps() {
            if let Some(d) = index.get(dep).filter(|d| d.state() != State::Done) {
                blockers.push(format!(
                    "- {} waits on {} {} ({})",
                    t.id(),
                    d.id(),
                    d.title(),
                    d.state().as_str()
                ));
            }
        }
    }
    for t in index
        .tasks()
        .filter(|t| t.assignee() == Some(agent) && t.state() == State::Blocked)
    {
        blockers.push(format!(
            "- {} {} is blocked: {}",
            t.id(),
            t.title(),
            t.block_reason().unwrap_or("no reason given")
        ));
    }
    sections.push(Section {
        heading: format!("Blocking you ({}):", blockers.len()),
        items: blockers,
        unlisted: 0,
        see: "git coord blocked".into(),
    });

    // Spawned again under a name that worked before: what it did then.
    // Only a name that held tasks before this spawn can have earlier work worth reading.
    let worked_before = |a: &crate::model::agent::Agent| {
        index
            .tasks()
            .any(|t| t.assignee() == Some(agent) && t.updated() < a.created.as_str())
    };
    if let Some(a) = registered.as_ref().filter(|a| worked_before(a)) {
        let earlier = crate::ops::history::earlier_work(coord, a)?;
        if !earlier.is_empty() {
            sections.push(Section {
                heading: "Before this spawn you did:".into(),
                items: earlier.lines(3),
                unlisted: 0,
                see: format!("git coord agent show {agent}"),
            });
        }
    }

    let mut brief = render(agent, false, &head, sections, max_chars);
    if chars(&brief.text) + TOOLS_LINE.chars().count() < max_chars {
        push_line(&mut brief.text, TOOLS_LINE);
    }
    Ok(brief)
}

/// Names git-coord's MCP tools, for clients that load MCP tools only when the model searches for
/// them (Claude Code 2.1's tool search): a model never told they exist never looks.
pub const TOOLS_LINE: &str = "Tools: `git coord` in your shell, or git-coord's MCP tools (brief, ready, task_claim, task_done, task_show, send, inbox, lease_acquire, whoami...): if your tools load on demand, search for git-coord.";

/// The organiser's brief: counts, progress, stale agents, blocked work and the latest summaries;
/// never task bodies.
pub fn organiser_brief(coord: &Coord, agent: &str, max_chars: usize) -> Result<Brief> {
    check_budget(max_chars)?;
    let tasks = Tasks::new(coord);
    let index = tasks.load_index()?;
    let mut counts: BTreeMap<State, usize> = BTreeMap::new();
    let mut total = 0;
    for t in index.tasks() {
        *counts.entry(t.state()).or_default() += 1;
        total += 1;
    }
    let count = |s: State| counts.get(&s).copied().unwrap_or(0);
    let head = format!(
        "Organiser brief for {agent}. Tasks: {} open, {} claimed, {} blocked, {} done ({total} in all).",
        count(State::Open),
        count(State::Claimed),
        count(State::Blocked),
        count(State::Done)
    );
    let mut sections = Vec::new();

    // Progress per epic: its children done out of all.
    let mut children: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for t in index.tasks() {
        if let Some(parent) = t.parent() {
            let e = children.entry(parent).or_default();
            e.1 += 1;
            if t.state() == State::Done {
                e.0 += 1;
            }
        }
    }
    let mut epics: Vec<_> = index.tasks().filter(|t| t.kind() == Kind::Epic).collect();
    epics.sort_by_key(|t| t.urgency_key());
    sections.push(Section {
        heading: format!("Epics ({}):", epics.len()),
        items: epics
            .iter()
            .map(|e| {
                let (done, all) = children.get(e.id()).copied().unwrap_or((0, 0));
                format!(
                    "- {} {}: {done}/{all} done ({})",
                    e.id(),
                    e.title(),
                    e.state().as_str()
                )
            })
            .collect(),
        unlisted: 0,
        see: "git coord task list --state open".into(),
    });

    // Agents that went quiet.
    let agents = Agents::new(coord)?;
    let (views, _) = agents.list(false)?;
    let stale: Vec<String> = views
        .iter()
        .filter(|v| v.stale)
        .map(|v| {
            let holds = index
                .tasks()
                .filter(|t| {
                    t.assignee() == Some(v.agent.name.as_str()) && t.state() == State::Claimed
                })
                .count();
            format!(
                "- {} ({}), last seen {}, holds {holds} task(s)",
                v.agent.name,
                v.agent.role,
                crate::ops::presence::LastSeen::describe(v.last_seen.as_ref())
            )
        })
        .collect();
    sections.push(Section {
        heading: format!("Stale agents ({} of {}):", stale.len(), views.len()),
        items: stale,
        unlisted: 0,
        see: "git coord agent list".into(),
    });

    // Blocked work.
    let waiting = crate::ops::tasks::blocked(&index);
    sections.push(Section {
        heading: format!("Blocked or waiting ({}):", waiting.len()),
        items: waiting
            .iter()
            .map(|w| {
                let why = match w.task.block_reason() {
                    Some(reason) if w.task.state() == State::Blocked => {
                        format!("blocked: {reason}")
                    }
                    _ => format!(
                        "waits on {}",
                        w.waits_on
                            .iter()
                            .map(|d| format!("{} ({})", d.id, d.state))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                format!(
                    "- {} {}: {}",
                    w.task.id(),
                    clip(w.task.title(), 80),
                    clip(&why, 160)
                )
            })
            .collect(),
        unlisted: 0,
        see: "git coord blocked".into(),
    });

    // The latest results, by summary only.
    let mut done: Vec<_> = index.tasks().filter(|t| t.state() == State::Done).collect();
    done.sort_by(|a, b| b.updated().cmp(a.updated()));
    let shown = done.len().min(50);
    sections.push(Section {
        heading: format!("Latest results ({}):", done.len()),
        items: done[..shown]
            .iter()
            .map(|t| {
                format!(
                    "- {} {} ({}): {}",
                    t.id(),
                    clip(t.title(), 80),
                    t.assignee().unwrap_or("-"),
                    clip(t.summary().unwrap_or("no summary"), 200)
                )
            })
            .collect(),
        unlisted: done.len() - shown,
        see: "git coord task list --state done".into(),
    });

    // Artifacts by summary: counts per kind and stage, then the latest.
    let (counts, latest, more) = crate::views::artifacts::organiser_summary(coord, &index, 50)?;
    if !counts.is_empty() || !latest.is_empty() {
        sections.push(Section {
            heading: format!("Artifacts ({}):", latest.len() + more),
            items: counts.into_iter().chain(latest).collect(),
            unlisted: more,
            see: "git coord artifact list".into(),
        });
    }

    let inbox = Messages::new(coord).inbox(
        agent,
        &InboxFilter {
            limit: Some(20),
            ..InboxFilter::default()
        },
    )?;
    let names = sender_names(coord, &inbox);
    sections.push(Section {
        heading: format!("Unread messages for you ({}):", inbox.unread),
        items: inbox
            .messages
            .iter()
            .map(|m| {
                format!(
                    "- {} from {}: {}",
                    m.message.id,
                    names.sender(&m.message.from),
                    clip(&m.message.subject, 100)
                )
            })
            .collect(),
        unlisted: inbox.unread.saturating_sub(inbox.messages.len()),
        see: "git coord inbox".into(),
    });

    Ok(render(agent, true, &head, sections, max_chars))
}

/// The acceptance criteria of a task description: the lines under a heading that mentions
/// acceptance (up to the next heading or blank line), else its first three lines.
fn criteria(description: &str) -> Vec<&str> {
    let lines: Vec<&str> = description.lines().collect();
    if let Some(at) = lines
        .iter()
        .position(|l| l.to_lowercase().contains("acceptance"))
    {
        let found: Vec<&str> = lines[at + 1..]
            .iter()
            .map(|l| l.trim())
            .take_while(|l| !l.is_empty() && !l.starts_with('#'))
            .take(8)
            .collect();
        if !found.is_empty() {
            return std::iter::once("Acceptance:").chain(found).collect();
        }
    }
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .take(3)
        .collect()
}

/// Lays the sections out within `max_chars`: whole items, in order, while they fit with room
/// kept for a note on each later section that has something to show. Every line is added only if
/// it fits, so the text never exceeds `max_chars`; an empty section's `none` line is the first
/// thing to go.
fn render(
    agent: &str,
    organiser: bool,
    head: &str,
    sections: Vec<Section>,
    max_chars: usize,
) -> Brief {
    let mut text = String::new();
    let mut omitted = Vec::new();
    push_line(&mut text, &clip(head, max_chars / 2));
    for (n, section) in sections.iter().enumerate() {
        // Room for this section's note and a short note for each later one.
        let later: usize = sections[n + 1..]
            .iter()
            .filter(|s| s.items.len() + s.unlisted > 0)
            .map(|s| note(s.heading.len(), s.items.len() + s.unlisted, &s.see).len() + 1)
            .sum();
        let reserve =
            |left: usize| note(section.heading.len(), left, &section.see).len() + 1 + later;
        if section.items.is_empty() && section.unlisted == 0 {
            let line = format!("{} none", section.heading);
            if chars(&text) + line.chars().count() + 1 + later <= max_chars {
                push_line(&mut text, &line);
            }
            continue;
        }
        if chars(&text) + section.heading.chars().count() + 1 + reserve(section.items.len())
            > max_chars
        {
            // Not even the heading and its note fit: one line says what is there.
            let line = note(
                section.heading.len(),
                section.items.len() + section.unlisted,
                &section.see,
            );
            push_summary(&mut text, &mut omitted, section, &line, max_chars);
            continue;
        }
        push_line(&mut text, &section.heading);
        let mut shown = 0;
        for item in &section.items {
            let left = section.items.len() - shown - 1 + section.unlisted;
            let room = if left > 0 { reserve(left) } else { later };
            if chars(&text) + item.chars().count() + 1 + room > max_chars {
                break;
            }
            push_line(&mut text, item);
            shown += 1;
        }
        let left = section.items.len() - shown + section.unlisted;
        if left > 0 {
            let line = format!("  ... {left} more: {}", section.see);
            if chars(&text) + line.chars().count() < max_chars {
                push_line(&mut text, &line);
            }
            omitted.push(Omitted {
                section: section.heading.trim_end_matches(':').to_string(),
                count: left,
                see: section.see.clone(),
            });
        }
    }
    Brief {
        agent: agent.to_string(),
        organiser,
        max_chars,
        text,
        omitted,
    }
}

fn note(_heading_len: usize, count: usize, see: &str) -> String {
    format!("(+{count} not shown: {see})")
}

fn push_summary(
    text: &mut String,
    omitted: &mut Vec<Omitted>,
    section: &Section,
    line: &str,
    max: usize,
) {
    let full = format!("{} {line}", section.heading);
    if chars(text) + full.chars().count() < max {
        push_line(text, &full);
    } else if chars(text) + line.chars().count() < max {
        push_line(text, line);
    }
    omitted.push(Omitted {
        section: section.heading.trim_end_matches(':').to_string(),
        count: section.items.len() + section.unlisted,
        see: section.see.clone(),
    });
}

fn push_line(text: &mut String, line: &str) {
    text.push_str(line);
    text.push('\n');
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// How senders from other projects are named, read only when the inbox has one.
fn sender_names(coord: &Coord, inbox: &crate::ops::messages::Inbox) -> ProjectNames {
    if inbox.messages.iter().any(|i| i.message.from.contains(':')) {
        crate::ops::projects::Projects::new(coord).names()
    } else {
        ProjectNames::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(n: usize) -> Section {
        Section {
            heading: format!("Section with {n} items:"),
            items: (0..n)
                .map(|i| format!("- item {i} {}", "x".repeat(40)))
                .collect(),
            unlisted: 0,
            see: "git coord something".into(),
        }
    }

    #[test]
    fn a_brief_never_exceeds_its_limit_and_says_what_it_left_out() {
        for max in [200, 300, 500, 1000, 4000] {
            let brief = render(
                "a",
                false,
                "You are a.",
                vec![section(3), section(100), section(50)],
                max,
            );
            assert!(
                brief.text.chars().count() <= max,
                "{max}: {}",
                brief.text.chars().count()
            );
            assert!(
                brief.text.contains("Section with 3 items"),
                "{}",
                brief.text
            );
            assert!(!brief.omitted.is_empty());
            // Every item shown is shown whole.
            for line in brief.text.lines().filter(|l| l.starts_with("- item")) {
                assert!(line.ends_with(&"x".repeat(40)), "cut: {line}");
            }
        }
    }

    #[test]
    fn every_budget_from_the_minimum_up_holds() {
        let long_head = format!("You are {}, role dev, branch agent/x.", "a".repeat(64));
        for max in MIN_MAX_CHARS..1500 {
            let sections = vec![
                section(0),
                section(2),
                section(0),
                section(7),
                section(0),
                section(1),
            ];
            let brief = render("a", false, &long_head, sections, max);
            assert!(
                brief.text.chars().count() <= max,
                "{max}: {} chars\n{}",
                brief.text.chars().count(),
                brief.text
            );
        }
        assert!(check_budget(MIN_MAX_CHARS - 1).is_err());
        assert_eq!(check_budget(MIN_MAX_CHARS).ok(), Some(MIN_MAX_CHARS));
    }

    #[test]
    fn criteria_come_from_an_acceptance_heading_or_the_first_lines() {
        let d = "Some context.\n\nAcceptance criteria:\n- it works\n- tests pass\n\nNotes";
        assert_eq!(criteria(d), ["Acceptance:", "- it works", "- tests pass"]);
        assert_eq!(criteria("one\ntwo\n\nthree\nfour"), ["one", "two", "three"]);
    }
}
