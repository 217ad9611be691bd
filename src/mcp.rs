//! `git coord mcp`: the operations an agent needs, as a Model Context Protocol server over stdio
//! (the official Rust SDK, rmcp). It acts as the agent whose worktree it runs in. The repository
//! stays open between calls (one process per agent session); every call reads the ref tips
//! afresh, and the task index is checked against them, so it always sees the current state.
//! Errors come back as tool errors with the CLI's words, never as a crashed server.

mod lines;

pub use lines::MAX_REQUEST_BYTES;

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::model::message::Importance;
use crate::ops::agent_role::{RoleFilter, routing_role};
use crate::ops::context::Coord;
use crate::ops::leases::Leases;
use crate::ops::messages::{InboxFilter, Messages, Outgoing};
use crate::ops::tasks::{NewTask, Tasks};

/// What a tool answers: compact JSON text, or the CLI's error message and hint.
type Answer = std::result::Result<String, String>;

#[derive(Debug, Clone)]
pub struct CoordServer {
    dir: PathBuf,
    /// The server's own `--agent` and `--offline`, which every call keeps, as a command would.
    agent: Option<String>,
    offline: bool,
    tool_router: ToolRouter<Self>,
}

thread_local! {
    /// The session's repository, opened by the first call and kept: the server answers on one
    /// thread, and an open repository (gix's) stays on the thread that opened it.
    static SESSION: RefCell<Option<(PathBuf, Coord)>> = const { RefCell::new(None) };
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct IdArg {
    /// A task or message id, or a unique prefix of at least 4 characters
    pub id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TaskIdArg {
    /// A task id or a unique prefix of at least 4 characters; NAME:ID for a related project's task
    pub id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct BriefArg {
    /// At most this many characters (default 4000, at least 200)
    #[schemars(range(min = crate::views::brief::MIN_MAX_CHARS))]
    pub max_chars: Option<usize>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ReadyArg {
    /// Only tasks of this role (default: your own role; tasks with no role are open to all)
    pub role: Option<String>,
    /// Tasks of every role, not only of your own
    #[serde(default)]
    pub any_role: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NewTaskArg {
    /// One line
    pub title: String,
    /// Objective, context files, steps, acceptance criteria
    pub description: Option<String>,
    /// 0 (most urgent) to 4; default 2
    #[schemars(range(max = crate::model::task::MAX_PRIORITY))]
    pub priority: Option<u8>,
    /// The role that should do it
    pub role: Option<String>,
    /// Ids of tasks it waits on (NAME:ID for a task of a related project)
    #[serde(default)]
    pub deps: Vec<String>,
    /// File it into this related project instead, through its URL (returns project and id)
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ClaimArg {
    /// The task to claim; leave it out to claim the most urgent ready task
    pub id: Option<String>,
    /// With no id: only tasks of this role (default: your own role)
    pub role: Option<String>,
    /// With no id: a task of any role, not only of your own
    #[serde(default)]
    pub any_role: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DoneArg {
    pub id: String,
    /// One line on what came of it, for whoever reads progress
    pub summary: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CommentArg {
    /// A task id or prefix; NAME:ID for a related project's task
    pub id: String,
    pub text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SendArg {
    /// An agent name, @ROLE, @all, #TASK, or PROJECT:AGENT
    pub to: String,
    pub text: String,
    pub subject: Option<String>,
    /// The task it is about (it joins the task's thread)
    pub task: Option<String>,
    /// low, normal (default) or high
    pub importance: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct InboxArg {
    /// Read messages too
    #[serde(default)]
    pub all: bool,
    /// At most this many (default 20)
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ReplyArg {
    /// The message answered
    pub id: String,
    pub text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct LeaseArg {
    /// Gitignore-style paths or globs, relative to the repository root
    pub globs: Vec<String>,
    /// How long: 90s, 30m, 2h, 1d (default 30m)
    pub ttl: Option<String>,
    /// Let other agents hold shared leases on the same paths
    #[serde(default)]
    pub shared: bool,
    /// The task it is for (released when the task is done)
    pub task: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ReleaseArg {
    /// A lease id; leave it out to release all of yours
    pub id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CheckArg {
    /// Paths relative to the repository root
    pub paths: Vec<String>,
}

fn failed(e: Error) -> String {
    match e.hint() {
        Some(hint) => format!("error: {e}\nhint: {hint}"),
        None => format!("error: {e}"),
    }
}

/// The formats JSON Schema (2020-12) defines. schemars adds its own for Rust's integer types
/// (`uint`, `uint8`), which clients' validators warn about or reject: those go, the bounds stay.
const STANDARD_FORMATS: [&str; 19] = [
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Removes every `format` JSON Schema does not define, anywhere in `schema`.
fn keep_standard_formats(schema: &mut Value) {
    match schema {
        Value::Object(o) => {
            if o.get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| !STANDARD_FORMATS.contains(&f))
            {
                o.remove("format");
            }
            o.values_mut().for_each(keep_standard_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(keep_standard_formats),
        _ => {}
    }
}

fn task_json(t: &crate::model::task::Task) -> Value {
    json!({
        "id": t.id, "title": t.title, "state": t.state.as_str(), "assignee": t.assignee,
        "priority": t.priority, "role": t.role, "deps": t.deps, "summary": t.summary,
    })
}

/// A task's thread as `task_show` gives it: each message's id, sender and subject.
fn thread_json(thread: &[crate::model::message::Message]) -> Value {
    thread
        .iter()
        .map(|m| json!({ "id": m.id, "from": m.from, "subject": m.subject }))
        .collect()
}

#[tool_router]
impl CoordServer {
    pub fn new(dir: PathBuf, agent: Option<String>, offline: bool) -> Self {
        let mut tool_router = Self::tool_router();
        for route in tool_router.map.values_mut() {
            let mut schema = Value::Object(route.attr.input_schema.as_ref().clone());
            keep_standard_formats(&mut schema);
            if let Value::Object(schema) = schema {
                route.attr.input_schema = Arc::new(schema);
            }
        }
        CoordServer {
            dir,
            agent,
            offline,
            tool_router,
        }
    }

    /// Runs `f` on the session's repository (opened by the first call); any error becomes a
    /// tool error.
    fn with(&self, f: impl FnOnce(&Coord) -> Result<Value>) -> Answer {
        SESSION.with(|session| {
            let mut held = session.borrow_mut();
            if held.as_ref().is_none_or(|(dir, _)| *dir != self.dir) {
                let mut coord = Coord::open(&self.dir, self.agent.clone()).map_err(failed)?;
                coord.offline = self.offline;
                *held = Some((self.dir.clone(), coord));
            }
            let (_, coord) = held.as_ref().expect("opened above");
            crate::ops::presence::implicit_beat(coord);
            let answer = f(coord);
            let warnings = coord.take_warnings();
            answer
                .map(|mut v| {
                    if !warnings.is_empty()
                        && let Some(o) = v.as_object_mut()
                    {
                        o.insert("warnings".into(), json!(warnings));
                    }
                    v.to_string()
                })
                .map_err(|e| {
                    let mut text = failed(e);
                    for w in &warnings {
                        text.push_str(&format!("\nwarning: {w}"));
                    }
                    text
                })
        })
    }

    #[tool(
        description = "What you need to know now: your claimed tasks with acceptance criteria, your next ready task, unread messages, leases, blockers. Start here."
    )]
    fn brief(&self, Parameters(a): Parameters<BriefArg>) -> Answer {
        self.with(|c| {
            let me = c.actor()?.agent;
            let b = crate::views::brief::agent_brief(
                c,
                &me,
                a.max_chars
                    .unwrap_or(crate::views::brief::DEFAULT_MAX_CHARS),
            )?;
            Ok(json!({ "text": b.text, "omitted": b.omitted }))
        })
    }

    #[tool(description = "Who you act as, with which role, in which worktree.")]
    fn whoami(&self) -> Answer {
        self.with(|c| {
            let (actor, source) = c.identity()?;
            let agent = crate::ops::agents::Agents::new(c)?.get(&actor.agent)?;
            Ok(json!({
                "agent": actor.agent, "human": actor.human, "source": source,
                "role": agent.as_ref().map(|a| a.role.clone()),
                "branch": agent.and_then(|a| a.branch),
                "worktree": c.repo.workdir(),
            }))
        })
    }

    #[tool(description = "Counts of tasks by state, the team's state, your unread messages.")]
    fn status(&self) -> Answer {
        self.with(|c| {
            let me = c.actor()?.agent;
            let mut v = crate::serve::api(c, "status")?.unwrap_or(Value::Null);
            v["unread"] = json!(
                Messages::new(c)
                    .inbox(
                        &me,
                        &InboxFilter {
                            limit: Some(0),
                            ..Default::default()
                        }
                    )?
                    .unread
            );
            if let Some(o) = v.as_object_mut() {
                o.remove("tips");
            }
            Ok(v)
        })
    }

    #[tool(
        description = "Open, unclaimed tasks whose dependencies are done, most urgent first (at most 20): those of your role and those with no role, unless any_role."
    )]
    fn ready(&self, Parameters(a): Parameters<ReadyArg>) -> Answer {
        self.with(|c| {
            let index = Tasks::new(c).load_ready_index()?;
            let role = routing_role(c, RoleFilter::from_flags(a.role, a.any_role))?;
            let ready = crate::ops::tasks::ready_tasks(&index, role.as_deref());
            let tasks: Vec<Value> = ready.iter().take(20).map(|t| json!({ "id": t.id(), "title": t.title(), "priority": t.priority(), "role": t.role() })).collect();
            Ok(json!({ "tasks": tasks }))
        })
    }

    #[tool(
        description = "One task whole: description, comments, its thread's messages (subjects), artifacts (summaries). NAME:ID: a related project's task, from what this clone fetched of it."
    )]
    fn task_show(&self, Parameters(a): Parameters<TaskIdArg>) -> Answer {
        self.with(|c| {
            let projects = crate::ops::projects::Projects::new(c);
            if crate::model::id::split_foreign(&a.id).is_some() {
                let crate::ops::projects::ForeignTask {
                    project: p,
                    task: t,
                    thread,
                    skipped,
                } = projects.show_task(&a.id, false)?;
                for s in skipped {
                    c.warn(format!(
                        "skipped {}:{} of project {}: {}",
                        s.refname, s.path, s.project, s.why
                    ));
                }
                let mut v = task_json(&t);
                v["project"] = json!(p.name);
                v["fetched"] = json!(p.fetched);
                v["description"] = json!(t.description);
                v["comments"] = json!(t.comments);
                v["messages"] = thread_json(&thread);
                return Ok(v);
            }
            let t = Tasks::new(c).show(&a.id)?;
            let thread = Messages::new(c).task_thread(&t.id)?;
            let (artifacts, _) = crate::ops::artifacts::Artifacts::new(c).list(Some(&t.id))?;
            let mut v = task_json(&t);
            // A task filed here from another project says which, by the name this clone knows.
            if let Some(o) = &t.origin {
                v["origin"] = json!({
                    "project": projects.names().of(&o.project), "agent": o.agent,
                    "human": o.human, "task": o.task,
                });
            }
            v["description"] = json!(t.description);
            v["comments"] = json!(t.comments);
            v["messages"] = thread_json(&thread);
            v["artifacts"] = json!(
                artifacts
                    .iter()
                    .map(|x| json!({ "id": x.id, "kind": x.kind.as_str(), "summary": x.summary }))
                    .collect::<Vec<_>>()
            );
            Ok(v)
        })
    }

    #[tool(
        description = "Create a task; returns its id. With project: file it into that related project (the bug you found in a library), returning {project, id}."
    )]
    fn task_new(&self, Parameters(a): Parameters<NewTaskArg>) -> Answer {
        self.with(|c| {
            if let Some(project) = &a.project {
                let (p, t) = crate::ops::projects::Projects::new(c).file_task(
                    project,
                    crate::ops::projects::FileTask {
                        title: a.title,
                        description: a.description.unwrap_or_default(),
                        priority: a.priority,
                        role: a.role,
                        ..Default::default()
                    },
                )?;
                return Ok(json!({ "project": p.name, "id": t.id }));
            }
            let t = crate::ops::work::create(
                &Tasks::new(c),
                NewTask {
                    title: a.title,
                    description: a.description.unwrap_or_default(),
                    priority: a.priority,
                    role: a.role,
                    deps: a.deps,
                    ..NewTask::default()
                },
            )?;
            Ok(task_json(&t))
        })
    }

    #[tool(
        description = "Claim a task by id, or with no id the most urgent ready task of your role (or of the role given, or any_role). Atomic: two agents never hold one task."
    )]
    fn task_claim(&self, Parameters(a): Parameters<ClaimArg>) -> Answer {
        self.with(|c| {
            let tasks = Tasks::new(c);
            let t = match &a.id {
                Some(id) => tasks.claim(id, false)?,
                None => {
                    let role = routing_role(c, RoleFilter::from_flags(a.role, a.any_role))?;
                    tasks.claim_next(role.as_deref())?
                }
            };
            Ok(task_json(&t))
        })
    }

    #[tool(description = "Mark a task done with a one-line summary; its leases are released.")]
    fn task_done(&self, Parameters(a): Parameters<DoneArg>) -> Answer {
        self.with(|c| {
            Ok(task_json(&crate::ops::work::done(
                &Tasks::new(c),
                &a.id,
                a.summary,
                false,
            )?))
        })
    }

    #[tool(description = "Add a comment to a task (NAME:ID: to a related project's task).")]
    fn task_comment(&self, Parameters(a): Parameters<CommentArg>) -> Answer {
        self.with(|c| {
            if crate::model::id::split_foreign(&a.id).is_some() {
                let (p, t) = crate::ops::projects::Projects::new(c).comment(&a.id, &a.text)?;
                let mut v = task_json(&t);
                v["project"] = json!(p.name);
                return Ok(v);
            }
            Ok(task_json(&Tasks::new(c).comment(&a.id, &a.text)?))
        })
    }

    #[tool(
        description = "Send a message to an agent, @ROLE, @all, #TASK (its thread and assignee) or PROJECT:AGENT."
    )]
    fn send(&self, Parameters(a): Parameters<SendArg>) -> Answer {
        self.with(|c| {
            let importance = match &a.importance {
                Some(i) => Importance::parse(i)?,
                None => Importance::Normal,
            };
            let m = crate::ops::mail::send(
                c,
                Outgoing {
                    target: a.to,
                    subject: a.subject,
                    task: a.task,
                    importance,
                    body: a.text,
                    ..Outgoing::default()
                },
            )?;
            Ok(json!({ "id": m.id, "to": m.to, "thread": m.thread }))
        })
    }

    #[tool(
        description = "Your messages, unread first, with counts; subjects and first lines only."
    )]
    fn inbox(&self, Parameters(a): Parameters<InboxArg>) -> Answer {
        self.with(|c| {
            let me = c.actor()?.agent;
            let inbox = Messages::new(c).inbox(
                &me,
                &InboxFilter {
                    all: a.all,
                    limit: Some(a.limit.unwrap_or(20)),
                    ..Default::default()
                },
            )?;
            Ok(serde_json::to_value(&inbox)?)
        })
    }

    #[tool(description = "Read one message whole (and mark it read).")]
    fn read(&self, Parameters(a): Parameters<IdArg>) -> Answer {
        self.with(|c| {
            let o = Messages::new(c).read(&a.id)?;
            let m = o.message;
            Ok(json!({ "id": m.id, "from": m.from, "subject": m.subject, "thread": m.thread, "task": m.task, "created": m.created, "body": m.body, "attachments": m.attachments }))
        })
    }

    #[tool(description = "Acknowledge a message.")]
    fn ack(&self, Parameters(a): Parameters<IdArg>) -> Answer {
        self.with(|c| {
            let o = Messages::new(c).ack(&a.id)?;
            Ok(json!({ "id": o.message.id, "acked": o.mark.and_then(|m| m.acked) }))
        })
    }

    #[tool(description = "Reply to a message: to its sender, in its thread.")]
    fn reply(&self, Parameters(a): Parameters<ReplyArg>) -> Answer {
        self.with(|c| {
            let r = crate::ops::mail::reply(c, &a.id, a.text, Vec::new())?;
            let m = r.message;
            Ok(json!({ "id": m.id, "to": m.to, "thread": m.thread, "project": r.project }))
        })
    }

    #[tool(
        description = "Reserve paths (gitignore-style globs) before editing them. Refused, naming the holder, when another agent holds an overlapping exclusive lease."
    )]
    fn lease_acquire(&self, Parameters(a): Parameters<LeaseArg>) -> Answer {
        self.with(|c| {
            let ttl = match &a.ttl {
                Some(t) => crate::model::lease::parse_ttl(t)?,
                None => crate::model::lease::DEFAULT_TTL,
            };
            let l = Leases::new(c).acquire(&a.globs, ttl, a.shared, a.task.as_deref(), None)?;
            Ok(json!({ "id": l.id, "patterns": l.patterns, "mode": l.mode.as_str(), "expires": l.expires }))
        })
    }

    #[tool(description = "Release one of your leases, or all of them with no id.")]
    fn lease_release(&self, Parameters(a): Parameters<ReleaseArg>) -> Answer {
        self.with(|c| {
            let leases = Leases::new(c);
            let released = match &a.id {
                Some(id) => vec![leases.release(id, false)?],
                None => leases.release_all()?,
            };
            Ok(json!({ "released": released.iter().map(|l| l.id.clone()).collect::<Vec<_>>() }))
        })
    }

    #[tool(
        description = "Whether you may touch these paths: the other agents' exclusive leases covering them, if any."
    )]
    fn lease_check(&self, Parameters(a): Parameters<CheckArg>) -> Answer {
        self.with(|c| {
            let me = c.actor()?.agent;
            let conflicts = Leases::new(c).check(&me, &a.paths)?;
            Ok(json!({ "ok": conflicts.is_empty(), "conflicts": conflicts }))
        })
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for CoordServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("git-coord", env!("CARGO_PKG_VERSION")))
            .with_instructions(
            "git-coord: tasks, messages and leases shared through git. Call brief first; claim a task before working on it (task_claim); lease paths before editing (lease_acquire); task_done with a summary when finished. Other tools: ready, task_show, task_new, task_comment, send, inbox, read, ack, reply, lease_release, lease_check, whoami, status.",
        )
    }
}

