//! The command line: clap definitions, dispatch, and the only place that prints.

mod agent;
mod checkpoint;
mod demo;
mod globals;
mod history;
mod hooks;
mod lease;
mod logs;
mod manual;
mod messages;
mod output;
mod status;
mod supervise;
mod sync;
mod wait;
mod workflow;

use std::io::{self, Read, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, Result, exit};
use crate::model::task::{Kind, State};
use crate::ops::agent_role::{RoleFilter, routing_role};
use crate::ops::context::Coord;
use crate::ops::tasks::{ListFilter, NewTask, TaskEdit, Tasks};

const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  1  error (bad input, missing task, not a repository, malformed document,
     a remote that cannot be reached or refuses, a failed checkpoint gate)
  2  usage (unknown command or flag, missing argument, a flag value that
     does not parse)
  3  refused by the state or lost to another writer (a task someone else holds,
     `claim --next` with nothing ready, a dependency cycle, a task in the wrong state,
     a path leased to another agent, a commit or push the lease guard refused,
     a paused or cancelled team, a remote or branch that kept moving,
     `wait --timeout` with nothing arrived)";

/// Coordinate coding agents and humans on one repository, with nothing but git.
#[derive(Parser, Debug)]
#[command(name = "git-coord", bin_name = "git coord", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Act as this agent (else GIT_COORD_AGENT, else the repository's git user)
    #[arg(long, global = true, value_name = "NAME")]
    agent: Option<String>,
    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    json: bool,
    /// Keep claims and leases local instead of confirming them at the remote (sync settles them)
    #[arg(long, global = true)]
    offline: bool,
    /// Run as if started in DIR
    #[arg(short = 'C', global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Diagnostics on stderr (-v, -vv)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

