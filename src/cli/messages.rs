//! `send`, `inbox`, `read`, `ack`, `reply`, `thread`, `artifact` and `brief`: clap definitions
//! and output.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::error::Result;
use crate::model::artifact::{Artifact, ArtifactKind};
use crate::model::message::{Importance, Message, SHARED_TARGET};
use crate::ops::artifacts::{Artifacts, NewArtifact};
use crate::ops::context::Coord;
use crate::ops::messages::{InboxFilter, Messages, Opened, Outgoing};
use crate::ops::projects::ProjectNames;
use crate::views::brief;

type Out<'a> = &'a mut dyn Write;

#[derive(Args, Debug)]
pub struct SendArgs {
    /// NAME (an agent), @ROLE (every agent of the role), @all, or #TASK (the task's thread and its assignee)
    #[arg(long, value_name = "TARGET")]
    to: String,
    /// One line (default: the start of the text)
    #[arg(long)]
    subject: Option<String>,
    /// Continue this thread
    #[arg(long, value_name = "ID")]
    thread: Option<String>,
    /// The task this is about (the message joins the task's thread)
    #[arg(long, value_name = "ID")]
    task: Option<String>,
    #[arg(long, value_parser = parse_importance, default_value = "normal")]
    importance: Importance,
    #[command(flatten)]
    text: MessageText,
}

// The text of a message and what it carries: TEXT, or `-F FILE`, and `--attach FILE`s. A plain
// comment: a doc comment would become the about of every command that flattens it, over their own
// (the subcommands are deferred: their arguments are added after their about).
#[derive(Args, Debug)]
pub struct MessageText {
    /// The message
    #[arg(required_unless_present = "file")]
    text: Option<String>,
    /// Read the text from FILE ('-' for stdin)
    #[arg(
        short = 'F',
        long = "file",
        value_name = "FILE",
        conflicts_with = "text"
    )]
    file: Option<PathBuf>,
    /// Attach a file (a log, a repro case, a diff); repeat for more
    #[arg(long = "attach", value_name = "FILE")]
    attach: Vec<PathBuf>,
}

impl MessageText {
    /// The text and the attachments' (name, bytes), read relative to `start_dir`.
    fn read(self, start_dir: &Path) -> Result<(String, crate::ops::messages::Files)> {
        let body = super::read_text(self.text, self.file.as_ref(), start_dir)?.unwrap_or_default();
        Ok((body, read_attachments(&self.attach, start_dir)?))
    }
}

/// The files named by `--attach`, as (name, bytes), read relative to `start_dir`.
pub fn read_attachments(
    files: &[PathBuf],
    start_dir: &Path,
) -> Result<crate::ops::messages::Files> {
    files
        .iter()
        .map(|f| {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((name, super::read_file(start_dir, f)?))
        })
        .collect()
}

#[derive(Args, Debug)]
pub struct InboxArgs {
    /// Read messages too
    #[arg(long)]
    all: bool,
    /// Only messages from this agent
    #[arg(long, value_name = "AGENT")]
    from: Option<String>,
    /// Only messages of this thread
    #[arg(long, value_name = "ID")]
    thread: Option<String>,
    /// Only messages whose subject or text contains WORD (any case)
    #[arg(long, value_name = "WORD")]
    grep: Option<String>,
    /// Show at most N messages (0: all)
    #[arg(short = 'n', long = "limit", value_name = "N", default_value_t = 50)]
    limit: usize,
}

#[derive(Subcommand, Debug)]
pub enum ArtifactCommand {
    /// Store FILE as an artifact of a task, with a summary for whoever reads progress
    Put {
        #[arg(long, value_name = "ID")]
        task: String,
        #[arg(long, value_parser = parse_kind)]
        kind: ArtifactKind,
        #[arg(long)]
        summary: String,
        /// The file ('-' for stdin)
        file: PathBuf,
    },
    /// Artifacts by summary, of one task or of all
    List {
        #[arg(long, value_name = "ID")]
        task: Option<String>,
    },
    /// One artifact with its full content
    Show { id: String },
}

fn parse_importance(s: &str) -> Result<Importance, String> {
    Importance::parse(s).map_err(|e| e.to_string())
}

fn parse_kind(s: &str) -> Result<ArtifactKind, String> {
    ArtifactKind::parse(s).map_err(|e| e.to_string())
}

