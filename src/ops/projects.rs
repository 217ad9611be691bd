//! Related projects (SEMANTICS.md, "Across projects"): where they are (`projects:` in the
//! committed .coord.yaml, or `project add` in one clone's git configuration: local configuration,
//! never data from a remote, decides where git-coord pushes), tasks filed into them through their
//! URL, dependencies on their tasks, following those tasks home, and mail to them.
//!
//! Their state is fetched read-only into `refs/coord-projects/<name>/`; every write there is a
//! commit on the fetched tip, pushed fast-forward only, and done again from a new fetch when
//! someone else moved first.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::git::{Oid, RemoteUrl, redact_url};
use crate::model::agent::{Agent, AgentStatus};
use crate::model::message::{
    Importance, MESSAGE_FORMAT, Message, ProjectTask, SHARED_TARGET, clip,
};
use crate::model::task::{Comment, Kind, Origin, State, TASK_FORMAT, Task};
use crate::model::{id, name, time};
use crate::ops::context::Coord;
use crate::ops::messages::{
    Files, Messages, NoticeAbout, Outgoing, add_attachments, attachment_records, check_text, filing,
};
use crate::remote::{MAX_TRIES, Pushed, Remote, fetch, push};
use crate::store::foreign::{
    Filing, FilingRecord, NOTIFIED_NS, PROJECTS_NS, QueuedWrite, begin_filing, drop_copy,
    fetched_at, fetched_from, filed, forget_write, has_copy, has_filings, load_task,
    orphaned_filings, queue_write, queued_writes, record_fetch, record_filed, record_source,
    staged_ref,
};
use crate::store::{COORD_REFS, Change, Snapshot, Store, backoff, build_commit};

const TASKS: &str = crate::store::TASKS_REF;
const INBOX: &str = crate::store::INBOX_REF;
const AGENTS: &str = crate::store::AGENTS_REF;
const PRESENCE: &str = crate::store::PRESENCE_REF;
/// How much of a comment or message from another project a notice quotes (the rest is a
/// `task show` or `thread` away).
const NOTICE_TEXT: usize = 4000;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Project {
    pub name: String,
    /// Where it is fetched from and pushed to (shown with its password redacted).
    pub url: RemoteUrl,
    /// The project's identity: its normalized URL, as its own clones compute it.
    pub id: String,
    /// Where it is recorded: `.coord.yaml` (every clone) or `git config` (this clone).
    pub source: &'static str,
    /// When this clone last fetched it.
    pub fetched: Option<String>,
}

/// How this clone names other projects in what it shows: the name it records a project under
/// (`project add`, `.coord.yaml`), else the last part of the project's identity
/// (`example.com/org/app` gives `app`). The identity itself is in JSON and `task show`.
#[derive(Debug, Default, Clone)]
pub struct ProjectNames(BTreeMap<String, String>);

impl ProjectNames {
    /// The short name of the project whose identity is `identity`.
    pub fn of<'a>(&'a self, identity: &'a str) -> &'a str {
        self.0
            .get(identity)
            .map_or_else(|| short_name(identity), String::as_str)
    }

    /// A listing's sender, `identity:agent` for someone of another project, as `name:agent`.
    pub fn sender(&self, from: &str) -> String {
        match from.rsplit_once(':') {
            Some((identity, agent)) => format!("{}:{agent}", self.of(identity)),
            None => from.to_string(),
        }
    }
}

/// The last part of a project's identity: its repository's name.
fn short_name(identity: &str) -> &str {
    identity
        .rsplit(['/', ':'])
        .find(|part| !part.is_empty())
        .unwrap_or(identity)
}

/// A task to file into another project.
#[derive(Debug, Default, Clone)]
pub struct FileTask {
    pub title: String,
    pub description: String,
    pub attachments: Files,
    pub kind: Option<Kind>,
    pub priority: Option<u8>,
    pub role: Option<String>,
    pub labels: Vec<String>,
    /// This project's task the filing is for.
    pub from: Option<String>,
}

/// One entry of the outbox: what waits for which project.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Queued {
    pub project: String,
    /// `filing`, `message` or `comment`.
    pub kind: &'static str,
    /// What it is, in words: `task ID`, `message ID`, `comment on ID`.
    pub what: String,
    /// The task there it files or comments on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// What following one project did on a sync or fetch.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Followed {
    pub project: String,
    pub url: RemoteUrl,
    /// Notices filed in this project's inboxes about its tasks there.
    pub notices: usize,
    /// Why it could not be fetched (the sync itself went on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What of the followed tasks and their threads could not be read there.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// Interrupted filings found there (whole, or completed) and now recorded as filed.
    #[serde(skip_serializing_if = "is_zero")]
    pub recovered: usize,
    /// Mail and comments from the outbox written there now.
    #[serde(skip_serializing_if = "is_zero")]
    pub sent: usize,
    /// What else the user should know (a filing that could not be settled).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Another project's task as `task show NAME:ID` and `thread NAME:ID` read it.
#[derive(Debug)]
pub struct ForeignTask {
    pub project: Project,
    pub task: Task,
    /// Its thread, oldest first.
    pub thread: Vec<Message>,
    /// What of it could not be read (each also a warning).
    pub skipped: Vec<Skipped>,
}

/// A document of another project's fetched copy that was skipped, and why: a warning naming
/// the copy's ref and path (`git show REF:PATH` reads it), as for this project's own.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    pub project: String,
    pub refname: String,
    pub path: String,
    pub why: String,
}

impl Skipped {
    fn of(project: &str, e: Error) -> Skipped {
        match e {
            Error::Malformed { refname, path, why } => Skipped {
                project: project.into(),
                refname,
                path,
                why: why.strip_prefix("skipped: ").unwrap_or(&why).to_string(),
            },
            Error::NewerFormat {
                refname,
                path,
                found,
                supported,
            } => Skipped {
                project: project.into(),
                refname,
                path,
                why: format!(
                    "format version {found}, newer than this git-coord understands ({supported})"
                ),
            },
            other => Skipped {
                project: project.into(),
                refname: String::new(),
                path: String::new(),
                why: other.to_string(),
            },
        }
    }
}

/// A project's refs as just fetched: each ref's tip there, or its root commit when it has none.
struct Fetched {
    tips: BTreeMap<&'static str, Option<Oid>>,
    bases: BTreeMap<&'static str, Snapshot>,
}

impl Fetched {
    fn base(&self, refname: &str) -> Snapshot {
        self.bases[refname]
    }
}

pub struct Projects<'c> {
    coord: &'c Coord,
}

impl<'c> Projects<'c> {
    pub fn new(coord: &'c Coord) -> Self {
        Projects { coord }
    }

    /// Records `project` at `url` in this clone. When this clone's copy of the project came from
    /// another URL, that is a new source: refused unless `replace`, which drops the copy so
    /// that the first fetch from `url` starts afresh and tells no one of what differs.
    pub fn add(&self, project: &str, url: &str, replace: bool) -> Result<Project> {
        name::validate("project name", project)?;
        let url = url.trim();
        let id = crate::ops::config::normalize_remote_url(url)
            .filter(|_| !url.starts_with('-'))
            .ok_or_else(|| {
                Error::invalid("url", redact_url(url), "give the project's git URL or path")
            })?;
        let repo = &self.coord.repo;
        let added = Project {
            name: project.into(),
            url: RemoteUrl::new(url),
            id,
            source: "git config",
            fetched: None,
        };
        let now = match self.list()?.into_iter().find(|p| p.name == project) {
            Some(p) => p,
            None => added.clone(),
        };
        let from = match has_copy(repo, project)? {
            true => fetched_from(repo, project).or_else(|| Some(now.url.redacted().into_owned())),
            false => None,
        };
        let switch = from.filter(|from| *from != added.url.redacted());
        if let Some(from) = &switch
            && !replace
        {
            return Err(Error::Project {
                project: project.into(),
                url: added.url.to_string(),
                why: format!(
                    "this clone's copy of its tasks was fetched from {from}; {} is a new source, whose state would replace it",
                    added.url
                ),
                hint: format!(
                    "if {} is project {project}'s, confirm it with `--replace`: the copy from {from} is dropped, and the first fetch from the new URL tells no one of what differs",
                    added.url
                ),
            });
        }
        repo.git_ok(&[
            "config",
            "--local",
            &format!("coord.project.{project}.url"),
            url,
        ])?;
        if switch.is_some() {
            drop_copy(repo, project)?;
        }
        Ok(Project {
            fetched: fetched_at(repo, project),
            ..added
        })
    }