// Deferred: a run builds the arguments of the one subcommand it runs, not of all of them.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum Command {
    /// Prepare the repository (idempotent)
    Init,
    /// Create, claim and finish tasks
    #[command(subcommand)]
    Task(TaskCommand),
    /// Open, unclaimed tasks whose dependencies are done, most urgent first
    ///
    /// A registered agent sees the tasks of its own role and those with no role; anyone else
    /// sees every ready task.
    Ready {
        /// Only tasks of this role (and tasks with no role)
        #[arg(long, conflicts_with_all = ["mine", "any_role"])]
        role: Option<String>,
        /// Only tasks of the acting agent's role, as refs/coord/agents has it now (the default)
        #[arg(long, conflicts_with = "any_role")]
        mine: bool,
        /// Tasks of every role
        #[arg(long)]
        any_role: bool,
    },
    /// Tasks that wait, and what they wait on
    Blocked,
    /// Agents: their branches, worktrees and registrations
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Who acts here, as what, where, for which project
    Whoami,
    /// Reserve paths for this agent: acquire, renew, release, list, check
    #[command(subcommand)]
    Lease(lease::LeaseCommand),
    /// Install or remove the git hooks that guard leased paths
    #[command(subcommand)]
    Hooks(hooks::HooksCommand),
    /// Send a message to an agent, a role, everyone, or a task's thread
    Send(messages::SendArgs),
    /// Your messages: unread first, with counts
    Inbox(messages::InboxArgs),
    /// Show one message whole and mark it read
    Read {
        id: String,
        /// Save its attachments into DIR (never outside it)
        #[arg(long, value_name = "DIR")]
        save_attachments: Option<PathBuf>,
    },
    /// Acknowledge a message (marks it read too)
    Ack { id: String },
    /// Reply to a message: to its sender, in its thread
    Reply {
        id: String,
        #[command(flatten)]
        text: messages::MessageText,
    },
    /// A whole conversation, oldest first (NAME:ID: the thread of another project's task)
    Thread {
        id: String,
        /// With NAME:ID: fetch that project first
        #[arg(long)]
        fetch: bool,
    },
    /// Plans, reviews, notes and reports kept with tasks
    #[command(subcommand)]
    Artifact(messages::ArtifactCommand),
    /// What this agent needs to know now, in a few lines
    Brief {
        /// The organiser's overview instead: counts, progress, stale agents, blocked work, results
        #[arg(long, alias = "organizer")]
        organiser: bool,
        /// Fit in N characters (default 4000, at least 200)
        #[arg(long, value_name = "N", value_parser = parse_max_chars)]
        max_chars: Option<usize>,
    },
    /// Fetch refs/coord/* from a remote, merge them, push the result (default: the coordination remote)
    Sync { remote: Option<String> },
    /// Fetch and merge refs/coord/* from a remote, without pushing
    Fetch { remote: Option<String> },
    /// Push refs/coord/* to a remote (refused when it has state this clone has not merged)
    Push { remote: Option<String> },
    /// Merge agent branches into the integration branch behind gates; list, show, roll back
    Checkpoint(checkpoint::CheckpointArgs),
    /// Related projects: tasks filed into them, dependencies on their tasks, mail
    #[command(subcommand)]
    Project(sync::ProjectCommand),
    /// The team in a screenful: tasks, agents, leases, workflows, the last checkpoint
    Status {
        /// Fetch the coordination remote first (read-only, never pushing), to see every machine
        #[arg(long)]
        fetch: bool,
    },
    /// Block until something arrives: an unread message, a change to a task, ready work for
    /// your role (all but --task: inbox and ready work). Exit 3 on --timeout
    Wait(wait::WaitArgs),
    /// Run the team until stopped: launch the agents whose role has a command, launch again one
    /// that ends while work waits for it (bounded), stop them on pause, cancel and exit
    Supervise(supervise::SuperviseArgs),
    /// Launched agents' output, interleaved in time order, each line after its agent's name
    Logs(logs::LogsArgs),
    /// Serve the agent's operations over the Model Context Protocol (stdio)
    Mcp,
    /// A read-only web dashboard of the team, live as refs/coord/* change
    Serve {
        /// The port (0: any free one); the address is printed on stdout
        #[arg(long, default_value_t = 7420)]
        port: u16,
        /// The address to listen on; anything but loopback needs --token
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// A secret every request must carry (?token=SECRET or Authorization: Bearer SECRET)
        #[arg(long)]
        token: Option<String>,
        /// Fetch the coordination remote this often (read-only, never pushing), so the page
        /// shows what every machine did
        #[arg(long, value_name = "DUR", value_parser = wait::parse_duration_arg)]
        fetch: Option<std::time::Duration>,
    },
    /// The dependency graph for other tools
    Graph {
        /// dot (Graphviz) or mermaid (--json: nodes and edges)
        #[arg(long, default_value = "dot", value_parser = ["dot", "mermaid"])]
        format: String,
        /// Leave done tasks out
        #[arg(long)]
        no_done: bool,
    },
    /// Workflows: an epic and its stages from a template
    #[command(subcommand)]
    Workflow(workflow::WorkflowCommand),
    /// Pause the team: no new claims, and stop hooks let workers stop
    Pause {
        #[arg(long)]
        reason: Option<String>,
    },
    /// Let a paused or cancelled team claim again
    Resume,
    /// Cancel the team's work (or one workflow's): every claim and lease released, every agent told
    Cancel {
        /// Only this workflow (its epic's id)
        #[arg(long, value_name = "ID")]
        workflow: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Run one hook (what the installed shims and agent CLIs call): pre-commit, prepare-commit-msg, pre-push, stop, after-tool
    Hook {
        name: String,
        /// What git passed to the hook
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The roles of this project (.coord.yaml, or the defaults)
    Roles,
    /// The audit trail, from the history of refs/coord/tasks; with --agent NAME, that agent's
    /// commits on every branch (Coord-Agent trailers) and on every refs/coord/* ref
    Log {
        /// Only entries about this task
        #[arg(long, value_name = "ID")]
        task: Option<String>,
        /// At most N entries
        #[arg(short = 'n', long = "max-count", value_name = "N")]
        max_count: Option<usize>,
    },
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (git-coord.1, git-coord-task-claim.1, ...) into DIR/man1
    Man {
        /// Default: PREFIX/share/man for a binary in PREFIX/bin, where `man` looks
        // Its own id: the global `-C DIR` is `dir`, and a deferred subcommand gets the globals
        // before its own arguments, so the same id would take the value of either.
        #[arg(long = "dir", id = "man_dir", value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Show every capability working in a throwaway repository, in one screen
    Demo {
        /// Keep the throwaway repository and print where it is
        #[arg(long)]
        keep: bool,
        /// Print every command the demo runs with its whole output, not one screen
        #[arg(long)]
        full: bool,
    },
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum TaskCommand {
    /// Create a task and print its id
    New(NewArgs),
    /// List tasks, most urgent first
    List {
        #[arg(long, value_parser = parse_state)]
        state: Option<State>,
        #[arg(long)]
        assignee: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        label: Option<String>,
    },
    /// Show one task whole (NAME:ID: another project's task, as last fetched)
    Show {
        id: String,
        /// With NAME:ID: fetch that project first
        #[arg(long)]
        fetch: bool,
        /// Also show the task's history
        #[arg(long)]
        history: bool,
    },
    /// Change a task's fields
    Edit(EditArgs),
    /// Add a comment to a task (NAME:ID: on another project's task, through its URL)
    Comment { id: String, text: String },
    /// Be told when a task is done or blocked, as its creator is (`--agent` follows as another)
    Follow { id: String },
    /// Stop following a task
    Unfollow { id: String },
    /// Claim a task, or the most urgent ready one with --next
    Claim {
        #[arg(required_unless_present = "next", conflicts_with = "next")]
        id: Option<String>,
        /// Claim the most urgent ready task
        #[arg(long)]
        next: bool,
        /// With --next: only tasks of this role (and tasks with no role), instead of your own
        #[arg(long, requires = "next", conflicts_with = "any_role")]
        role: Option<String>,
        /// With --next: a task of any role, not only of your own
        #[arg(long, requires = "next")]
        any_role: bool,
        /// Claim even though dependencies are not done
        #[arg(long, conflicts_with = "next")]
        force: bool,
    },
    /// Give a claimed task back
    Release {
        id: String,
        /// Release a task claimed by another agent
        #[arg(long)]
        force: bool,
    },
    /// Mark a task done
    Done {
        id: String,
        /// A short result summary, for whoever reads progress
        #[arg(long)]
        summary: Option<String>,
        /// Finish a task claimed by another agent
        #[arg(long)]
        force: bool,
        /// Tell no one: its creator gets no message
        #[arg(long)]
        quiet: bool,
    },
    /// Return a task to open (from done, claimed or blocked)
    Reopen {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        /// Reopen a task claimed by another agent (their claim is dropped)
        #[arg(long)]
        force: bool,
    },
    /// Mark a task blocked, saying on what
    Block {
        id: String,
        #[arg(long)]
        reason: String,
        /// Tell no one: its creator gets no message
        #[arg(long)]
        quiet: bool,
    },
    /// Dependencies between tasks
    #[command(subcommand)]
    Dep(DepCommand),
}

#[derive(Subcommand, Debug)]
enum DepCommand {
    /// ID waits on DEP (an id here, or NAME:ID in a related project)
    Add { id: String, dep: String },
    /// ID no longer waits on DEP
    Rm { id: String, dep: String },
    /// What ID waits on, recursively
    Tree { id: String },
}

#[derive(Args, Debug)]
struct NewArgs {
    title: String,
    /// Description text
    #[arg(short = 'd', long = "description", conflicts_with = "file")]
    description: Option<String>,
    /// Read the description from FILE ('-' for stdin)
    #[arg(short = 'F', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// 0 (most urgent) to 4
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=4))]
    priority: Option<u8>,
    #[arg(long = "type", value_parser = parse_kind)]
    kind: Option<Kind>,
    #[arg(long)]
    role: Option<String>,
    #[arg(long = "label")]
    labels: Vec<String>,
    /// A task this one waits on: an id here, or NAME:ID in a related project
    #[arg(long = "dep", value_name = "ID", conflicts_with = "project")]
    deps: Vec<String>,
    #[arg(long, value_name = "ID", conflicts_with = "project")]
    parent: Option<String>,
    /// File the task into this related project, through its URL; prints NAME:ID
    #[arg(long, value_name = "NAME")]
    project: Option<String>,
    /// With --project: a file for the task's first message (repeatable)
    #[arg(long = "attach", value_name = "FILE", requires = "project")]
    attach: Vec<PathBuf>,
    /// With --project: the task here the filing is for (recorded in its origin)
    #[arg(long, value_name = "ID", requires = "project")]
    from: Option<String>,
}

