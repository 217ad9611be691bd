//! How results look: human text by default, stable JSON with `--json`.

use std::io::{self, Write};

use serde_json::{Value, json};

use crate::error::Error;
use crate::model::task::{State, Task, TaskSummary};
use crate::ops::tasks::{DepNode, LogEntry, Waiting};
use crate::store::Problem;
use crate::store::index::TaskRef;

type Out<'a> = &'a mut dyn Write;

pub fn error(err: &Error, json: bool) {
    if json {
        let mut value =
            json!({ "error": err.to_string(), "hint": err.hint(), "exit_code": err.exit_code() });
        if let Error::LeaseConflict(conflicts) = err {
            value["conflicts"] = json!(conflicts);
        }
        let _ = writeln!(io::stdout(), "{value}");
    }
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "error: {err}");
    if let Some(hint) = err.hint() {
        let _ = writeln!(stderr, "hint: {hint}");
    }
}

/// Documents that could not be loaded are named on stderr; the rest of the listing still prints.
/// Warns, on stderr, about each document of `refname` that could not be loaded.
pub fn problems(refname: &str, problems: &[Problem]) {
    let mut stderr = io::stderr().lock();
    for p in problems {
        let _ = writeln!(stderr, "warning: skipped {refname}:{}: {}", p.path, p.why);
    }
}

/// Warnings for what of another project's fetched copy was skipped.
pub fn skipped_in_projects(skipped: &[crate::ops::projects::Skipped]) {
    let mut stderr = io::stderr().lock();
    for s in skipped {
        let _ = writeln!(
            stderr,
            "warning: skipped {}:{} of project {}: {}",
            s.refname, s.path, s.project, s.why
        );
    }
}

pub fn init(out: Out, created: &[&str], json: bool) -> io::Result<()> {
    if json {
        return writeln!(out, "{}", json!({ "created": created }));
    }
    if created.is_empty() {
        writeln!(out, "already initialised: nothing to do")
    } else {
        writeln!(out, "initialised {}", created.join(", "))
    }
}

/// The stable JSON form of a task; the summary fields are always present (null when unset).
pub fn task_json(task: &Task) -> Value {
    let mut value = serde_json::to_value(TaskSummary::from(task)).expect("summaries serialize");
    let map = value.as_object_mut().expect("a summary is an object");
    map.insert("claimed_at".into(), json!(task.claimed_at));
    map.insert("created_by".into(), json!(task.created_by));
    map.insert("followers".into(), json!(task.followers));
    map.insert("description".into(), json!(task.description));
    map.insert("comments".into(), json!(task.comments));
    map.insert("history".into(), json!(task.history));
    map.insert("conflicts".into(), json!(task.conflicts));
    if let Some(origin) = &task.origin {
        map.insert("origin".into(), json!(origin));
    }
    value
}

pub fn task_id(out: Out, task: &Task, json: bool) -> io::Result<()> {
    if json {
        writeln!(out, "{}", task_json(task))
    } else {
        writeln!(out, "{}", task.id)
    }
}

pub fn changed(out: Out, verb: &str, task: &Task, json: bool) -> io::Result<()> {
    if json {
        return writeln!(out, "{}", task_json(task));
    }
    writeln!(out, "{verb} {} {}", task.id, task.title)
}

