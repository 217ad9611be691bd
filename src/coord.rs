//! The context every command runs in: the repository and who is acting.

use std::path::Path;

use crate::error::{Error, Result};
use crate::git::Repo;
use crate::model::name;
use crate::store::Actor;

pub const AGENT_ENV: &str = "GIT_COORD_AGENT";

pub struct Coord {
    pub repo: Repo,
    agent_flag: Option<String>,
}

impl Coord {
    pub fn open(dir: &Path, agent_flag: Option<String>) -> Result<Coord> {
        if let Some(agent) = &agent_flag {
            name::validate("agent name", agent)?;
        }
        Ok(Coord {
            repo: Repo::discover(dir)?,
            agent_flag,
        })
    }

    /// The acting agent: `--agent`, else GIT_COORD_AGENT, else the repository's git user.
    pub fn actor(&self) -> Result<Actor> {
        let user_name = self
            .repo
            .config_string("user.name")
            .filter(|s| !s.trim().is_empty());
        let email = self.repo.config_string("user.email").unwrap_or_default();
        let from_env = std::env::var(AGENT_ENV).ok().filter(|s| !s.is_empty());
        let agent = match (self.agent_flag.clone(), from_env) {
            (Some(agent), _) | (None, Some(agent)) => {
                name::validate("agent name", &agent)?;
                agent
            }
            (None, None) => user_name
                .as_deref()
                .and_then(name::agent_from_user_name)
                .ok_or(Error::NoAgent)?,
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
        Ok(Actor {
            agent,
            human,
            email,
        })
    }
}

/// Every ref git-coord keeps, one per kind of document.
pub const COORD_REFS: [&str; 5] = [
    "refs/coord/tasks",
    "refs/coord/inbox",
    "refs/coord/leases",
    "refs/coord/agents",
    "refs/coord/checkpoints",
];

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