#[derive(Args, Debug)]
struct EditArgs {
    id: String,
    #[arg(long)]
    title: Option<String>,
    #[arg(short = 'd', long = "description", conflicts_with = "file")]
    description: Option<String>,
    #[arg(short = 'F', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=4))]
    priority: Option<u8>,
    #[arg(long = "type", value_parser = parse_kind)]
    kind: Option<Kind>,
    #[arg(long, conflicts_with = "no_role")]
    role: Option<String>,
    #[arg(long)]
    no_role: bool,
    #[arg(long = "add-label", value_name = "L")]
    add_labels: Vec<String>,
    #[arg(long = "rm-label", value_name = "L")]
    rm_labels: Vec<String>,
    #[arg(long, value_name = "ID", conflicts_with = "no_parent")]
    parent: Option<String>,
    #[arg(long)]
    no_parent: bool,
}

fn parse_state(s: &str) -> Result<State, String> {
    State::parse(s).map_err(|e| e.to_string())
}

fn parse_max_chars(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    crate::views::brief::check_budget(n).map_err(|_| {
        format!(
            "a brief needs at least {} characters",
            crate::views::brief::MIN_MAX_CHARS
        )
    })
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s).map_err(|e| e.to_string())
}

/// Parses the command line, runs it, and returns the process exit code.
pub fn main() -> u8 {
    manual::ensure_installed();
    let cli = match parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    init_tracing(cli.verbose);
    let json = cli.json;
    match run(cli) {
        Ok(()) => exit::OK,
        Err(Error::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => exit::OK,
        Err(err) => {
            output::error(&err, json);
            err.exit_code()
        }
    }
}

/// Parses a command line as its own process does: first with the globals moved in front and
/// taken by the top command alone (globals.rs says why and when that is the same), else as
/// declared. The definition of every command that clap builds to parse it is left for the kernel
/// to free at exit: taking it apart piece by piece was 4% of the instructions of a claim.
fn parse(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> std::result::Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let hoisted = globals::hoist(args.clone());
    let mut lean = std::mem::ManuallyDrop::new(Cli::command().mut_args(|a| a.global(false)));
    if let Ok(mut matches) = lean.try_get_matches_from_mut(hoisted.argv) {
        let mut leaf: &clap::Command = &lean;
        let mut at = &matches;
        while let Some((name, sub)) = at.subcommand() {
            leaf = leaf.find_subcommand(name).unwrap_or(leaf);
            at = sub;
        }
        if globals::trusted(leaf, &hoisted.before_moved)
            && let Ok(cli) = Cli::from_arg_matches_mut(&mut matches)
        {
            return Ok(cli);
        }
    }
    let mut command = std::mem::ManuallyDrop::new(Cli::command());
    let mut matches = command.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut command))
}