pub fn send(coord: &Coord, a: SendArgs, out: Out, json: bool) -> Result<()> {
    let (body, attachments) = a.text.read(&coord.start_dir)?;
    let target = a.to.trim().to_string();
    let msg = crate::ops::mail::send(
        coord,
        Outgoing {
            target: a.to,
            subject: a.subject,
            thread: a.thread,
            task: a.task,
            importance: a.importance,
            body,
            attachments,
        },
    )?;
    // A message written into another project records this project as its sender.
    let project = msg
        .from_project
        .is_some()
        .then(|| project_of_target(&target));
    sent(out, "sent", &msg, project, json)
}

/// The related project a `send --to` target names: `#NAME:ID`, `NAME:AGENT`, `NAME:@ROLE`, or
/// `NAME` itself (its shared box).
fn project_of_target(target: &str) -> &str {
    let target = target.strip_prefix('#').unwrap_or(target);
    target
        .split_once(':')
        .map_or(target, |(project, _)| project)
}

pub fn reply(coord: &Coord, msg: &str, text: MessageText, out: Out, json: bool) -> Result<()> {
    let (body, attachments) = text.read(&coord.start_dir)?;
    let replied = crate::ops::mail::reply(coord, msg, body, attachments)?;
    sent(
        out,
        "replied",
        &replied.message,
        replied.project.as_deref(),
        json,
    )
}

/// Where a message went, in words: `project` is the related project it was written into.
fn sent(out: Out, verb: &str, msg: &Message, project: Option<&str>, json: bool) -> Result<()> {
    if json {
        let mut value = message_json(msg, None);
        value["project"] = json!(project);
        writeln!(out, "{value}")?;
        return Ok(());
    }
    let whom = (!msg.to.is_empty()).then(|| msg.to.join(", "));
    let to = match (project, whom) {
        (Some(p), _) if msg.target == SHARED_TARGET => format!(
            "project {p}'s shared box (every agent there sees it until one acknowledges it)"
        ),
        (Some(p), Some(whom)) => format!("{whom} in project {p}"),
        (Some(p), None) => format!(
            "the thread of {p}:{} only (nobody holds that task)",
            msg.thread
        ),
        (None, Some(whom)) => whom,
        (None, None) => "the thread only (no one else to deliver to)".into(),
    };
    writeln!(out, "{verb} {} to {to} (thread {})", msg.id, msg.thread)?;
    Ok(())
}