pub fn summaries(out: Out, tasks: &[TaskRef<'_>], json: bool) -> io::Result<()> {
    // The records and their text, loaded ahead of their lines (`TaskRef::prefetch_text`): the
    // record 16 lines ahead, the text of the one 8 lines ahead, whose record is loaded by now.
    const AHEAD: usize = 8;
    let ahead = |n: usize| {
        if let Some(ahead) = tasks.get(n + 2 * AHEAD) {
            ahead.prefetch_record();
        }
        if let Some(ahead) = tasks.get(n + AHEAD) {
            ahead.prefetch_text();
        }
    };
    if json {
        // As `serde_json::to_writer` writes the list, an element at a time.
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, &mut *out);
        out.write_all(b"[")?;
        for (n, t) in tasks.iter().enumerate() {
            ahead(n);
            if n > 0 {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut out, t)?;
        }
        out.write_all(b"]\n")?;
        return out.flush();
    }
    let mut line = String::with_capacity(256);
    for (n, t) in tasks.iter().enumerate() {
        ahead(n);
        line.clear();
        push_summary_line(&mut line, t);
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

fn summary_line(out: Out, t: &TaskRef<'_>) -> io::Result<()> {
    let mut line = String::with_capacity(96);
    push_summary_line(&mut line, t);
    out.write_all(line.as_bytes())
}

/// Appends the line of a listing for `t`. Built by hand rather than with write!: listings print
/// up to a hundred thousand of these.
fn push_summary_line(line: &mut String, t: &TaskRef<'_>) {
    // As wide as the widest column padded.
    const SPACES: &str = "            ";
    let pad = |line: &mut String, text: &str, width: usize| {
        line.push_str(text);
        let left = width.saturating_sub(text.chars().count());
        line.push_str(&SPACES[..left.min(SPACES.len())]);
    };
    line.push_str(t.id());
    line.push_str("  P");
    line.push(char::from(b'0' + t.priority().min(9)));
    line.push_str(match t.state() {
        State::Open => "  open     ",
        State::Claimed => "  claimed  ",
        State::Done => "  done     ",
        State::Blocked => "  blocked  ",
    });
    pad(line, t.assignee().unwrap_or("-"), 12);
    line.push_str("  ");
    line.push_str(t.title());
    if let Some(role) = t.role() {
        line.push_str(" @");
        line.push_str(role);
    }
    for label in t.labels() {
        line.push_str(" #");
        line.push_str(label);
    }
    line.push('\n');
}

/// The JSON of `task show`: the task, without its history unless asked.
pub fn task_value(task: &Task, history: bool) -> serde_json::Value {
    let mut value = task_json(task);
    if !history {
        value.as_object_mut().expect("object").remove("history");
    }
    value
}

/// A task whole; `names` says how other projects are shown (their identity is shown too, in the
/// origin).
pub fn task(
    out: Out,
    task: &Task,
    history: bool,
    json: bool,
    names: &crate::ops::projects::ProjectNames,
) -> io::Result<()> {
    if json {
        return writeln!(out, "{}", task_value(task, history));
    }
    writeln!(out, "{}  {}", task.id, task.title)?;
    writeln!(out, "state:    {}", task.state.as_str())?;
    writeln!(
        out,
        "type:     {}   priority: P{}",
        task.kind.as_str(),
        task.priority
    )?;
    let fields = [
        ("assignee", task.assignee.clone()),
        ("claimed", task.claimed_at.clone()),
        ("role", task.role.clone()),
        (
            "labels",
            (!task.labels.is_empty()).then(|| task.labels.join(", ")),
        ),
        (
            "deps",
            (!task.deps.is_empty()).then(|| task.deps.join(", ")),
        ),
        (
            "followed",
            (!task.followers.is_empty()).then(|| task.followers.join(", ")),
        ),
        ("parent", task.parent.clone()),
        ("blocked", task.block_reason.clone()),
        ("summary", task.summary.clone()),
        (
            "origin",
            task.origin.as_ref().map(|o| {
                let who = format!(
                    "{}:{} ({}), project {}",
                    names.of(&o.project),
                    o.agent,
                    o.human,
                    o.project
                );
                match &o.task {
                    Some(t) => format!("{who}, for its task {t}"),
                    None => who,
                }
            }),
        ),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            writeln!(out, "{:<9} {value}", format!("{name}:"))?;
        }
    }
    writeln!(
        out,
        "created:  {} by {}   updated: {}",
        task.created, task.created_by, task.updated
    )?;
    if !task.description.is_empty() {
        writeln!(out)?;
        for line in task.description.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    if !task.conflicts.is_empty() {
        writeln!(out, "\nconflicts settled by sync (kept / set aside):")?;
        for c in &task.conflicts {
            writeln!(out, "  {} {}: {} / {}", c.at, c.field, c.kept, c.dropped)?;
        }
    }
    if !task.comments.is_empty() {
        writeln!(out, "\ncomments:")?;
        for c in &task.comments {
            let author = match (&c.project, &c.human) {
                (Some(p), Some(h)) => format!("{}:{} ({h})", names.of(p), c.author),
                (Some(p), None) => format!("{}:{}", names.of(p), c.author),
                _ => c.author.clone(),
            };
            writeln!(out, "  {} {author}: {}", c.at, c.text)?;
        }
    }
    if history {
        writeln!(out, "\nhistory:")?;
        for e in &task.history {
            let note = e
                .note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            writeln!(out, "  {} {} {}{note}", e.at, e.agent, e.op)?;
        }
    }
    Ok(())
}

pub fn blocked(out: Out, waiting: &[Waiting<'_>], json: bool) -> io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, waiting)?;
        return writeln!(out);
    }
    for w in waiting {
        summary_line(out, &w.task)?;
        if let Some(reason) = w.task.block_reason() {
            writeln!(out, "    blocked: {reason}")?;
        }
        for dep in &w.waits_on {
            let fetched = match &dep.fetched {
                Some(at) => format!(" [fetched {at}]"),
                None if dep.id.contains(':') => {
                    " [never fetched: `git coord sync` (`git coord project list`)]".into()
                }
                None => String::new(),
            };
            writeln!(
                out,
                "    waits on {} ({}) {}{fetched}",
                dep.id, dep.state, dep.title
            )?;
        }
    }
    Ok(())
}

pub fn dep_tree(out: Out, root: &DepNode, json: bool) -> io::Result<()> {
    if json {
        return writeln!(out, "{}", serde_json::to_value(root)?);
    }
    fn walk(out: Out, node: &DepNode, depth: usize) -> io::Result<()> {
        let seen = if node.repeated { " (shown above)" } else { "" };
        writeln!(
            out,
            "{}{} [{}] {}{seen}",
            "  ".repeat(depth),
            node.id,
            node.state,
            node.title
        )?;
        node.deps.iter().try_for_each(|d| walk(out, d, depth + 1))
    }
    walk(out, root, 0)
}

pub fn log(out: Out, entries: &[LogEntry], json: bool) -> io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, entries)?;
        return writeln!(out);
    }
    for e in entries {
        writeln!(out, "{} {}  {}", &e.commit[..10], e.at, e.subject)?;
    }
    Ok(())
}