/// `git coord man [--dir DIR]`.
fn man(dir: Option<PathBuf>, json: bool) -> Result<()> {
    let dir = match dir.or_else(manual::default_dir) {
        Some(dir) => dir,
        None => {
            return Err(Error::Other(
                "this binary is not in a folder named bin, so the manual has no default place: name one with `git coord man --dir DIR`".into(),
            ));
        }
    };
    let pages = manual::write_pages(&dir)?;
    let out = &mut io::stdout().lock();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({ "dir": dir.display().to_string(), "pages": pages })
        )?;
    } else {
        writeln!(
            out,
            "wrote {pages} manual pages into {}/man1",
            dir.display()
        )?;
    }
    Ok(())
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => return,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(io::stderr)
        .without_time()
        .init();
}

fn run(cli: Cli) -> Result<()> {
    if matches!(
        cli.command,
        Command::Mcp | Command::Demo { .. } | Command::Hook { .. }
    ) {
        // These write stdout themselves (from threads, or as a hook's answer).
        return run_with(cli, None, true);
    }
    // Large writes: a listing of 100,000 tasks is 7 MB, a write system call per 8 KiB of it 1 ms.
    let out = &mut io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    run_with(cli, Some(out), true)?;
    out.flush()?;
    Ok(())
}

/// Runs a parsed command line, its output into `out` (the demo shows real outputs this way).
/// `last` says the process ends after it: the repository is then left open for the kernel to
/// free at exit, which spares each command the unmapping and freeing (3% of a claim's time).
fn run_with(cli: Cli, out: Option<&mut dyn Write>, last: bool) -> Result<()> {
    let stop_hook = matches!(&cli.command, Command::Hook { name, .. } if name == "stop");
    let after_tool_hook =
        matches!(&cli.command, Command::Hook { name, .. } if name == "after-tool");
    let dir = match &cli.dir {
        Some(dir) => dir.clone(),
        // The stop hook answers even from a folder that was deleted (it lets the agent stop).
        None if stop_hook || after_tool_hook => {
            std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
        }
        None => std::env::current_dir()?,
    };
    if let Some(agent) = &cli.agent
        && matches!(
            cli.command,
            Command::Man { .. } | Command::Completions { .. }
        )
    {
        // Checked here for the commands that open no repository; the others check it opening
        // one, and the stop hook says it and lets the agent stop instead of failing its client.
        crate::model::name::validate("agent name", agent)?;
    }
    match &cli.command {
        Command::Demo { keep, full } => return demo::run(*keep, *full),
        Command::Completions { shell } => {
            return Ok(manual::completions(*shell, &mut io::stdout().lock())?);
        }
        // `--dir` is relative to `-C`, as every path given on the command line is.
        Command::Man { dir: pages } => return man(pages.as_ref().map(|p| dir.join(p)), cli.json),
        _ => {}
    }
    if stop_hook {
        // The stop hook must answer even where no repository can be opened.
        return hooks::run_stop_hook(crate::views::stop::Asked {
            dir: &dir,
            agent: cli.agent.as_deref(),
        });
    }
    if after_tool_hook {
        // It runs after every tool call: it never fails the client, and takes no heartbeat.
        return hooks::run_after_tool_hook(crate::views::stop::Asked {
            dir: &dir,
            agent: cli.agent.as_deref(),
        });
    }
    let mut coord = Coord::open(&dir, cli.agent.clone())?;
    coord.offline = cli.offline;
    let result = dispatch(&coord, cli, out);
    for warning in coord.take_warnings() {
        eprintln!("warning: {warning}");
    }
    if last {
        // Not closed, so its Drop would not remove them.
        coord.repo.discard_write_files();
        std::mem::forget(coord);
    }
    result
}

