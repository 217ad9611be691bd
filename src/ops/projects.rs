//! Related projects and mail between them: `project add NAME URL` records a project in this
//! clone's git configuration (`coord.project.<name>.url`: local configuration, never data from a
//! remote, decides where git-coord pushes), and a message to `NAME:AGENT`, `NAME:@ROLE` or `NAME`
//! is written straight into that project's refs/coord/inbox through its URL.

use crate::error::{Error, Result};
use crate::git::Oid;
use crate::model::agent::{Agent, AgentStatus};
use crate::model::message::{MESSAGE_FORMAT, Message};
use crate::model::{id, name, time};
use crate::ops::context::Coord;
use crate::ops::messages::{
    Messages, Outgoing, add_attachments, attachment_records, check_text, filing,
};
use crate::remote::{MAX_TRIES, Pushed, Remote, fetch, push};
use crate::store::{Change, Snapshot, backoff, build_commit};

const INBOX: &str = "refs/coord/inbox";
const AGENTS: &str = "refs/coord/agents";

#[derive(Debug, Clone, serde::Serialize)]
pub struct Project {
    pub name: String,
    pub url: String,
    /// The project's identity: its normalized URL, as its own clones compute it.
    pub id: String,
}

pub struct Projects<'c> {
    coord: &'c Coord,
}

impl<'c> Projects<'c> {
    pub fn new(coord: &'c Coord) -> Self {
        Projects { coord }
    }

    pub fn add(&self, project: &str, url: &str) -> Result<Project> {
        name::validate("project name", project)?;
        let url = url.trim();
        let id = crate::ops::config::normalize_remote_url(url)
            .filter(|_| !url.starts_with('-'))
            .ok_or_else(|| Error::invalid("url", url, "give the project's git URL or path"))?;
        self.coord.repo.git_ok(&[
            "config",
            "--local",
            &format!("coord.project.{project}.url"),
            url,
        ])?;
        Ok(Project {
            name: project.into(),
            url: url.into(),
            id,
        })
    }

    pub fn list(&self) -> Result<Vec<Project>> {
        let out = self.coord.repo.git(&[
            "config",
            "--local",
            "--get-regexp",
            r"^coord\.project\..*\.url$",
        ])?;
        let mut list = Vec::new();
        for line in out.stdout.lines() {
            let Some((key, url)) = line.split_once(' ') else {
                continue;
            };
            let Some(project) = key
                .strip_prefix("coord.project.")
                .and_then(|k| k.strip_suffix(".url"))
            else {
                continue;
            };
            if let Some(id) = crate::ops::config::normalize_remote_url(url) {
                list.push(Project {
                    name: project.into(),
                    url: url.into(),
                    id,
                });
            }
        }
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(list)
    }

    pub fn get(&self, project: &str) -> Result<Project> {
        self.list()?
            .into_iter()
            .find(|p| p.name == project)
            .ok_or_else(|| {
                Error::invalid(
                    "project",
                    project,
                    "no such project: record it with `git coord project add NAME URL` (`git coord project list` shows them)",
                )
            })
    }

    pub fn remove(&self, project: &str) -> Result<()> {
        self.get(project)?;
        self.coord
            .repo
            .git_ok(&[
                "config",
                "--local",
                "--remove-section",
                &format!("coord.project.{project}"),
            ])
            .map(|_| ())
    }

    /// This project's identity, as other projects record it.
    pub fn own_id(&self) -> String {
        let url = self.coord.repo.config_string("remote.origin.url");
        crate::ops::config::project_id(url.as_deref(), &self.coord.repo.common_dir())
    }

    /// The recorded project whose identity is `id`.
    pub fn by_id(&self, id: &str) -> Result<Option<Project>> {
        Ok(self.list()?.into_iter().find(|p| p.id == id))
    }