    /// The related projects: `.coord.yaml`'s `projects:`, and this clone's `project add`s (which
    /// win for the same name).
    pub fn list(&self) -> Result<Vec<Project>> {
        let mut found: BTreeMap<String, (String, &'static str)> = BTreeMap::new();
        let config = self.coord.config()?;
        for (project, url) in config.projects {
            found.insert(project, (url, ".coord.yaml"));
        }
        // `coord.project.<name>.url`: section coord, subsection `project.<name>`.
        for (sub, url) in self.coord.repo.local_config_values("coord", "url") {
            let Some(project) = sub.strip_prefix("project.") else {
                continue;
            };
            if name::validate("project name", project).is_ok() {
                found.insert(project.into(), (url, "git config"));
            }
        }
        let mut list = Vec::new();
        for (project, (url, source)) in found {
            if let Some(id) = crate::ops::config::normalize_remote_url(&url) {
                list.push(Project {
                    fetched: fetched_at(&self.coord.repo, &project),
                    name: project,
                    url: RemoteUrl::new(url),
                    id,
                    source,
                });
            }
        }
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
                    "no such project is configured: record it with `git coord project add NAME URL` or under `projects:` in .coord.yaml (`git coord project list` shows them)",
                )
            })
    }

    pub fn remove(&self, project: &str) -> Result<()> {
        let p = self.get(project)?;
        if p.source == ".coord.yaml" {
            return Err(Error::invalid(
                "project",
                project,
                "it is recorded in .coord.yaml, for every clone: remove it there and commit",
            ));
        }
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

    /// The names this clone shows other projects under (a configuration it cannot read leaves
    /// the short names of identities).
    pub fn names(&self) -> ProjectNames {
        ProjectNames(
            self.list()
                .unwrap_or_default()
                .into_iter()
                .map(|p| (p.id, p.name))
                .collect(),
        )
    }

    /// The recorded project whose identity is `id`.
    pub fn by_id(&self, id: &str) -> Result<Option<Project>> {
        Ok(self.list()?.into_iter().find(|p| p.id == id))
    }

    fn remote(p: &Project) -> Remote {
        Remote {
            name: p.url.clone(),
            staging: format!("{PROJECTS_NS}{}/", p.name),
        }
    }

    /// The URL this clone's copy of `p` was fetched from, when it is not `p`'s URL now: a
    /// switch not confirmed yet. A copy fetched before sources were recorded is taken as the
    /// URL's of the moment.
    pub fn switched_from(&self, p: &Project) -> Result<Option<String>> {
        let repo = &self.coord.repo;
        if !has_copy(repo, &p.name)? {
            return Ok(None);
        }
        Ok(fetched_from(repo, &p.name).filter(|from| *from != p.url.redacted()))
    }

    /// Refuses to use the copy of `p`, or to fetch into it, when it came from another URL: the
    /// new URL is a new source, which only `project add NAME URL --replace` confirms.
    fn check_source(&self, p: &Project) -> Result<()> {
        let Some(from) = self.switched_from(p)? else {
            return Ok(());
        };
        let set_back = match p.source {
            ".coord.yaml" => "set it back in .coord.yaml".to_string(),
            _ => format!("set it back with `git coord project add {} {from}`", p.name),
        };
        Err(Error::Project {
            project: p.name.clone(),
            url: p.url.to_string(),
            why: format!(
                "its URL changed from {from} to {} (in {}) since this clone fetched it; nothing is fetched from or written to {} until you confirm that it is project {}'s: `git coord project add {} {} --replace`",
                p.url, p.source, p.url, p.name, p.name, p.url
            ),
            hint: format!(
                "until then its tasks here keep the state fetched from {from}; if the new URL is a mistake, {set_back}"
            ),
        })
    }

    /// Fetches `refs` of project `p` into its read-only copy, and checks what came.
    fn fetch_refs(&self, p: &Project, refs: &[&'static str]) -> Result<Fetched> {
        let repo = &self.coord.repo;
        self.check_source(p)?;
        fetch(repo, &Self::remote(p), refs).map_err(|e| unreachable_project(p, e))?;
        record_fetch(repo, &p.name)?;
        let url = p.url.redacted();
        if fetched_from(repo, &p.name).as_deref() != Some(&*url) {
            record_source(repo, &p.name, &p.url)?;
        }
        self.last_fetched(p, refs)
    }

    /// `refs` of project `p` as this clone last fetched them (a missing one as its root).
    fn last_fetched(&self, p: &Project, refs: &[&'static str]) -> Result<Fetched> {
        let repo = &self.coord.repo;
        let mut fetched = Fetched {
            tips: BTreeMap::new(),
            bases: BTreeMap::new(),
        };
        for refname in refs {
            let kind = kind(refname);
            let tip = repo.ref_tip(&staged_ref(&p.name, kind))?;
            if *refname == PRESENCE {
                // Heartbeats: data read document by document, no coordination ref of its own.
                fetched.tips.insert(refname, tip);
                continue;
            }
            let base = match tip {
                Some(tip) => {
                    let tree = self.check_coord_ref(p, refname, tip)?;
                    Snapshot {
                        tip: Some(tip),
                        tree: Some(tree),
                    }
                }
                None => {
                    let root = Store::new(repo, refname).root_commit()?;
                    Snapshot {
                        tip: Some(root),
                        tree: Some(repo.commit_tree(root)?),
                    }
                }
            };
            fetched.tips.insert(refname, tip);
            fetched.bases.insert(refname, base);
        }
        Ok(fetched)
    }

    /// A fetched coordination ref must be git-coord's: a commit whose tree has the marker
    /// every root commit starts with.
    fn check_coord_ref(&self, p: &Project, refname: &str, tip: Oid) -> Result<Oid> {
        let repo = &self.coord.repo;
        let malformed = |why: String| Error::Project {
            project: p.name.clone(),
            url: p.url.to_string(),
            why: format!("its {refname} is malformed: {why}"),
            hint: format!(
                "nothing was written on either side; ask project {}'s maintainers to repair or delete {refname} there (`git coord init` recreates it)",
                p.name
            ),
        };
        let tree = repo
            .commit_tree(tip)
            .map_err(|_| malformed(format!("{tip} is not a commit")))?;
        let marker = repo
            .lookup_path(tree, "coord.yaml")?
            .map(|blob| crate::store::read_blob(repo, blob, 4096, refname, "coord.yaml"))
            .transpose()
            .map_err(|e| malformed(e.to_string()))?;
        let expected = format!("kind: {}", kind(refname));
        match marker {
            Some(bytes) if String::from_utf8_lossy(&bytes).contains(&expected) => Ok(tree),
            _ => Err(malformed(
                "it holds no git-coord state (no coord.yaml marker)".into(),
            )),
        }
    }

    /// Writes into project `p` through its URL: fetches `refs`, lets `op` build the changes on
    /// what it fetched, pushes them fast-forward only (with the root commits of the refs the
    /// project lacks, so it starts from the same roots `init` makes), and starts again from a new
    /// fetch when someone else moved first. Local refs are never touched.
    fn write_remote<T>(
        &self,
        p: &Project,
        op: impl FnMut(&Fetched) -> Result<(Vec<(&'static str, Change)>, T)>,
    ) -> Result<T> {
        self.write_remote_with(p, op, || Ok(()))
    }

    /// [`Self::write_remote`], with `before_push` run before each push.
    fn write_remote_with<T>(
        &self,
        p: &Project,
        mut op: impl FnMut(&Fetched) -> Result<(Vec<(&'static str, Change)>, T)>,
        mut before_push: impl FnMut() -> Result<()>,
    ) -> Result<T> {
        let repo = &self.coord.repo;
        let actor = self.coord.actor()?;
        for attempt in 1..=MAX_TRIES {
            let fetched = self.fetch_refs(p, &COORD_REFS)?;
            let (changes, value) = op(&fetched)?;
            let mut updates = Vec::new();
            for (refname, mut change) in changes {
                change.trailers.push(("Coord-Project", self.own_id()));
                let commit = build_commit(repo, &fetched.base(refname), &actor, &change)?;
                updates.push((refname.to_string(), commit));
            }
            for refname in COORD_REFS {
                if fetched.tips[refname].is_none() && !updates.iter().any(|(r, _)| r == refname) {
                    updates.push((
                        refname.to_string(),
                        fetched.base(refname).tip.expect("root"),
                    ));
                }
            }
            if updates.is_empty() {
                return Ok(value); // nothing to write: what it would write is there
            }
            before_push()?;
            match push(repo, &p.url, &updates).map_err(|e| unreachable_project(p, e))? {
                Pushed::Accepted => {
                    for (refname, commit) in &updates {
                        repo.set_ref(&staged_ref(&p.name, kind(refname)), *commit)?;
                    }
                    return Ok(value);
                }
                Pushed::Rejected => backoff(attempt),
            }
        }
        Err(unreachable_project(
            p,
            crate::remote::transport::gave_up(
                &p.url,
                format!("refs/coord/* of project {} ({})", p.name, p.url),
                MAX_TRIES,
            ),
        ))
    }

    /// Project `name`'s agents as this clone last fetched them (fetching first with `fetch`):
    /// each active one, its role, whether it is busy (holds a claimed task there), idle or stale
    /// by its last heartbeat there, and what it holds; and when the copy was fetched.
    pub fn agents(&self, name: &str, fetch: bool) -> Result<ProjectAgents> {
        let p = self.get(name)?;
        let repo = &self.coord.repo;
        if fetch {
            self.fetch_refs(&p, &[TASKS, AGENTS, PRESENCE])?;
        }
        let tip = |kind: &str| repo.ref_tip(&staged_ref(&p.name, kind));
        let beats = crate::remote::presence::heartbeats(repo, tip("presence")?)?;
        let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // What each holds there: every task of the copy read once (a listing, not a hot path).
        if let Some(commit) = tip("tasks")?
            && let Some(dir) = repo.lookup_path(repo.commit_tree(commit)?, "tasks")?
        {
            for shard in repo.tree_entries(dir)?.into_iter().filter(|e| e.is_tree) {
                for entry in repo.tree_entries(shard.oid)? {
                    let Some(id) = entry.name.strip_suffix(".yaml") else {
                        continue;
                    };
                    if !entry.is_blob || entry.odd.is_some() || !id::is_full_id(id) {
                        continue;
                    }
                    if let Ok(Some(t)) = load_task(repo, &p.name, Some(commit), id)
                        && t.state == State::Claimed
                        && let Some(who) = t.assignee
                    {
                        held.entry(who).or_default().push(t.id);
                    }
                }
            }
        }
        let mut agents = Vec::new();
        if let Some(commit) = tip("agents")?
            && let Some(dir) = repo.lookup_path(repo.commit_tree(commit)?, "agents")?
        {
            let now = jiff::Timestamp::now().as_millisecond();
            for entry in repo.tree_entries(dir)? {
                if !entry.is_blob || entry.odd.is_some() {
                    continue;
                }
                let path = format!("agents/{}", entry.name);
                let refname = staged_ref(&p.name, "agents");
                let Ok(bytes) = crate::store::read_blob(
                    repo,
                    entry.oid,
                    crate::model::MAX_DOCUMENT_BYTES,
                    &refname,
                    &path,
                ) else {
                    continue;
                };
                let Ok(agent) = Agent::from_yaml(&bytes, &refname, &path) else {
                    continue;
                };
                if agent.status != AgentStatus::Active {
                    continue;
                }
                let beat = beats.get(&agent.name).map(|(_, b)| b);
                let stale = beat.is_some_and(|b| {
                    let limit = (b.stale_after.max(1) as i64) * 1000;
                    b.at_millis().is_none_or(|at| now - at > limit)
                });
                let claimed = held.remove(&agent.name).unwrap_or_default();
                let presence = match (stale, claimed.is_empty()) {
                    (true, _) => "stale",
                    (false, false) => "busy",
                    (false, true) => "idle",
                };
                agents.push(ProjectAgent {
                    name: agent.name,
                    role: agent.role,
                    presence,
                    last_seen: beat.map(|b| b.at.clone()),
                    claimed,
                });
            }
        }
        Ok(ProjectAgents {
            project: p.name.clone(),
            url: p.url.clone(),
            fetched: fetched_at(repo, &p.name),
            agents,
        })
    }

    /// The agents of every related project whose agents this clone has fetched (a sync that
    /// follows it, or `agent list --project NAME --fetch`), as [`Projects::agents`] gives them.
    pub fn fetched_agents(&self) -> Result<Vec<ProjectAgents>> {
        let repo = &self.coord.repo;
        let mut out = Vec::new();
        for p in self.list()? {
            if repo.ref_tip(&staged_ref(&p.name, "agents"))?.is_some() {
                out.push(self.agents(&p.name, false)?);
            }
        }
        Ok(out)
    }

    /// The outbox: filings, mail and comments queued for projects that could not be reached,
    /// filings first, each oldest first.
    pub fn outbox(&self) -> Result<Vec<Queued>> {
        let repo = &self.coord.repo;
        let mut out = Vec::new();
        for p in self.list()? {
            for task in crate::store::foreign::queued_filings(repo, &p.name) {
                out.push(Queued {
                    project: p.name.clone(),
                    kind: "filing",
                    what: format!("task {task}"),
                    task: Some(task),
                });
            }
            for w in queued_writes(repo, &p.name) {
                out.push(Queued {
                    project: p.name.clone(),
                    kind: if w.comment.is_some() {
                        "comment"
                    } else {
                        "message"
                    },
                    what: w.describe(),
                    task: w.comment.map(|(task, _)| task),
                });
            }
        }
        Ok(out)
    }

    /// Files a task into `project`, with its text and attachments as the first message on its
    /// thread. Returns the project and the task as filed.
    pub fn file_task(&self, project: &str, f: FileTask) -> Result<(Project, Task)> {
        let p = self.get(project)?;
        let actor = self.coord.actor()?;
        let title = crate::ops::tasks::check_title(&f.title)?;
        let priority = crate::ops::tasks::check_priority(
            f.priority.unwrap_or(crate::model::task::DEFAULT_PRIORITY),
        )?;
        if let Some(role) = &f.role {
            name::validate("role", role)?;
        }
        for label in &f.labels {
            name::validate("label", label)?;
        }
        let from = f
            .from
            .as_deref()
            .map(|t| crate::ops::tasks::Tasks::new(self.coord).resolve_now(t))
            .transpose()?;
        let body = if f.description.trim().is_empty() {
            title.clone()
        } else {
            f.description.clone()
        };
        let (body, _) = check_text(&Outgoing {
            body,
            ..Outgoing::default()
        })?;
        let attachments = Messages::new(self.coord).check_attachments(&f.attachments)?;
        let own = self.own_id();
        let mut labels: Vec<String> = Vec::new();
        for label in &f.labels {
            if !labels.contains(label) {
                labels.push(label.clone());
            }
        }
        // The ids and documents are chosen once: a filing is the same documents at every try,
        // so a sync can tell whether it landed (and complete one that landed in part).
        let task_id = id::new_id();
        let msg_id = id::new_id();
        let now = time::now();
        let mut task = Task {
            format: TASK_FORMAT,
            id: task_id.clone(),
            title: title.clone(),
            kind: f.kind.unwrap_or(Kind::Bug),
            state: State::Open,
            priority,
            role: f.role.clone(),
            labels,
            deps: Vec::new(),
            followers: Vec::new(),
            parent: None,
            assignee: None,
            claimed_at: None,
            summary: None,
            block_reason: None,
            created: now.clone(),
            created_by: actor.agent.clone(),
            updated: now.clone(),
            description: f.description.clone(),
            comments: Vec::new(),
            history: Vec::new(),
            conflicts: Vec::new(),
            origin: Some(Origin {
                project: own.clone(),
                agent: actor.agent.clone(),
                human: actor.human.clone(),
                task: from,
            }),
            extra: Default::default(),
        };
        task.push_event(&actor.agent, "new", Some(format!("filed from {own}")), &now);
        let msg = Message {
            format: MESSAGE_FORMAT,
            id: msg_id.clone(),
            from: actor.agent.clone(),
            human: actor.human.clone(),
            from_project: Some(own.clone()),
            target: format!("#{task_id}"),
            to: Vec::new(),
            subject: clip(&title, crate::model::message::MAX_SUBJECT),
            thread: task_id.clone(),
            reply_to: None,
            task: Some(task_id.clone()),
            about: None,
            importance: Importance::Normal,
            created: now.clone(),
            body,
            attachments: attachment_records(&attachments),
            extra: Default::default(),
        };
        let task_docs = vec![(Task::path(&task_id), Some(task.to_yaml().into_bytes()))];
        let mut msg_change = filing(&msg);
        add_attachments(&mut msg_change, &msg_id, &attachments);
        let msg_docs = msg_change.docs;
        let changes = || {
            let task_change = Change {
                reads: None,
                docs: task_docs.clone(),
                subject: format!("new {task_id} by {} of {own}", actor.agent),
                trailers: vec![("Coord-Op", "new".into()), ("Coord-Task", task_id.clone())],
            };
            let msg_change = Change {
                reads: None,
                docs: msg_docs.clone(),
                subject: format!("send {msg_id} by {} of {own} to #{task_id}", actor.agent),
                trailers: vec![
                    ("Coord-Op", "send".into()),
                    ("Coord-Message", msg_id.clone()),
                    ("Coord-Task", task_id.clone()),
                ],
            };
            vec![(TASKS, task_change), (INBOX, msg_change)]
        };
        let repo = &self.coord.repo;
        let mut record = None;
        let recorded = |record: &mut Option<FilingRecord>| -> Result<()> {
            if record.is_some() {
                return Ok(());
            }
            let docs = written_docs(repo, changes())?;
            let filing = Filing {
                url: p.url.redacted().into_owned(),
                task: task_id.clone(),
                message: msg_id.clone(),
                docs,
                queued: false,
            };
            *record = Some(begin_filing(repo, &p.name, &filing)?);
            Ok(())
        };
        let written = self.write_remote_with(
            &p,
            |fetched| {
                let taken = |refname: &str, path: &str| {
                    let tree = fetched.base(refname).tree.expect("a tree");
                    repo.lookup_path(tree, path).map(|found| found.is_some())
                };
                if taken(TASKS, &Task::path(&task_id))? || taken(INBOX, &Message::path(&msg_id))? {
                    return Err(Error::Project {
                        project: p.name.clone(),
                        url: p.url.to_string(),
                        why: format!("the new ids {task_id} and {msg_id} are taken there"),
                        hint: "nothing was written on either side; file it again".into(),
                    });
                }
                Ok((changes(), ()))
            },
            || recorded(&mut record),
        );
        match written {
            Ok(()) => {}
            // The project cannot be reached: the filing waits in the outbox, and the next sync
            // that reaches the project pushes it, once (its ids are chosen).
            Err(e) if is_unreachable(&e) => {
                recorded(&mut record)?;
                let Some(mut held) = record else {
                    return Err(e);
                };
                held.queue()?;
                let docs = written_docs(repo, changes())?;
                crate::store::foreign::keep_queued(repo, &p.name, &task_id, &docs)?;
                drop(held); // the next sync takes it up
                self.coord.warn(format!(
                    "queued: {} is unreachable ({e}); {}:{task_id} goes out with the next `git coord sync` that reaches it (`git coord status` lists the outbox)",
                    p.name, p.name
                ));
                return Ok((p, task));
            }
            // A filing whose push failed may still have landed: its record stays for the next
            // sync to settle. One that was never pushed has none.
            Err(e) => return Err(e),
        }
        record_filed(repo, &p.name, &task_id)?;
        if let Some(record) = record {
            record.settle()?;
        }
        Ok((p, task))
    }

    /// Finds the task `NAME:PREFIX` names in the fetched copy of its project.
    fn resolve_in(&self, p: &Project, tip: Option<Oid>, prefix: &str) -> Result<String> {
        let repo = &self.coord.repo;
        let not_found = || no_task(p, prefix);
        let Some(tip) = tip else {
            return Err(not_found());
        };
        let Some(shard) = repo.lookup_path(
            repo.commit_tree(tip)?,
            &format!("tasks/{}", id::shard(prefix)),
        )?
        else {
            return Err(not_found());
        };
        let mut candidates: Vec<String> = repo
            .tree_entries(shard)?
            .into_iter()
            .filter(|e| !e.is_tree)
            .filter_map(|e| e.name.strip_suffix(".yaml").map(str::to_string))
            .filter(|c| c.starts_with(prefix) && id::is_full_id(c))
            .collect();
        match candidates.len() {
            0 => Err(not_found()),
            1 => Ok(candidates.remove(0)),
            _ if candidates.iter().any(|c| c == prefix) => Ok(prefix.to_string()),
            _ => Err(Error::Project {
                project: p.name.clone(),
                url: p.url.to_string(),
                why: format!(
                    "'{prefix}' is ambiguous there: it matches {}",
                    candidates.join(", ")
                ),
                hint: "type more characters of the id".into(),
            }),
        }
    }

    /// Splits and checks `NAME:PREFIX`.
    fn parse_ref(&self, input: &str) -> Result<(Project, String)> {
        let (project, prefix) = id::split_foreign(input).ok_or_else(|| {
            Error::invalid("task", input, "name another project's task as NAME:ID")
        })?;
        let p = self.get(project)?;
        Ok((p, id::parse_prefix(prefix)?))
    }

    /// Resolves a dependency `NAME:PREFIX` to `NAME:ID`, fetching the project's tasks first.
    pub fn resolve_dep(&self, input: &str) -> Result<String> {
        let (p, prefix) = self.parse_ref(input)?;
        let fetched = self.fetch_refs(&p, &[TASKS, INBOX])?;
        let full = self.resolve_in(&p, fetched.tips[TASKS], &prefix)?;
        // A task that cannot be read there could never be seen done.
        load_task(&self.coord.repo, &p.name, fetched.tips[TASKS], &full)
            .map_err(|e| unreadable_task(&p, e))?;
        Ok(format!("{}:{full}", p.name))
    }

    /// Comments on another project's task, through its URL. When the project cannot be reached,
    /// the comment waits in the outbox (its task found in the last fetched copy) and the next
    /// sync that reaches the project writes it there.
    pub fn comment(&self, input: &str, text: &str) -> Result<(Project, Task)> {
        if text.trim().is_empty() {
            return Err(Error::invalid("comment", text, "it is empty"));
        }
        let (p, prefix) = self.parse_ref(input)?;
        let actor = self.coord.actor()?;
        let comment = Comment {
            id: id::new_id(),
            author: actor.agent.clone(),
            at: time::now(),
            text: text.to_string(),
            project: Some(self.own_id()),
            human: Some(actor.human.clone()),
        };
        let written = self.write_remote(&p, |fetched| {
            let full = self.resolve_in(&p, fetched.tips[TASKS], &prefix)?;
            self.comment_change(&p, fetched, &full, &comment)
        });
        match written {
            Err(e) if is_unreachable(&e) => {
                let copy = self.copy_for_outbox(&p, e)?;
                let full = self.resolve_in(&p, copy.tips[TASKS], &prefix)?;
                let (_, task) = self.comment_change(&p, &copy, &full, &comment)?;
                queue_write(
                    &self.coord.repo,
                    &p.name,
                    &QueuedWrite {
                        url: p.url.redacted().into_owned(),
                        id: comment.id.clone(),
                        docs: Vec::new(),
                        comment: Some((full.clone(), comment)),
                    },
                )?;
                self.coord.warn(format!(
                    "queued: {} is unreachable; the comment on {}:{full} goes out with the next `git coord sync` that reaches it (`git coord status` lists the outbox)",
                    p.name, p.name
                ));
                Ok((p, task))
            }
            other => other.map(|task| (p, task)),
        }
    }

    /// `comment` on task `full` of `p` as `fetched` has it: the change that adds it, none when
    /// it is there already (a queued comment that went out before), and the task with it.
    fn comment_change(
        &self,
        p: &Project,
        fetched: &Fetched,
        full: &str,
        comment: &Comment,
    ) -> Result<(Vec<(&'static str, Change)>, Task)> {
        let mut task = load_task(&self.coord.repo, &p.name, fetched.tips[TASKS], full)
            .map_err(|e| unreadable_task(p, e))?
            .ok_or_else(|| no_task(p, full))?;
        if task.comments.iter().any(|c| c.id == comment.id) {
            return Ok((Vec::new(), task));
        }
        let own = self.own_id();
        task.comments.push(comment.clone());
        task.push_event(
            &comment.author,
            "comment",
            Some(format!("from {own}")),
            &comment.at,
        );
        let change = Change {
            reads: None,
            docs: vec![(Task::path(full), Some(task.to_yaml().into_bytes()))],
            subject: format!("comment {full} by {} of {own}", comment.author),
            trailers: vec![
                ("Coord-Op", "comment".into()),
                ("Coord-Task", full.to_string()),
            ],
        };
        Ok((vec![(TASKS, change)], task))
    }

    /// The last fetched copy of `p`, to queue a write for it in the outbox when `unreachable`
    /// says it cannot be reached now. Without a copy fetched from its URL (never fetched, or
    /// its URL changed since), nothing can be checked against it: `unreachable` is returned.
    fn copy_for_outbox(&self, p: &Project, unreachable: Error) -> Result<Fetched> {
        let repo = &self.coord.repo;
        let from_here = fetched_from(repo, &p.name).as_deref() == Some(&*p.url.redacted());
        if !from_here || repo.ref_tip(&staged_ref(&p.name, "tasks"))?.is_none() {
            return Err(unreachable);
        }
        self.last_fetched(p, &COORD_REFS)
    }

    /// Sends `out` to `target` (`AGENT`, `@ROLE`, `@all`, or empty for the project's shared
    /// box) of `project`, into its refs/coord/inbox through its URL.
    pub fn send(
        &self,
        project: &str,
        target: &str,
        out: Outgoing,
        reply_to: Option<&Message>,
    ) -> Result<Message> {
        let p = self.get(project)?;
        let target = target.trim();
        self.send_message(&p, out, reply_to, |this, fetched| {
            if target.is_empty() {
                return Ok((SHARED_TARGET.to_string(), Vec::new(), None));
            }
            let to = this.recipients(&p, fetched.tips[AGENTS], target)?;
            Ok((target.to_string(), to, None))
        })
    }

    /// Sends `out` on the thread of task `task_prefix` of `project` (`send --to '#NAME:ID'`): it
    /// reaches the task's holder there, and whoever follows the task.
    pub fn send_to_task(&self, project: &str, task_prefix: &str, out: Outgoing) -> Result<Message> {
        let p = self.get(project)?;
        let prefix = id::parse_prefix(task_prefix)?;
        self.send_message(&p, out, None, |this, fetched| {
            let full = this.resolve_in(&p, fetched.tips[TASKS], &prefix)?;
            let task = load_task(&this.coord.repo, &p.name, fetched.tips[TASKS], &full)
                .map_err(|e| unreadable_task(&p, e))?
                .ok_or_else(|| no_task(&p, &full))?;
            let to = task
                .assignee
                .filter(|_| task.state != State::Done)
                .into_iter()
                .collect();
            Ok((format!("#{full}"), to, Some(full)))
        })
    }

    /// The one writer of mail into another project: `route` says to whom (the target as
    /// recorded, the agents, the task) from what was fetched.
    fn send_message(
        &self,
        p: &Project,
        out: Outgoing,
        reply_to: Option<&Message>,
        route: impl Fn(&Self, &Fetched) -> Result<(String, Vec<String>, Option<String>)>,
    ) -> Result<Message> {
        let actor = self.coord.actor()?;
        let (body, subject) = check_text(&out)?;
        let attachments = Messages::new(self.coord).check_attachments(&out.attachments)?;
        let own = self.own_id();
        let build = |fetched: &Fetched| {
            let (target, to, task) = route(self, fetched)?;
            let repo = &self.coord.repo;
            let inbox_tree = fetched.base(INBOX).tree.expect("a tree");
            let mut id = id::new_id();
            while repo.lookup_path(inbox_tree, &Message::path(&id))?.is_some() {
                id = id::new_id();
            }
            let msg = Message {
                format: MESSAGE_FORMAT,
                id: id.clone(),
                from: actor.agent.clone(),
                human: actor.human.clone(),
                from_project: Some(own.clone()),
                target: target.clone(),
                to,
                subject: subject.clone(),
                thread: match (reply_to, &task, &out.thread) {
                    (Some(r), _, _) => r.thread.clone(),
                    (None, Some(task), _) => task.clone(),
                    (None, None, Some(t)) => id::parse_prefix(t)?,
                    (None, None, None) => id.clone(),
                },
                reply_to: reply_to.map(|r| r.id.clone()),
                task: task.or_else(|| reply_to.and_then(|r| r.task.clone())),
                about: None,
                importance: out.importance,
                created: time::now(),
                body: body.clone(),
                attachments: attachment_records(&attachments),
                extra: Default::default(),
            };
            let mut change: Change = filing(&msg);
            add_attachments(&mut change, &id, &attachments);
            change.subject = format!("send {id} by {} of {own} to {target}", actor.agent);
            change.trailers = vec![("Coord-Op", "send".into()), ("Coord-Message", id.clone())];
            if let Some(task) = &msg.task {
                change.trailers.push(("Coord-Task", task.clone()));
            }
            Ok((vec![(INBOX, change)], msg))
        };
        match self.write_remote(p, build) {
            Err(e) if is_unreachable(&e) => self.queue_message(p, e, build),
            other => other,
        }
    }

    /// Keeps the message `build` makes from the last fetched copy of `p` (its recipients and
    /// task as they were there) in the outbox, for the next sync that reaches `p`.
    fn queue_message(
        &self,
        p: &Project,
        unreachable: Error,
        build: impl Fn(&Fetched) -> Result<(Vec<(&'static str, Change)>, Message)>,
    ) -> Result<Message> {
        let repo = &self.coord.repo;
        let copy = self.copy_for_outbox(p, unreachable)?;
        let (changes, msg) = build(&copy)?;
        let kept = written_docs(repo, changes)?;
        let docs = kept
            .iter()
            .map(|(_, path, blob)| (path.clone(), blob.to_string()))
            .collect();
        crate::store::foreign::keep_queued(repo, &p.name, &msg.id, &kept)?;
        queue_write(
            repo,
            &p.name,
            &QueuedWrite {
                url: p.url.redacted().into_owned(),
                id: msg.id.clone(),
                docs,
                comment: None,
            },
        )?;
        self.coord.warn(format!(
            "queued: {} is unreachable; message {} goes out with the next `git coord sync` that reaches it (`git coord status` lists the outbox)",
            p.name, msg.id
        ));
        Ok(msg)
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
            "@all" => active.iter().map(|a| a.name.clone()).collect(),
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
                format!(
                    "project {} has no such active agent; `--to {}` reaches its shared box, which every agent there reads",
                    p.name, p.name
                ),
            ));
        }
        Ok(to)
    }

    /// Another project's task and its thread, from the fetched copy (fetched first when `fetch`
    /// is set or when this clone never fetched that project).
    pub fn show_task(&self, input: &str, refresh: bool) -> Result<ForeignTask> {
        let (mut p, prefix) = self.parse_ref(input)?;
        let repo = &self.coord.repo;
        let staged = |kind: &str| repo.ref_tip(&staged_ref(&p.name, kind));
        if refresh || staged("tasks")?.is_none() {
            self.fetch_refs(&p, &[TASKS, INBOX])?;
            p.fetched = fetched_at(repo, &p.name);
        } else if let Some(tip) = staged("tasks")? {
            self.check_source(&p)?;
            self.check_coord_ref(&p, TASKS, tip)?;
        }
        let tip = staged("tasks")?;
        let full = self.resolve_in(&p, tip, &prefix)?;
        let task = load_task(repo, &p.name, tip, &full)
            .map_err(|e| unreadable_task(&p, e))?
            .ok_or_else(|| no_task(&p, &full))?;
        let mut skipped = Vec::new();
        let thread = self.thread_of(&p, staged("inbox")?, &full, &mut skipped)?;
        Ok(ForeignTask {
            project: p,
            task,
            thread,
            skipped,
        })
    }

    /// The messages of the thread of task `id` in the fetched inbox of `p`, oldest first; what
    /// cannot be read there is added to `skipped`.
    fn thread_of(
        &self,
        p: &Project,
        inbox_tip: Option<Oid>,
        id: &str,
        skipped: &mut Vec<Skipped>,
    ) -> Result<Vec<Message>> {
        let repo = &self.coord.repo;
        let mut out = Vec::new();
        let Some(tip) = inbox_tip else {
            return Ok(out);
        };
        let refname = staged_ref(&p.name, "inbox");
        let dir = format!("threads/{}/{id}", id::shard(id));
        if let Some(tree) = repo.lookup_path(repo.commit_tree(tip)?, &dir)? {
            for e in repo.tree_entries(tree)? {
                let path = format!("{dir}/{}", e.name);
                let read = match e.odd {
                    Some(odd) => Err(Error::Malformed {
                        refname: refname.clone(),
                        path: path.clone(),
                        why: format!("skipped: {odd}"),
                    }),
                    None if e.is_tree => continue,
                    None => crate::store::read_blob(
                        repo,
                        e.oid,
                        crate::model::MAX_DOCUMENT_BYTES,
                        &refname,
                        &path,
                    )
                    .and_then(|b| Message::from_yaml(&b, &refname, &path)),
                };
                match read {
                    Ok(m) => out.push(m),
                    Err(e) => skipped.push(Skipped::of(&p.name, e)),
                }
            }
        }
        out.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        Ok(out)
    }

    /// Fetches, read-only, every related project this one follows: those its open tasks depend
    /// on and those this clone filed into. What changed on a followed task there (its state, a
    /// comment, a message on its thread) becomes one notice in the inbox of the agent that
    /// filed it and of the holders of the tasks here that depend on it.
    pub fn follow(&self) -> Result<Vec<Followed>> {
        let repo = &self.coord.repo;
        let tasks = crate::ops::tasks::Tasks::new(self.coord);
        let index = tasks.load_index()?;
        // project name -> task id there -> agents here who want to hear about it
        let mut followed: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for t in index.tasks() {
            if t.state() == State::Done {
                continue;
            }
            for dep in t.deps() {
                if let Some((project, dep_id)) = id::split_foreign(dep)
                    && id::is_full_id(dep_id)
                {
                    let who = t.assignee().unwrap_or_default().to_string();
                    let entry = followed
                        .entry(project.to_string())
                        .or_default()
                        .entry(dep_id.to_string())
                        .or_default();
                    if !who.is_empty() {
                        entry.insert(who);
                    } else if let Ok(full) = tasks.show(t.id()) {
                        entry.insert(full.created_by);
                    }
                }
            }
        }
        let projects = self.list()?;
        for p in &projects {
            if has_filings(repo, &p.name) || !queued_writes(repo, &p.name).is_empty() {
                followed.entry(p.name.clone()).or_default(); // a filing to settle there
            }
            for task in filed(repo, &p.name) {
                followed
                    .entry(p.name.clone())
                    .or_default()
                    .entry(task)
                    .or_default();
            }
        }
        let own = self.own_id();
        let mut report = Vec::new();
        for (project, wanted) in followed {
            let Some(p) = projects.iter().find(|p| p.name == project) else {
                continue; // a dependency on a project no longer configured stays as it was
            };
            // What the notices were last sent for: other commands (a filing, `task show --fetch`)
            // move the fetched copy too, and must not swallow what happened meanwhile.
            let notified = |kind: &str| format!("{NOTIFIED_NS}{}/{kind}", p.name);
            let old_tasks = match repo.ref_tip(&notified("tasks"))? {
                Some(tip) => Some(tip),
                None => repo.ref_tip(&staged_ref(&p.name, "tasks"))?,
            };
            let old_inbox = match repo.ref_tip(&notified("inbox"))? {
                Some(tip) => Some(tip),
                None => repo.ref_tip(&staged_ref(&p.name, "inbox"))?,
            };
            // Its agents and their presence come in the same fetch: `agent list --project`.
            let fetched = match self.fetch_refs(p, &[TASKS, INBOX, AGENTS, PRESENCE]) {
                Ok(f) => f,
                Err(e) => {
                    report.push(Followed {
                        project: p.name.clone(),
                        url: p.url.clone(),
                        notices: 0,
                        error: Some(e.to_string()),
                        skipped: Vec::new(),
                        recovered: 0,
                        sent: 0,
                        warnings: Vec::new(),
                    });
                    continue;
                }
            };
            let mut notices = 0;
            let mut skipped = Vec::new();
            for (task_id, mut to) in wanted {
                let new = match load_task(repo, &p.name, fetched.tips[TASKS], &task_id) {
                    Ok(Some(new)) => new,
                    Ok(None) => continue,
                    Err(e) => {
                        skipped.push(Skipped::of(&p.name, e));
                        continue;
                    }
                };
                let thread = self.thread_of(p, fetched.tips[INBOX], &task_id, &mut skipped)?;
                // The first fetch sets the baseline: nothing to tell yet.
                if old_tasks.is_some() {
                    if let Some(origin) = new.origin.as_ref().filter(|o| o.project == own) {
                        to.insert(origin.agent.clone());
                    }
                    to.retain(|a| name::validate("agent name", a).is_ok());
                    let old = load_task(repo, &p.name, old_tasks, &task_id).ok().flatten();
                    let old_thread: BTreeSet<String> = self
                        .thread_of(p, old_inbox, &task_id, &mut Vec::new())?
                        .into_iter()
                        .map(|m| m.id)
                        .collect();
                    for (key, subject, body, at) in
                        changes(p, &own, old.as_ref(), &new, &old_thread, &thread)
                    {
                        for agent in &to {
                            crate::ops::notices::deliver(
                                self.coord,
                                &format!("{key}:{agent}"),
                                agent,
                                &subject,
                                &body,
                                NoticeAbout::OtherProject(ProjectTask {
                                    project: p.id.clone(),
                                    task: task_id.clone(),
                                }),
                                &at,
                            )?;
                            notices += 1;
                        }
                    }
                }
            }
            // Every notice is delivered: from here on, changes are counted from these tips.
            for (kind, refname) in [("tasks", TASKS), ("inbox", INBOX)] {
                if let Some(tip) = fetched.tips[refname] {
                    repo.set_ref(&notified(kind), tip)?;
                }
            }
            let mut settled = self.settle_filings(p, &fetched);
            let sent = self.send_queued(p, &mut settled.warnings)?;
            report.push(Followed {
                project: p.name.clone(),
                url: p.url.clone(),
                notices,
                error: None,
                skipped,
                recovered: settled.recovered,
                sent,
                warnings: settled.warnings,
            });
        }
        Ok(report)
    }

    /// Writes the mail and comments queued for `p` (the outbox) there, each once: one whose id
    /// is there already went out before, and is only forgotten. One that `p` refuses for good
    /// (its task gone there, say) is dropped, and its author told with its text; one that cannot
    /// go yet stays. Returns how many were written.
    fn send_queued(&self, p: &Project, warnings: &mut Vec<String>) -> Result<usize> {
        let repo = &self.coord.repo;
        let own = self.own_id();
        let mut sent = 0;
        for queued in queued_writes(repo, &p.name) {
            if queued.url != p.url.redacted() {
                continue; // for another URL: it waits until the project is there again
            }
            let written = match &queued.comment {
                Some((full, comment)) => self
                    .write_remote(p, |fetched| self.comment_change(p, fetched, full, comment))
                    .map(|_| ()),
                None => self.write_remote(p, |fetched| {
                    let inbox = fetched.base(INBOX).tree.expect("a tree");
                    if repo
                        .lookup_path(inbox, &Message::path(&queued.id))?
                        .is_some()
                    {
                        return Ok((Vec::new(), ()));
                    }
                    let mut docs = Vec::new();
                    for (path, blob) in &queued.docs {
                        let blob = Oid::from_hex(blob.as_bytes())
                            .map_err(|e| Error::Other(format!("a bad blob in the outbox: {e}")))?;
                        docs.push((path.clone(), Some(repo.read_blob(blob)?)));
                    }
                    let change = Change {
                        reads: None,
                        docs,
                        subject: format!("send {} of {own}, queued while unreachable", queued.id),
                        trailers: vec![
                            ("Coord-Op", "send".into()),
                            ("Coord-Message", queued.id.clone()),
                        ],
                    };
                    Ok((vec![(INBOX, change)], ()))
                }),
            };
            match written {
                Ok(()) => {
                    forget_write(repo, &p.name, &queued.id)?;
                    sent += 1;
                }
                Err(e) if is_unreachable(&e) => {
                    warnings.push(format!(
                        "the queued {} stays in the outbox: {e}",
                        queued.describe()
                    ));
                }
                Err(e) => {
                    self.tell_unsent(p, &queued, &e)?;
                    forget_write(repo, &p.name, &queued.id)?;
                    warnings.push(format!(
                        "the queued {} could not be written into {} and was dropped ({e}); its author was told, with its text",
                        queued.describe(),
                        p.name
                    ));
                }
            }
        }
        Ok(sent)
    }

    /// Tells the author of a queued write that `p` refused for good what it was, with its text.
    fn tell_unsent(&self, p: &Project, queued: &QueuedWrite, why: &Error) -> Result<()> {
        let repo = &self.coord.repo;
        let (author, text) = match &queued.comment {
            Some((_, comment)) => (comment.author.clone(), comment.text.clone()),
            None => {
                let path = Message::path(&queued.id);
                let msg = queued
                    .docs
                    .iter()
                    .find(|(p, _)| *p == path)
                    .and_then(|(_, blob)| Oid::from_hex(blob.as_bytes()).ok())
                    .and_then(|blob| repo.read_blob(blob).ok())
                    .and_then(|bytes| Message::from_yaml(&bytes, INBOX, &path).ok());
                match msg {
                    Some(m) => (m.from, m.body),
                    None => return Ok(()), // nothing left to tell: its text is gone
                }
            }
        };
        crate::ops::notices::deliver(
            self.coord,
            &format!("outbox-dropped:{}", queued.id),
            &author,
            &format!("Your queued {} did not reach {}", queued.describe(), p.name),
            &format!(
                "It waited in the outbox while {} was unreachable, and {} refused it when it came back: {why}. Its text:\n\n{text}",
                p.name, p.name
            ),
            NoticeAbout::Nothing,
            &time::now(),
        )
    }

    /// Settles the filings into `p` whose process died or failed before it knew whether they
    /// landed, from what was just fetched: one that is there whole is recorded as filed; one
    /// that is there in part (a push killed at the remote between its refs) is completed, then
    /// recorded; one that is not there at all never landed, and is forgotten.
    fn settle_filings(&self, p: &Project, fetched: &Fetched) -> Settled {
        let repo = &self.coord.repo;
        let mut settled = Settled::default();
        for (filing, record) in orphaned_filings(repo, &p.name) {
            let Some(filing) = filing else {
                let _ = record.settle(); // torn: its writer died before pushing
                continue;
            };
            if filing.url != p.url.redacted() {
                continue; // pushed to another URL: settled when the project is there again
            }
            let done = self
                .settle_filing(p, fetched, &filing)
                .and_then(|recovered| {
                    if recovered {
                        record_filed(repo, &p.name, &filing.task)?;
                        settled.recovered += 1;
                    }
                    record.settle()?;
                    crate::store::foreign::forget_queued(repo, &p.name, &filing.task);
                    Ok(())
                });
            if let Err(e) = done {
                settled.warnings.push(format!(
                    "the filing of {}:{} was interrupted and could not be settled: {e}; the next sync tries again",
                    p.name, filing.task
                ));
            }
        }
        settled
    }

    /// Whether `filing` is in `p` (completing it there when only part of it landed).
    fn settle_filing(&self, p: &Project, fetched: &Fetched, filing: &Filing) -> Result<bool> {
        let repo = &self.coord.repo;
        let present =
            |tips: &BTreeMap<&'static str, Option<Oid>>, refname: &str, path: &str| match tips
                .get(refname)
                .copied()
                .flatten()
            {
                Some(tip) => Ok(repo.lookup_path(repo.commit_tree(tip)?, path)?.is_some()),
                None => Ok::<_, Error>(false),
            };
        let keys = [
            (TASKS, Task::path(&filing.task)),
            (INBOX, Message::path(&filing.message)),
        ];
        let mut landed = 0;
        for (refname, path) in &keys {
            landed += usize::from(present(&fetched.tips, refname, path)?);
        }
        match landed {
            0 if !filing.queued => return Ok(false),
            2 => return Ok(true),
            _ => {}
        }
        let why = match filing.queued {
            true => "queued while it was unreachable",
            false => "its push was cut short",
        };
        let own = self.own_id();
        self.write_remote(p, |now| {
            let mut changes = Vec::new();
            for (refname, key) in &keys {
                if present(&now.tips, refname, key)? {
                    continue;
                }
                let mut docs = Vec::new();
                for (r, path, blob) in &filing.docs {
                    if r == refname {
                        docs.push((path.clone(), Some(repo.read_blob(*blob)?)));
                    }
                }
                changes.push((
                    *refname,
                    Change {
                        reads: None,
                        docs,
                        subject: format!(
                            "complete the filing of {} from {own} ({why})",
                            filing.task
                        ),
                        trailers: vec![
                            (
                                "Coord-Op",
                                if *refname == TASKS { "new" } else { "send" }.into(),
                            ),
                            ("Coord-Task", filing.task.clone()),
                        ],
                    },
                ));
            }
            Ok((changes, ()))
        })?;
        Ok(true)
    }
}

/// The documents of `changes` written as blobs: (ref, path, blob), for a record of a write that
/// goes out later (a filing, the outbox).
fn written_docs(
    repo: &crate::git::Repo,
    changes: Vec<(&'static str, Change)>,
) -> Result<Vec<(String, String, Oid)>> {
    let mut docs = Vec::new();
    for (refname, change) in changes {
        for (path, bytes) in change.docs {
            let blob = repo.write_blob(bytes.as_deref().unwrap_or_default())?;
            docs.push((refname.to_string(), path, blob));
        }
    }
    Ok(docs)
}

/// Whether `e` says a project could not be reached (its remote missing, a network down), not
/// that it refused what was sent.
fn is_unreachable(e: &Error) -> bool {
    match e {
        Error::Project { why, .. } => {
            (why.starts_with("cannot fetch from it") || why.starts_with("cannot push to it"))
                && !crate::remote::transport::refuses(why)
        }
        _ => false,
    }
}

/// A related project's agents, from this clone's last fetch of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProjectAgents {
    pub project: String,
    pub url: RemoteUrl,
    /// When the copy was last fetched (None: never).
    pub fetched: Option<String>,
    pub agents: Vec<ProjectAgent>,
}

/// One active agent of a related project.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProjectAgent {
    pub name: String,
    pub role: String,
    /// busy (holds a claimed task there), idle, or stale (its last heartbeat there is older than
    /// its stale_after); an agent never seen there counts as idle.
    pub presence: &'static str,
    pub last_seen: Option<String>,
    pub claimed: Vec<String>,
}

/// What settling interrupted filings into one project did.
#[derive(Debug, Default)]
struct Settled {
    recovered: usize,
    warnings: Vec<String>,
}

/// What changed on a followed task between two fetches, as notices: (key, subject, body, at).
fn changes(
    p: &Project,
    own: &str,
    old: Option<&Task>,
    new: &Task,
    old_thread: &BTreeSet<String>,
    thread: &[Message],
) -> Vec<(String, String, String, String)> {
    let short = &new.id[..id::MIN_PREFIX];
    let name = format!("{}:{short}", p.name);
    let key = |what: &str| format!("project-notice:{}:{}:{what}", p.id, new.id);
    let see = format!(
        "`git coord task show {}:{}` shows it; answer with `git coord task comment {}:{} TEXT`.",
        p.name, new.id, p.name, new.id
    );
    let mut out = Vec::new();
    let Some(old) = old else {
        return out;
    };
    if old.state != new.state {
        let (what, detail) = match new.state {
            State::Done => (
                "done".to_string(),
                new.summary.clone().unwrap_or_else(|| new.title.clone()),
            ),
            State::Claimed => (
                format!(
                    "claimed by {}",
                    new.assignee.as_deref().unwrap_or("someone")
                ),
                new.title.clone(),
            ),
            State::Blocked => (
                "blocked".to_string(),
                new.block_reason
                    .clone()
                    .unwrap_or_else(|| new.title.clone()),
            ),
            State::Open => ("open again".to_string(), new.title.clone()),
        };
        out.push((
            key(&format!("state:{}:{}", new.state.as_str(), new.updated)),
            format!("{name} {what}: {detail}"),
            format!(
                "Task {} of project {} ({}) is now {what}: {detail}.\n{see}",
                new.id, p.name, new.title
            ),
            new.updated.clone(),
        ));
    }
    for c in &new.comments {
        if old.comments.iter().any(|o| o.id == c.id) || c.project.as_deref() == Some(own) {
            continue;
        }
        out.push((
            key(&format!("comment:{}", c.id)),
            format!(
                "{name} comment from {}: {}",
                c.author,
                crate::model::message::first_line(&c.text)
            ),
            format!(
                "{} commented on task {} of project {} ({}):\n\n{}\n\n{see}",
                c.author,
                new.id,
                p.name,
                new.title,
                clip(&c.text, NOTICE_TEXT)
            ),
            c.at.clone(),
        ));
    }
    for m in thread {
        if old_thread.contains(&m.id) || m.from_project.as_deref() == Some(own) {
            continue;
        }
        out.push((
            key(&format!("message:{}", m.id)),
            format!("{name} message from {}: {}", m.from, m.subject),
            format!(
                "{} wrote on the thread of task {} of project {} ({}):\n\n{}\n\n`git coord thread {}:{}` shows the conversation.",
                m.from,
                new.id,
                p.name,
                new.title,
                clip(&m.body, NOTICE_TEXT),
                p.name,
                new.id
            ),
            m.created.clone(),
        ));
    }
    for (_, subject, _, _) in &mut out {
        *subject = clip(subject, crate::model::message::MAX_SUBJECT);
    }
    out
}

fn kind(refname: &str) -> &str {
    refname.rsplit('/').next().unwrap_or(refname)
}

/// No task of project `p` matches `prefix` in its fetched copy.
fn no_task(p: &Project, prefix: &str) -> Error {
    Error::Project {
        project: p.name.clone(),
        url: p.url.to_string(),
        why: format!("no task matches '{prefix}' there"),
        hint: format!(
            "check the id with the project's own `git coord task list`; `git coord task show {}:ID --fetch` reads it again",
            p.name
        ),
    }
}

/// A task of project `p` whose entry in the fetched copy is no readable task, said about the
/// project: the copy's ref and path (which `git show` reads), and whom to ask.
fn unreadable_task(p: &Project, e: Error) -> Error {
    match e {
        Error::Malformed { refname, path, why } => Error::Project {
            project: p.name.clone(),
            url: p.url.to_string(),
            why: format!(
                "its task {path} cannot be read: {}",
                why.strip_prefix("skipped: ").unwrap_or(&why)
            ),
            hint: format!(
                "`git show {refname}:{path}` shows it as fetched here; ask project {}'s maintainers to repair it there (its other tasks are unaffected)",
                p.name
            ),
        },
        other => other,
    }
}

/// A remote error, said about the project: its name, its URL and what to do.
fn unreachable_project(p: &Project, e: Error) -> Error {
    match e {
        Error::Remote { what, why, .. } => Error::Project {
            project: p.name.clone(),
            url: p.url.to_string(),
            why: format!("cannot {what} it: {why}"),
            hint: format!(
                "nothing was written on either side; check the URL (`git coord project list`; fix it with `git coord project add {} URL` or in .coord.yaml) and your access (`git ls-remote URL`)",
                p.name
            ),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_is_shown_by_its_recorded_name_else_its_repository_s() {
        let names = ProjectNames(BTreeMap::from([(
            "file:/srv/git/b".to_string(),
            "beads".to_string(),
        )]));
        assert_eq!(names.of("file:/srv/git/b"), "beads");
        assert_eq!(names.sender("file:/srv/git/b:bob"), "beads:bob");
        assert_eq!(names.of("example.com/org/app"), "app");
        assert_eq!(names.sender("local:/home/ada/app:alice"), "app:alice");
        assert_eq!(names.sender("alice"), "alice");
    }
}
