//! The context every command runs in: the repository and who is acting.

use std::path::Path;

use crate::error::{Error, Result};
use crate::git::Repo;
use crate::model::name;
use crate::store::index::TaskIndex;
use crate::store::{Actor, COORD_REFS};

/// The file in a worktree's own git directory that names the agent living there.
pub const IDENTITY_FILE: &str = "coord-agent";

pub const AGENT_ENV: &str = "GIT_COORD_AGENT";

/// Where the acting agent's name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentitySource {
    Flag,
    Environment,
    Worktree,
    GitUser,
}

pub struct Coord {
    pub repo: Repo,
    /// The directory the command runs in (`-C DIR`, else the current one): relative paths given
    /// on the command line are relative to it.
    pub start_dir: std::path::PathBuf,
    agent_flag: Option<String>,
    /// `--offline`: claims and leases are not confirmed at the remote.
    pub offline: bool,
    /// The task index last refreshed in this process: a long-lived process (the MCP server)
    /// refreshes it from the tree diff instead of reading the cache file again.
    task_index: std::cell::RefCell<Option<TaskIndex>>,
    /// What went wrong after an operation's own write held (a follow-up that failed, a write
    /// kept here because the remote could not be reached): the interface shows each to the user.
    warnings: std::cell::RefCell<Vec<String>>,
}

impl Coord {
    pub fn open(dir: &Path, agent_flag: Option<String>) -> Result<Coord> {
        if let Some(agent) = &agent_flag {
            name::validate("agent name", agent)?;
        }
        let start_dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir()?.join(dir)
        };
        Ok(Coord {
            repo: Repo::discover(dir)?,
            start_dir,
            agent_flag,
            offline: false,
            task_index: Default::default(),
            warnings: Default::default(),
        })
    }

    /// Records something the user must hear that does not undo the operation: the interface
    /// shows it (`warning: ...` on stderr, `warnings` in an MCP result).
    pub fn warn(&self, text: impl Into<String>) {
        let text = text.into();
        tracing::debug!("warning: {text}");
        self.warnings.borrow_mut().push(text);
    }

    /// The warnings recorded since the last call, with what the repository did on its own.
    pub fn take_warnings(&self) -> Vec<String> {
        let mut warnings = self.repo.take_notes();
        warnings.append(&mut self.warnings.borrow_mut());
        warnings
    }

    /// The remote claims and leases are confirmed at: the coordination remote, unless
    /// `--offline` or there is none.
    pub fn confirm_remote(&self) -> Result<Option<crate::remote::Remote>> {
        let configured_offline = self
            .repo
            .config_string("coord.online")
            .is_some_and(|v| matches!(v.trim(), "false" | "no" | "off" | "0"));
        if self.offline || configured_offline {
            return Ok(None);
        }
        match crate::remote::default_remote(&self.repo) {
            Some(name) => crate::remote::resolve_remote(&self.repo, Some(&name)).map(Some),
            None => Ok(None),
        }
    }

    /// The task index this process last used, to be refreshed for a new snapshot.
    pub fn take_task_index(&self) -> TaskIndex {
        self.task_index.borrow_mut().take().unwrap_or_default()
    }

    /// Keeps `index` for the next command in this process.
    pub fn keep_task_index(&self, index: &TaskIndex) {
        *self.task_index.borrow_mut() = Some(index.clone());
    }

    /// The project configuration: `.coord.yaml` of this worktree, read now (the defaults in a
    /// bare repository).
    pub fn config(&self) -> Result<crate::ops::config::Config> {
        crate::ops::config::Config::load(self.repo.workdir().as_deref())
    }

    /// Checks that the configuration reads. A command whose later steps read it calls this
    /// first, so that a file that does not parse is refused before anything moves.
    pub fn check_config(&self) -> Result<()> {
        self.config().map(|_| ())
    }

    /// Gives back the index [`Coord::take_task_index`] lent, for the next command.
    pub fn give_back_task_index(&self, index: TaskIndex) {
        *self.task_index.borrow_mut() = Some(index);
    }

    /// The acting agent: `--agent`, else GIT_COORD_AGENT, else the agent whose worktree this is,
    /// else the repository's git user.
    pub fn actor(&self) -> Result<Actor> {
        self.identity().map(|(actor, _)| actor)
    }

    /// The acting agent and where its name came from.
    pub fn identity(&self) -> Result<(Actor, IdentitySource)> {
        let user_name = self
            .repo
            .config_string("user.name")
            .filter(|s| !s.trim().is_empty());
        let email = self.repo.config_string("user.email").unwrap_or_default();
        let from_env = std::env::var(AGENT_ENV).ok().filter(|s| !s.is_empty());
        let (agent, source) = if let Some(agent) = self.agent_flag.clone() {
            (agent, IdentitySource::Flag)
        } else if let Some(agent) = from_env {
            name::validate("agent name", &agent)?;
            (agent, IdentitySource::Environment)
        } else if let Some(agent) = worktree_agent(&self.repo) {
            (agent, IdentitySource::Worktree)
        } else {
            let agent = user_name
                .as_deref()
                .and_then(name::agent_from_user_name)
                .ok_or(Error::NoAgent)?;
            (agent, IdentitySource::GitUser)
        };
        let human = match (&user_name, email.is_empty()) {
            (Some(n), false) => format!("{n} <{email}>"),
            (Some(n), true) => n.clone(),
            (None, false) => format!("<{email}>"),
            (None, true) => "unknown".to_string(),
        };
        let email = if email.is_empty() {
            format!("{agent}@git-coord")
        } else {
            email
        };
        Ok((
            Actor {
                agent,
                human,
                email,
            },
            source,
        ))
    }
}

impl Coord {
    /// Creates each coordination ref at its root commit and the cache directory. Idempotent:
    /// returns the refs it created (none on a second run).
    pub fn init(&self) -> Result<Vec<&'static str>> {
        let mut created = Vec::new();
        for refname in COORD_REFS {
            if crate::store::Store::new(&self.repo, refname).ensure_root()? {
                created.push(refname);
            }
        }
        std::fs::create_dir_all(self.repo.common_dir().join("coord").join("cache"))?;
        Ok(created)
    }
}

/// The agent the current worktree belongs to, if it is an agent's worktree.
pub fn worktree_agent(repo: &Repo) -> Option<String> {
    let text = std::fs::read_to_string(repo.git_dir().join(IDENTITY_FILE)).ok()?;
    let name = text.trim().to_string();
    name::validate("agent name", &name).ok().map(|_| name)
}