/// Runs a parsed command line in `coord`.
fn dispatch(coord: &Coord, cli: Cli, out: Option<&mut dyn Write>) -> Result<()> {
    // Every command an agent runs counts as its heartbeat (refs/coord/presence, no history).
    crate::ops::presence::implicit_beat(coord);
    if let Command::Mcp = cli.command {
        // The server writes stdout from its own threads: it must not be locked here.
        return crate::mcp::serve(coord.start_dir.clone(), cli.agent, cli.offline);
    }
    let mut stdout = io::stdout();
    let out: &mut dyn Write = match out {
        Some(out) => out,
        None => &mut stdout,
    };
    let json = cli.json;
    let tasks = Tasks::new(coord);
    match cli.command {
        Command::Init => {
            let created = coord.init()?;
            output::init(out, &created, json)?;
        }
        Command::Task(cmd) => run_task(&tasks, cmd, out, json)?,
        Command::Ready {
            role,
            mine: _,
            any_role,
        } => {
            let role = routing_role(coord, RoleFilter::from_flags(role, any_role))?;
            let index = tasks.load_ready_index()?;
            output::problems(crate::ops::tasks::TASKS_REF, &index.problems());
            output::summaries(
                out,
                &crate::ops::tasks::ready_tasks(&index, role.as_deref()),
                json,
            )?;
        }
        Command::Blocked => {
            let index = tasks.load_index()?;
            output::problems(crate::ops::tasks::TASKS_REF, &index.problems());
            output::blocked(out, &crate::ops::tasks::blocked(&index), json)?;
        }
        Command::Log { task, max_count } => match &cli.agent {
            // `log --agent NAME`: that agent's code and coordination commits.
            Some(agent) => history::agent_log(coord, agent, task.as_deref(), max_count, out, json)?,
            None => {
                let entries = tasks.log(task.as_deref(), max_count)?;
                output::log(out, &entries, json)?;
            }
        },
        Command::Agent(cmd) => agent::run(coord, cmd, out, json)?,
        Command::Whoami => agent::whoami(coord, out, json)?,
        Command::Lease(cmd) => lease::run(coord, cmd, out, json)?,
        Command::Hooks(cmd) => hooks::run(coord, cmd, out, json)?,
        Command::Hook { name, args } => hooks::run_hook(coord, &name, &args, json)?,
        Command::Send(a) => messages::send(coord, a, out, json)?,
        Command::Sync { remote } => sync::sync(coord, remote.as_deref(), out, json)?,
        Command::Fetch { remote } => sync::fetch(coord, remote.as_deref(), out, json)?,
        Command::Push { remote } => sync::push(coord, remote.as_deref(), out, json)?,
        Command::Project(cmd) => sync::project(coord, cmd, out, json)?,
        Command::Checkpoint(a) => checkpoint::run(coord, a, out, json)?,
        Command::Pause { reason } => hooks::team(coord, "pause", reason, None, out, json)?,
        Command::Workflow(cmd) => workflow::run(coord, cmd, out, json)?,
        Command::Status { fetch } => status::status(coord, fetch, out, json)?,
        Command::Wait(args) => wait::run(coord, args, out, json)?,
        Command::Supervise(args) => supervise::supervise(coord, args, out, json)?,
        Command::Logs(args) => logs::logs(coord, args, out, json)?,
        Command::Mcp => unreachable!("handled before stdout is locked"),
        Command::Serve {
            port,
            bind,
            token,
            fetch,
        } => {
            let opts = crate::serve::Options {
                dir: coord.start_dir.clone(),
                bind,
                port,
                token,
                fetch,
            };
            let listener = crate::serve::bind(&opts)?;
            let addr = listener.local_addr()?;
            let shown = if addr.is_ipv6() {
                format!("[{}]", addr.ip())
            } else {
                addr.ip().to_string()
            };
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "url": format!("http://{shown}:{}/", addr.port()) })
                )?;
            } else {
                writeln!(
                    out,
                    "serving the dashboard on http://{shown}:{}/ (ctrl-c stops it)",
                    addr.port()
                )?;
            }
            out.flush()?;
            crate::serve::run(listener, opts)?;
        }
        Command::Graph { format, no_done } => status::graph(coord, &format, no_done, out, json)?,
        Command::Resume => hooks::team(coord, "resume", None, None, out, json)?,
        Command::Cancel { workflow, reason } => {
            hooks::team(coord, "cancel", reason, workflow, out, json)?
        }
        Command::Inbox(a) => messages::inbox(coord, a, out, json)?,
        Command::Read {
            id,
            save_attachments,
        } => messages::read(coord, &id, save_attachments, out, json)?,
        Command::Ack { id } => messages::ack(coord, &id, out, json)?,
        Command::Reply { id, text } => messages::reply(coord, &id, text, out, json)?,
        Command::Thread { id, fetch } => messages::thread(coord, &id, fetch, out, json)?,
        Command::Artifact(cmd) => messages::artifact(coord, cmd, out, json)?,
        Command::Brief {
            organiser,
            max_chars,
        } => messages::brief(coord, organiser, max_chars, out, json)?,
        Command::Roles => agent::roles(coord, out, json)?,
        Command::Demo { .. } | Command::Completions { .. } | Command::Man { .. } => {
            unreachable!("handled before opening a repository")
        }
    }
    out.flush()?;
    Ok(())
}