    /// Sends `out` to `target` (`AGENT`, `@ROLE` or empty for every agent) of `project`, into
    /// its refs/coord/inbox through its URL. Returns the message as delivered.
    pub fn send(
        &self,
        project: &str,
        target: &str,
        out: Outgoing,
        reply_to: Option<&Message>,
    ) -> Result<Message> {
        let p = self.get(project)?;
        let actor = self.coord.actor()?;
        let (body, subject) = check_text(&out)?;
        let attachments = Messages::new(self.coord).check_attachments(&out.attachments)?;
        let remote = Remote {
            name: p.url.clone(),
            staging: format!("refs/coord-projects/{}/", p.name),
        };
        let repo = &self.coord.repo;
        for attempt in 1..=MAX_TRIES {
            fetch(repo, &remote, &[INBOX, AGENTS])?;
            let staged = |kind: &str| repo.ref_tip(&format!("{}{kind}", remote.staging));
            let Some(inbox_tip) = staged("inbox")? else {
                return Err(Error::Other(format!(
                    "project {} has no refs/coord/inbox at {}: it must run `git coord init` and push (`git coord sync`) first",
                    p.name, p.url
                )));
            };
            let to = self.recipients(&p, staged("agents")?, target)?;
            let snap = Snapshot {
                tip: Some(inbox_tip),
                tree: Some(repo.commit_tree(inbox_tip)?),
            };
            let mut id = id::new_id();
            while repo
                .lookup_path(snap.tree.expect("a tree"), &Message::path(&id))?
                .is_some()
            {
                id = id::new_id();
            }
            let msg = Message {
                format: MESSAGE_FORMAT,
                id: id.clone(),
                from: actor.agent.clone(),
                human: actor.human.clone(),
                from_project: Some(self.own_id()),
                target: if target.is_empty() {
                    "@all".into()
                } else {
                    target.into()
                },
                to,
                subject: subject.clone(),
                thread: match (reply_to, &out.thread) {
                    (Some(r), _) => r.thread.clone(),
                    (None, Some(t)) => id::parse_prefix(t)?,
                    (None, None) => id.clone(),
                },
                reply_to: reply_to.map(|r| r.id.clone()),
                task: reply_to.and_then(|r| r.task.clone()),
                importance: out.importance,
                created: time::now(),
                body: body.clone(),
                attachments: attachment_records(&attachments),
                extra: Default::default(),
            };
            let mut change: Change = filing(&msg);
            add_attachments(&mut change, &id, &attachments);
            change.subject = format!(
                "send {id} by {} of {} to {}",
                actor.agent,
                msg.from_project.as_deref().unwrap_or("?"),
                msg.target
            );
            change.trailers = vec![
                ("Coord-Op", "send".into()),
                ("Coord-Message", id.clone()),
                ("Coord-Project", self.own_id()),
            ];
            let commit = build_commit(repo, &snap, &actor, &change)?;
            match push(repo, &p.url, &[(INBOX.to_string(), commit)])? {
                Pushed::Accepted => {
                    repo.set_ref(&format!("{}inbox", remote.staging), commit)?;
                    return Ok(msg);
                }
                Pushed::Rejected => backoff(attempt),
            }
        }
        Err(Error::Contended {
            refname: format!("refs/coord/inbox of project {}", p.name),
            attempts: MAX_TRIES,
        })
    }

    /// The agents of `project` a target reaches, from its fetched registrations.
    fn recipients(
        &self,
        p: &Project,
        agents_tip: Option<Oid>,
        target: &str,
    ) -> Result<Vec<String>> {
        let repo = &self.coord.repo;
        let mut active: Vec<Agent> = Vec::new();
        if let Some(tip) = agents_tip
            && let Some(dir) = repo.lookup_path(repo.commit_tree(tip)?, "agents")?
        {
            for e in repo.tree_entries(dir)?.into_iter().filter(|e| e.is_blob) {
                let path = format!("agents/{}", e.name);
                if let Ok(a) = crate::store::read_blob(
                    repo,
                    e.oid,
                    crate::model::MAX_DOCUMENT_BYTES,
                    AGENTS,
                    &path,
                )
                .and_then(|b| Agent::from_yaml(&b, AGENTS, &path))
                    && a.status == AgentStatus::Active
                {
                    active.push(a);
                }
            }
        }
        let to: Vec<String> = match target {
            "" | "@all" => active.iter().map(|a| a.name.clone()).collect(),
            t if t.starts_with('@') => {
                let role = &t[1..];
                name::validate("role", role)?;
                active
                    .iter()
                    .filter(|a| a.role == role)
                    .map(|a| a.name.clone())
                    .collect()
            }
            agent => {
                name::validate("agent name", agent)?;
                active
                    .iter()
                    .filter(|a| a.name == agent)
                    .map(|a| a.name.clone())
                    .collect()
            }
        };
        if to.is_empty() {
            return Err(Error::invalid(
                "target",
                format!("{}:{}", p.name, target),
                format!("project {} has no such active agent", p.name),
            ));
        }
        Ok(to)
    }
}