pub fn inbox(coord: &Coord, a: InboxArgs, out: Out, json: bool) -> Result<()> {
    let agent = coord.actor()?.agent;
    let inbox = Messages::new(coord).inbox(
        &agent,
        &InboxFilter {
            all: a.all,
            from: a.from,
            thread: a.thread,
            grep: a.grep,
            limit: (a.limit > 0).then_some(a.limit),
        },
    )?;
    super::output::problems(crate::ops::messages::INBOX_REF, &inbox.problems);
    if json {
        writeln!(out, "{}", serde_json::to_value(&inbox)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{}: {} unread, {} read",
        inbox.agent, inbox.unread, inbox.read
    )?;
    let names = project_names(
        coord,
        inbox.messages.iter().any(|i| i.message.from.contains(':')),
    );
    for item in &inbox.messages {
        let m = &item.message;
        let flag = match (item.read, item.acked) {
            (false, _) => "*",
            (true, true) => "a",
            (true, false) => " ",
        };
        let importance = match m.importance {
            Importance::High => "!",
            Importance::Low => "-",
            Importance::Normal => " ",
        };
        let clip = if m.attachments > 0 {
            format!(" [{} att]", m.attachments)
        } else {
            String::new()
        };
        writeln!(
            out,
            "{flag}{importance} {}  {}  {:<12} {}{clip}",
            m.id,
            &m.created[..m.created.len().min(16)],
            names.sender(&m.from),
            m.subject
        )?;
    }
    if inbox.matched > inbox.messages.len() {
        writeln!(
            out,
            "({} more not shown: -n 0 shows all)",
            inbox.matched - inbox.messages.len()
        )?;
    }
    Ok(())
}

pub fn read(coord: &Coord, id: &str, save: Option<PathBuf>, out: Out, json: bool) -> Result<()> {
    let messages = Messages::new(coord);
    coord.actor()?; // who reads it, known before any file is written
    // Saved first: attachments that cannot be saved leave the message unread.
    let saved = match save {
        Some(dir) => {
            let message = messages.show(id)?;
            messages.save_attachments(&message, &coord.start_dir.join(dir))?
        }
        None => Default::default(),
    };
    let opened = messages.read(id)?;
    if json {
        let mut value = message_json(&opened.message, Some(&opened));
        value["saved"] = json!(
            saved
                .written
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
        );
        value["skipped"] = json!(saved.skipped);
        writeln!(out, "{value}")?;
        return Ok(());
    }
    let names = project_names(coord, opened.message.from_project.is_some());
    show_message(out, &opened.message, &names)?;
    for path in &saved.written {
        writeln!(out, "saved {}", path.display())?;
    }
    for skipped in &saved.skipped {
        writeln!(out, "skipped {}: {}", skipped.name, skipped.why)?;
    }
    Ok(())
}

pub fn ack(coord: &Coord, id: &str, out: Out, json: bool) -> Result<()> {
    let opened = Messages::new(coord).ack(id)?;
    if json {
        writeln!(out, "{}", message_json(&opened.message, Some(&opened)))?;
    } else {
        writeln!(
            out,
            "acknowledged {} from {}: {}",
            opened.message.id, opened.message.from, opened.message.subject
        )?;
    }
    Ok(())
}

pub fn thread(coord: &Coord, id: &str, refresh: bool, out: Out, json: bool) -> Result<()> {
    let messages = if crate::model::id::split_foreign(id).is_some() {
        let found = crate::ops::projects::Projects::new(coord).show_task(id, refresh)?;
        super::output::skipped_in_projects(&found.skipped);
        found.thread
    } else {
        Messages::new(coord).thread(id)?
    };
    if json {
        let values: Vec<Value> = messages.iter().map(|m| message_json(m, None)).collect();
        writeln!(out, "{}", Value::Array(values))?;
        return Ok(());
    }
    let names = project_names(coord, messages.iter().any(|m| m.from_project.is_some()));
    for (n, m) in messages.iter().enumerate() {
        if n > 0 {
            writeln!(out)?;
        }
        show_message(out, m, &names)?;
    }
    Ok(())
}

/// The names of other projects, read only when something shown comes from one.
pub fn project_names(coord: &Coord, needed: bool) -> ProjectNames {
    if needed {
        crate::ops::projects::Projects::new(coord).names()
    } else {
        ProjectNames::default()
    }
}

fn show_message(out: Out, m: &Message, names: &ProjectNames) -> io::Result<()> {
    writeln!(out, "message {}  {}", m.id, m.importance.as_str())?;
    let from = match &m.from_project {
        Some(p) => format!("{}:{} ({}), project {p}", names.of(p), m.from, m.human),
        None => format!("{} ({})", m.from, m.human),
    };
    writeln!(out, "from:     {from}")?;
    writeln!(
        out,
        "to:       {} (as {})",
        if m.to.is_empty() {
            "-".into()
        } else {
            m.to.join(", ")
        },
        m.target
    )?;
    writeln!(out, "date:     {}", m.created)?;
    writeln!(out, "thread:   {}", m.thread)?;
    if let Some(task) = &m.task {
        writeln!(out, "task:     {task}")?;
    }
    if let Some(about) = &m.about {
        writeln!(out, "about:    task {} of {}", about.task, about.project)?;
    }
    if let Some(r) = &m.reply_to {
        writeln!(out, "reply to: {r}")?;
    }
    writeln!(out, "subject:  {}\n", m.subject)?;
    for line in m.body.lines() {
        writeln!(out, "    {line}")?;
    }
    for (n, a) in m.attachments.iter().enumerate() {
        writeln!(out, "attachment {n}: {} ({} bytes)", a.name, a.size)?;
    }
    Ok(())
}

/// The stable JSON form of a message (and of the reader's marks when given).
pub fn message_json(m: &Message, opened: Option<&Opened>) -> Value {
    let mut value = json!({
        "id": m.id,
        "from": m.from,
        "human": m.human,
        "from_project": m.from_project,
        "target": m.target,
        "to": m.to,
        "subject": m.subject,
        "thread": m.thread,
        "reply_to": m.reply_to,
        "task": m.task,
        "about": m.about,
        "importance": m.importance.as_str(),
        "created": m.created,
        "body": m.body,
        "attachments": m.attachments,
    });
    if let Some(o) = opened {
        value["read"] = json!(o.mark.as_ref().map(|m| m.read.clone()));
        value["acked"] = json!(o.mark.as_ref().and_then(|m| m.acked.clone()));
    }
    value
}

pub fn artifact(coord: &Coord, cmd: ArtifactCommand, out: Out, json: bool) -> Result<()> {
    let artifacts = Artifacts::new(coord);
    match cmd {
        ArtifactCommand::Put {
            task,
            kind,
            summary,
            file,
        } => {
            let content = super::read_file(&coord.start_dir, &file)?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "stdin".into());
            let a = artifacts.put(NewArtifact {
                task,
                kind,
                summary,
                name,
                content,
            })?;
            if json {
                writeln!(out, "{}", artifact_json(&a))?;
            } else {
                writeln!(
                    out,
                    "stored {} {} for task {} ({} bytes)",
                    a.kind.as_str(),
                    a.id,
                    a.task,
                    a.size
                )?;
            }
        }
        ArtifactCommand::List { task } => {
            let (list, problems) = artifacts.list(task.as_deref())?;
            for p in problems {
                eprintln!("warning: skipped {p}");
            }
            if json {
                writeln!(
                    out,
                    "{}",
                    Value::Array(list.iter().map(artifact_json).collect())
                )?;
            } else {
                for a in &list {
                    artifact_line(out, a)?;
                }
            }
        }
        ArtifactCommand::Show { id } => {
            let (a, content) = artifacts.show(&id)?;
            if json {
                let mut value = artifact_json(&a);
                value["content"] = json!(String::from_utf8_lossy(&content));
                writeln!(out, "{value}")?;
            } else {
                writeln!(
                    out,
                    "artifact {}  {}  task {}  by {} at {}",
                    a.id,
                    a.kind.as_str(),
                    a.task,
                    a.created_by,
                    a.created
                )?;
                writeln!(
                    out,
                    "summary: {}\nfile:    {} ({} bytes)\n",
                    a.summary, a.name, a.size
                )?;
                out.write_all(&content)?;
                if !content.ends_with(b"\n") {
                    writeln!(out)?;
                }
            }
        }
    }
    Ok(())
}