fn run_task(tasks: &Tasks, cmd: TaskCommand, out: &mut dyn Write, json: bool) -> Result<()> {
    match cmd {
        TaskCommand::New(a) => {
            let description =
                read_text(a.description, a.file.as_ref(), &tasks.start_dir())?.unwrap_or_default();
            if let Some(project) = &a.project {
                let filing = crate::ops::projects::FileTask {
                    title: a.title,
                    description,
                    attachments: messages::read_attachments(&a.attach, &tasks.start_dir())?,
                    kind: a.kind,
                    priority: a.priority,
                    role: a.role,
                    labels: a.labels,
                    from: a.from,
                };
                let (p, task) = crate::ops::projects::Projects::new(tasks.coord())
                    .file_task(project, filing)?;
                if json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({ "project": p.name, "id": task.id })
                    )?;
                } else {
                    writeln!(out, "{}:{}", p.name, task.id)?;
                }
                return Ok(());
            }
            let task = crate::ops::work::create(
                tasks,
                NewTask {
                    title: a.title,
                    description,
                    priority: a.priority,
                    kind: a.kind,
                    role: a.role,
                    labels: a.labels,
                    deps: a.deps,
                    parent: a.parent,
                },
            )?;
            output::task_id(out, &task, json)?;
        }
        TaskCommand::List {
            state,
            assignee,
            role,
            label,
        } => {
            let index = tasks.load_index()?;
            output::problems(crate::ops::tasks::TASKS_REF, &index.problems());
            let filter = ListFilter {
                state,
                assignee,
                role,
                label,
            };
            output::summaries(out, &crate::ops::tasks::list(&index, &filter), json)?;
        }
        TaskCommand::Show { id, history, fetch } => {
            let coord = tasks.coord();
            if crate::model::id::split_foreign(&id).is_some() {
                let crate::ops::projects::ForeignTask {
                    project: p,
                    task,
                    thread,
                    skipped,
                } = crate::ops::projects::Projects::new(coord).show_task(&id, fetch)?;
                output::skipped_in_projects(&skipped);
                if json {
                    let mut value = output::task_value(&task, history);
                    value["project"] = serde_json::json!(p.name);
                    value["fetched"] = serde_json::json!(p.fetched);
                    value["messages"] = serde_json::Value::Array(
                        thread
                            .iter()
                            .map(|m| messages::message_json(m, None))
                            .collect(),
                    );
                    writeln!(out, "{value}")?;
                } else {
                    writeln!(
                        out,
                        "project {} ({}), fetched {}",
                        p.name,
                        p.url,
                        p.fetched.as_deref().unwrap_or("never")
                    )?;
                    let names = crate::ops::projects::Projects::new(coord).names();
                    output::task(out, &task, history, false, &names)?;
                    messages::task_extras(out, &thread, &[], &names)?;
                }
                return Ok(());
            }
            let task = tasks.show(&id)?;
            let thread = crate::ops::messages::Messages::new(coord).task_thread(&task.id)?;
            let (artifacts, _) =
                crate::ops::artifacts::Artifacts::new(coord).list(Some(&task.id))?;
            if json {
                let mut value = output::task_value(&task, history);
                value["messages"] = serde_json::Value::Array(
                    thread
                        .iter()
                        .map(|m| messages::message_json(m, None))
                        .collect(),
                );
                value["artifacts"] = serde_json::Value::Array(
                    artifacts.iter().map(messages::artifact_json).collect(),
                );
                writeln!(out, "{value}")?;
            } else {
                let names = messages::project_names(
                    coord,
                    task.origin.is_some()
                        || task.comments.iter().any(|c| c.project.is_some())
                        || thread.iter().any(|m| m.from_project.is_some()),
                );
                output::task(out, &task, history, false, &names)?;
                messages::task_extras(out, &thread, &artifacts, &names)?;
            }
        }
        TaskCommand::Edit(a) => {
            let description = read_text(a.description, a.file.as_ref(), &tasks.start_dir())?;
            let edit = TaskEdit {
                title: a.title,
                description,
                priority: a.priority,
                kind: a.kind,
                role: if a.no_role {
                    Some(None)
                } else {
                    a.role.map(Some)
                },
                add_labels: a.add_labels,
                remove_labels: a.rm_labels,
                parent: if a.no_parent {
                    Some(None)
                } else {
                    a.parent.map(Some)
                },
            };
            output::changed(out, "edited", &tasks.edit(&a.id, edit)?, json)?;
        }
        TaskCommand::Comment { id, text } => {
            if crate::model::id::split_foreign(&id).is_some() {
                let (p, task) =
                    crate::ops::projects::Projects::new(tasks.coord()).comment(&id, &text)?;
                if json {
                    let mut value = output::task_value(&task, false);
                    value["project"] = serde_json::json!(p.name);
                    writeln!(out, "{value}")?;
                } else {
                    writeln!(out, "commented on {}:{} {}", p.name, task.id, task.title)?;
                }
                return Ok(());
            }
            output::changed(out, "commented on", &tasks.comment(&id, &text)?, json)?
        }
        TaskCommand::Follow { id } => {
            let agent = tasks.coord().actor()?.agent;
            output::changed(out, "following", &tasks.follow(&id, &agent, true)?, json)?
        }
        TaskCommand::Unfollow { id } => {
            let agent = tasks.coord().actor()?.agent;
            output::changed(
                out,
                "no longer following",
                &tasks.follow(&id, &agent, false)?,
                json,
            )?
        }
        TaskCommand::Claim {
            id,
            next,
            role,
            any_role,
            force,
        } => {
            let task = match (id, next) {
                (_, true) => {
                    let role = routing_role(tasks.coord(), RoleFilter::from_flags(role, any_role))?;
                    tasks.claim_next(role.as_deref())?
                }
                (Some(id), false) => tasks.claim(&id, force)?,
                (None, false) => unreachable!("clap requires an id or --next"),
            };
            output::changed(out, "claimed", &task, json)?;
        }
        TaskCommand::Release { id, force } => {
            output::changed(out, "released", &tasks.release(&id, force)?, json)?
        }
        TaskCommand::Done {
            id,
            summary,
            force,
            quiet,
        } => {
            let tasks = Tasks::new(tasks.coord()).quiet(quiet);
            output::changed(
                out,
                "done:",
                &crate::ops::work::done(&tasks, &id, summary, force)?,
                json,
            )?
        }
        TaskCommand::Reopen { id, reason, force } => output::changed(
            out,
            "reopened",
            &crate::ops::work::reopen(tasks, &id, reason, force)?,
            json,
        )?,
        TaskCommand::Block { id, reason, quiet } => {
            let tasks = Tasks::new(tasks.coord()).quiet(quiet);
            output::changed(out, "blocked", &tasks.block(&id, &reason)?, json)?
        }
        TaskCommand::Dep(DepCommand::Add { id, dep }) => output::changed(
            out,
            "dependency added to",
            &crate::ops::work::dep_add(tasks, &id, &dep)?,
            json,
        )?,
        TaskCommand::Dep(DepCommand::Rm { id, dep }) => output::changed(
            out,
            "dependency removed from",
            &tasks.dep_rm(&id, &dep)?,
            json,
        )?,
        TaskCommand::Dep(DepCommand::Tree { id }) => {
            output::dep_tree(out, &tasks.dep_tree(&id)?, json)?
        }
    }
    Ok(())
}