/// Object files made ahead for the next call, once each reply is out: enough for a `send` (11
/// objects) and a heartbeat.
const FILES_AHEAD: usize = 16;

/// Once the last reply is out, closes the files of the refs the call replaced, freeing them
/// ([`Repo::close_replaced_refs`](crate::git::Repo::close_replaced_refs)), and makes the files of
/// the session's next writes ([`Repo::prepare_write_files`](crate::git::Repo::prepare_write_files)):
/// a `task_claim` then only links its lock, and fills and renames its five objects.
fn prepare_next_writes() {
    with_session_repo(|repo| {
        repo.close_replaced_refs();
        repo.prepare_write_files(FILES_AHEAD);
    });
}

/// Runs `f` on the session's repository, if a call opened one and none is using it now.
fn with_session_repo(f: impl FnOnce(&crate::git::Repo)) {
    SESSION.with(|session| {
        if let Ok(held) = session.try_borrow()
            && let Some((_, coord)) = held.as_ref()
        {
            f(&coord.repo);
        }
    });
}

/// Serves over stdin and stdout until the client closes them, through the line filter that
/// answers requests too long or with an id JSON-RPC does not allow (see `lines`).
pub fn serve(dir: PathBuf, agent: Option<String>, offline: bool) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the MCP server: {e}")))?;
    let served = runtime.block_on(async move {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (from_server, to_server) = tokio::io::split(ours);
        let out = Arc::new(tokio::sync::Mutex::new(lines::Stdout(std::io::stdout())));
        tokio::spawn(lines::pump_requests(
            tokio::io::stdin(),
            to_server,
            Arc::clone(&out),
        ));
        let replies = tokio::spawn(lines::pump_replies(from_server, out, prepare_next_writes));
        let service = CoordServer::new(dir, agent, offline)
            .serve(theirs)
            .await
            .map_err(|e| Error::Other(format!("MCP initialisation failed: {e}")))?;
        service
            .waiting()
            .await
            .map_err(|e| Error::Other(format!("MCP server stopped: {e}")))?;
        // Every reply the server wrote reaches stdout before the process ends.
        let _ = replies.await;
        Ok(())
    });
    // A read of stdin cannot be cancelled: do not wait for it.
    runtime.shutdown_background();
    // The session's repository is not closed before the process ends: remove what it made ahead.
    with_session_repo(crate::git::Repo::discard_write_files);
    served
}