pub fn artifact_line(out: Out, a: &Artifact) -> io::Result<()> {
    writeln!(
        out,
        "{}  {:<6}  task {}  {} ({} bytes): {}",
        a.id,
        a.kind.as_str(),
        a.task,
        a.name,
        a.size,
        a.summary
    )
}

pub fn artifact_json(a: &Artifact) -> Value {
    json!({
        "id": a.id,
        "task": a.task,
        "kind": a.kind.as_str(),
        "summary": a.summary,
        "name": a.name,
        "size": a.size,
        "created": a.created,
        "created_by": a.created_by,
    })
}

/// What `task show` adds after the task: its thread and its artifacts.
pub fn task_extras(
    out: Out,
    messages: &[Message],
    artifacts: &[Artifact],
    names: &ProjectNames,
) -> io::Result<()> {
    if !messages.is_empty() {
        writeln!(out, "\nthread ({} messages):", messages.len())?;
        for m in messages {
            writeln!(
                out,
                "  {} {} {} -> {}: {}",
                m.created,
                m.id,
                match &m.from_project {
                    Some(p) => format!("{}:{} ({})", names.of(p), m.from, m.human),
                    None => m.from.clone(),
                },
                if m.to.is_empty() {
                    "-".into()
                } else {
                    m.to.join(",")
                },
                m.subject
            )?;
        }
    }
    if !artifacts.is_empty() {
        writeln!(out, "\nartifacts:")?;
        for a in artifacts {
            write!(out, "  ")?;
            artifact_line(out, a)?;
        }
    }
    Ok(())
}

pub fn brief(
    coord: &Coord,
    organiser: bool,
    max_chars: Option<usize>,
    out: Out,
    json: bool,
) -> Result<()> {
    let agent = coord.actor()?.agent;
    let max = max_chars.unwrap_or(brief::DEFAULT_MAX_CHARS);
    let b = if organiser {
        brief::organiser_brief(coord, &agent, max)?
    } else {
        brief::agent_brief(coord, &agent, max)?
    };
    if json {
        writeln!(out, "{}", serde_json::to_value(&b)?)?;
    } else {
        write!(out, "{}", b.text)?;
    }
    Ok(())
}