/// The text of `-d TEXT` or `-F FILE` (`-` reads stdin), if either was given.
fn read_text(
    text: Option<String>,
    file: Option<&PathBuf>,
    start_dir: &std::path::Path,
) -> Result<Option<String>> {
    match (text, file) {
        (Some(t), _) => Ok(Some(t)),
        (None, Some(path)) => String::from_utf8(read_file(start_dir, path)?)
            .map(Some)
            .map_err(|_| {
                Error::Other(format!(
                    "cannot read {}: it is not UTF-8 text",
                    path.display()
                ))
            }),
        (None, None) => Ok(None),
    }
}

/// The bytes of a file named on the command line, relative to `start_dir`; `-` is stdin.
fn read_file(start_dir: &std::path::Path, path: &std::path::Path) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        io::stdin().read_to_end(&mut bytes)?;
        return Ok(bytes);
    }
    std::fs::read(start_dir.join(path))
        .map_err(|e| Error::Other(format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// The subcommands are deferred (built only when run), so the whole tree is built here, as
    /// `--help`, the manual and the completions build it: clap's own checks (no argument id twice
    /// in one command, globals included) and one about per command, its own.
    #[test]
    fn the_deferred_command_tree_is_whole_and_each_command_keeps_its_about() {
        let mut cli = Cli::command();
        cli.build();
        cli.clone().debug_assert();
        let mut abouts: Vec<(String, String)> = Vec::new();
        fn walk(cmd: &clap::Command, path: &str, abouts: &mut Vec<(String, String)>) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
                assert!(!about.is_empty(), "`{path}` has no about");
                abouts.push((path.clone(), about));
                walk(sub, &path, abouts);
            }
        }
        walk(&cli, "git coord", &mut abouts);
        for (path, about) in &abouts {
            let same: Vec<&str> = abouts
                .iter()
                .filter(|(_, a)| a == about)
                .map(|(p, _)| p.as_str())
                .collect();
            assert_eq!(same, [path.as_str()], "one about for several commands");
        }
        let about_of = |path: &str| {
            abouts
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, a)| a.clone())
                .unwrap_or_default()
        };
        assert!(about_of("git coord send").starts_with("Send a message"));
        assert!(about_of("git coord reply").starts_with("Reply to a message"));
        let man = cli.find_subcommand("man").expect("man");
        let dir_args = man
            .get_arguments()
            .filter(|a| a.get_long() == Some("dir") || a.get_short() == Some('C'))
            .count();
        assert_eq!(
            dir_args, 2,
            "`man --dir` and the global `-C` are two arguments"
        );
    }
}
