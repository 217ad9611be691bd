//! Every error a command can end with, the exit code it maps to and the hint shown with it.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A path another agent's lease forbids to this agent, or where a requested lease overlaps one.
/// Defined here, at the bottom of the house, because a refused lease carries it in its error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseConflict {
    /// The path checked, or the path (or pattern read as a path) both leases cover.
    pub path: String,
    pub lease_id: String,
    /// The agent holding the lease.
    pub holder: String,
    /// The holder's pattern that covers `path`.
    pub pattern: String,
    pub expires: String,
    /// The mode of the holder's lease: `exclusive` or `shared`.
    pub mode: &'static str,
}

/// Exit codes, as documented in the README and in `--help`.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    /// Lost to another writer, or refused by the state (a claim someone holds, nothing ready).
    pub const REFUSED: u8 = 3;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a git repository: {}", .0.display())]
    NotARepository(PathBuf),
    #[error("no task matches '{0}'")]
    NoSuchTask(String),
    #[error("'{prefix}' is ambiguous: it matches {}", .candidates.join(", "))]
    AmbiguousId {
        prefix: String,
        candidates: Vec<String>,
    },
    #[error("invalid {what} '{value}': {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: String,
    },
    #[error("task {id} is claimed by {holder}")]
    ClaimedByOther { id: String, holder: String },
    #[error("task {id} is {state}: {why}")]
    WrongState {
        id: String,
        state: String,
        why: String,
    },
    #[error("no ready task{}", .role.as_ref().map(|r| format!(" for role {r}")).unwrap_or_default())]
    NothingReady { role: Option<String> },
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("gave up after {attempts} attempts: other writers kept moving {refname}")]
    Contended { refname: String, attempts: u32 },
    #[error("malformed document {refname}:{path}: {why}")]
    Malformed {
        refname: String,
        path: String,
        why: String,
    },
    #[error(
        "{refname}:{path} has format version {found}, newer than this git-coord understands ({supported})"
    )]
    NewerFormat {
        refname: String,
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("{what} refused: {count} path(s) are leased exclusively to other agents")]
    GuardRefused {
        what: &'static str,
        count: usize,
        /// The first refusing lease's id, for the hint.
        lease: String,
    },
    /// `lease check` found conflicts, already listed on stdout one a line.
    #[error("{count} of the paths checked {are} leased by other agents (listed above)", are = if *.count == 1 { "is" } else { "are" })]
    PathsLeased { count: usize },
    #[error("cannot {what} {remote}: {why}")]
    Remote {
        remote: String,
        what: String,
        why: String,
    },
    /// A write kept in this clone because the coordination remote could not be reached: it goes
    /// out with the next sync, and nobody else knows of it until then.
    #[error(
        "{what}: written in this clone but not confirmed at {remote}, which could not be reached ({why})"
    )]
    Unconfirmed {
        what: String,
        remote: String,
        why: String,
    },
    /// Something about a related project: unreachable, refusing, malformed, an id not found.
    #[error("project {project} ({url}): {why}")]
    Project {
        project: String,
        url: String,
        why: String,
        hint: String,
    },
    #[error("the team is {state} ({reason}): no new claims")]
    TeamStopped { state: String, reason: String },
    #[error("cannot tell who is acting")]
    NoAgent,
    #[error("{}", describe_lease_conflicts(.0))]
    LeaseConflict(Vec<LeaseConflict>),
    #[error("no lease matches '{0}'")]
    NoSuchLease(String),
    #[error("lease {id} is held by {holder}")]
    LeaseHeldByOther { id: String, holder: String },
    #[error("lease {id} was released at {at}")]
    LeaseReleased { id: String, at: String },
    #[error("nothing arrived within {waited}")]
    WaitTimedOut { waited: String },
    /// Refused by the state of the repository, with nothing changed; `hint` says what to do.
    #[error("{why}")]
    Refused { why: String, hint: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("git: {0}")]
    Git(String),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn invalid(what: &'static str, value: impl Into<String>, why: impl Into<String>) -> Error {
        Error::Invalid {
            what,
            value: value.into(),
            why: why.into(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::ClaimedByOther { .. }
            | Error::WrongState { .. }
            | Error::NothingReady { .. }
            | Error::Cycle(_)
            | Error::Contended { .. }
            | Error::GuardRefused { .. }
            | Error::PathsLeased { .. }
            | Error::TeamStopped { .. }
            | Error::LeaseConflict(_)
            | Error::LeaseHeldByOther { .. }
            | Error::LeaseReleased { .. }
            | Error::WaitTimedOut { .. }
            | Error::Refused { .. } => exit::REFUSED,
            _ => exit::ERROR,
        }
    }

    /// What the user can do next, when there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::NotARepository(_) => {
                "run this inside a git repository, or `git init` one first".into()
            }
            Error::NoSuchTask(_) => "`git coord task list` shows the tasks and their ids".into(),
            Error::AmbiguousId { .. } => "type more characters of the id".into(),
            Error::ClaimedByOther { .. } => {
                "pick another task with `git coord ready`, or ask the holder to release it".into()
            }
            Error::NothingReady { role: Some(_) } => {
                "`git coord ready --any-role` shows the ready tasks of other roles (`claim --next --any-role` takes one); `git coord blocked` shows what waits and on what".into()
            }
            Error::NothingReady { role: None } => {
                "`git coord blocked` shows what waits and on what".into()
            }
            Error::Cycle(_) => {
                "break one link of the cycle first (`git coord task dep rm`, or `task edit --no-parent`)".into()
            }
            Error::Contended { .. } => "try again; many agents are writing at once".into(),
            Error::Malformed { .. } => {
                "inspect it with `git show`; other documents are unaffected".into()
            }
            Error::NewerFormat { .. } => {
                "upgrade git-coord (`cargo install --path .` in a newer checkout)".into()
            }
            Error::PathsLeased { .. } => {
                "ask the holder to release the lease or wait for it to expire (`git coord lease list --all` shows them)".into()
            }
            Error::GuardRefused { what, lease, .. } => format!(
                "ask the holder to release the lease or wait for it to expire; if its holder is gone (stale or retired), `git coord lease release {lease} --force` frees the path (a takeover of its task passes it to you); `git {what} --no-verify` bypasses the guard, GIT_COORD_GUARD=warn only warns"
            ),
            Error::Remote { .. } => {
                "check the remote's URL and your access (`git remote -v`, `git fetch`); local state is as it was, and a later `git coord sync` picks up where this stopped; `--offline` works locally".into()
            }
            Error::Unconfirmed { .. } => {
                "run the same command again once the remote can be reached: it confirms what was kept here, writing nothing twice (`git coord sync` also sends it); until then the others do not know of it, and after `stale_after` another agent may take the task over".into()
            }
            Error::TeamStopped { .. } => "`git coord resume` lets the team claim again".into(),
            Error::Project { hint, .. } | Error::Refused { hint, .. } => hint.clone(),
            Error::NoAgent => {
                "pass --agent NAME, set GIT_COORD_AGENT, or `git config user.name NAME`".into()
            }
            Error::LeaseConflict(_) => {
                "wait for the lease to expire, ask its holder to release it, or work on other paths; `git coord lease list` shows every lease".into()
            }
            Error::NoSuchLease(_) => {
                "`git coord lease list --all` shows the leases and their ids".into()
            }
            Error::LeaseHeldByOther { .. } => {
                "only the holder renews or releases a lease; `lease release --force` releases another agent's".into()
            }
            Error::LeaseReleased { .. } => {
                "acquire a new lease with `git coord lease acquire`".into()
            }
            Error::WaitTimedOut { .. } => {
                "wait again, or see where things stand with `git coord brief`".into()
            }
            _ => return None,
        })
    }
}

/// "PATH is leased by HOLDER until T (MODE lease ID, pattern 'P')", and how many more.
fn describe_lease_conflicts(conflicts: &[LeaseConflict]) -> String {
    let Some(first) = conflicts.first() else {
        return "the paths are leased by another agent".into();
    };
    let mut text = format!(
        "{} is leased by {} until {} ({} lease {}, pattern '{}')",
        first.path, first.holder, first.expires, first.mode, first.lease_id, first.pattern
    );
    match conflicts.len() {
        1 => {}
        2 => text.push_str(", and 1 more conflict"),
        n => text.push_str(&format!(", and {} more conflicts", n - 1)),
    }
    text
}
