//! Artifacts of tasks: put one (its content stored beside the task in refs/coord/tasks, the task's
//! history noting it), list them by summary, show one whole.

use crate::error::{Error, Result};
use crate::model::artifact::{
    ARTIFACT_FORMAT, Artifact, ArtifactKind, MAX_ARTIFACT_BYTES, MAX_ARTIFACT_SUMMARY,
};
use crate::model::task::Task;
use crate::model::{MAX_DOCUMENT_BYTES, id, time};
use crate::ops::context::Coord;
use crate::store::TASKS_REF;
use crate::store::{Change, Snapshot, Store};

pub struct NewArtifact {
    pub task: String,
    pub kind: ArtifactKind,
    pub summary: String,
    pub name: String,
    pub content: Vec<u8>,
}

pub struct Artifacts<'c> {
    coord: &'c Coord,
    store: Store<'c>,
}

impl<'c> Artifacts<'c> {
    pub fn new(coord: &'c Coord) -> Self {
        Artifacts {
            coord,
            store: Store::new(&coord.repo, TASKS_REF),
        }
    }

    /// Stores an artifact for a task and notes it in the task's history, in one commit.
    pub fn put(&self, new: NewArtifact) -> Result<Artifact> {
        let actor = self.coord.actor()?;
        let summary = new.summary.trim().to_string();
        if summary.is_empty() || summary.chars().count() > MAX_ARTIFACT_SUMMARY {
            return Err(Error::invalid(
                "summary",
                &new.summary,
                format!("say what it holds, in 1 to {MAX_ARTIFACT_SUMMARY} characters"),
            ));
        }
        if new.content.len() > MAX_ARTIFACT_BYTES {
            return Err(Error::invalid(
                "artifact",
                &new.name,
                format!(
                    "{} bytes, over the {MAX_ARTIFACT_BYTES}-byte limit",
                    new.content.len()
                ),
            ));
        }
        let task_id = crate::store::task_ids::resolve_now(&self.coord.repo, &new.task)?;
        self.store.update(&actor, |snap| {
            let task_path = Task::path(&task_id);
            let bytes = self
                .store
                .read(snap, &task_path)?
                .ok_or_else(|| Error::NoSuchTask(task_id.clone()))?;
            let mut task = Task::from_yaml(&bytes, TASKS_REF, &task_path)?;
            let id = loop {
                let id = id::new_id();
                if !self.store.exists(snap, &Artifact::path(&id))? {
                    break id;
                }
            };
            let now = time::now();
            let artifact = Artifact {
                format: ARTIFACT_FORMAT,
                id: id.clone(),
                task: task_id.clone(),
                kind: new.kind.clone(),
                summary: summary.clone(),
                name: new.name.clone(),
                size: new.content.len() as u64,
                created: now.clone(),
                created_by: actor.agent.clone(),
                extra: Default::default(),
            };
            task.push_event(
                &actor.agent,
                "artifact",
                Some(format!("{} {id}: {summary}", new.kind.as_str())),
                &now,
            );
            let doc = artifact.to_yaml().into_bytes();
            let change = Change {
                reads: None,
                docs: vec![
                    (Artifact::path(&id), Some(doc.clone())),
                    (Artifact::content_path(&id), Some(new.content.clone())),
                    (Artifact::task_path(&task_id, &id), Some(doc)),
                    (task_path, Some(task.to_yaml().into_bytes())),
                ],
                subject: format!("artifact {id} for {task_id} by {}", actor.agent),
                trailers: vec![
                    ("Coord-Op", "artifact".into()),
                    ("Coord-Task", task_id.clone()),
                    ("Coord-Artifact", id.clone()),
                ],
            };
            Ok((change, artifact))
        })
    }

    /// The artifacts of one task, or of every task, oldest first. Documents that do not load are
    /// returned as warnings.
    pub fn list(&self, task: Option<&str>) -> Result<(Vec<Artifact>, Vec<String>)> {
        let snap = self.store.snapshot()?;
        let dirs: Vec<String> = match task {
            Some(t) => {
                let id = crate::store::task_ids::resolve_now(&self.coord.repo, t)?;
                vec![format!("tasks/{}/{id}/artifacts", id::shard(&id))]
            }
            None => self.shard_dirs(&snap)?,
        };
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for dir in dirs {
            let Some(tree) = snap.tree else { break };
            let Some(dir_tree) = self.coord.repo.lookup_path(tree, &dir)? else {
                continue;
            };
            for entry in self.coord.repo.tree_entries(dir_tree)? {
                let path = format!("{dir}/{}", entry.name);
                if let Some(odd) = entry.odd {
                    problems.push(format!("{TASKS_REF}:{path}: skipped: {odd}"));
                    continue;
                }
                if !entry.is_blob || !entry.name.ends_with(".yaml") {
                    continue;
                }
                let bytes = crate::store::read_blob(
                    &self.coord.repo,
                    entry.oid,
                    MAX_DOCUMENT_BYTES,
                    TASKS_REF,
                    &path,
                );
                match bytes.and_then(|b| Artifact::from_yaml(&b, TASKS_REF, &path)) {
                    Ok(a) => out.push(a),
                    Err(e) => problems.push(e.to_string()),
                }
            }
        }
        out.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        Ok((out, problems))
    }

    fn shard_dirs(&self, snap: &Snapshot) -> Result<Vec<String>> {
        let Some(tree) = snap.tree else {
            return Ok(Vec::new());
        };
        let Some(top) = self.coord.repo.lookup_path(tree, "artifacts")? else {
            return Ok(Vec::new());
        };
        Ok(self
            .coord
            .repo
            .tree_entries(top)?
            .into_iter()
            .filter(|e| e.is_tree)
            .map(|e| format!("artifacts/{}", e.name))
            .collect())
    }

    /// One artifact and its content.
    pub fn show(&self, input: &str) -> Result<(Artifact, Vec<u8>)> {
        let prefix = id::parse_prefix(input)?;
        let snap = self.store.snapshot()?;
        let not_found = || {
            Error::invalid(
                "artifact",
                input,
                "no artifact has that id; `git coord artifact list` shows them",
            )
        };
        let shard_tree = match snap.tree {
            Some(tree) => self
                .coord
                .repo
                .lookup_path(tree, &format!("artifacts/{}", id::shard(&prefix)))?,
            None => None,
        }
        .ok_or_else(not_found)?;
        let mut candidates: Vec<String> = self
            .coord
            .repo
            .tree_entries(shard_tree)?
            .into_iter()
            .filter(|e| e.is_blob)
            .filter_map(|e| e.name.strip_suffix(".yaml").map(str::to_string))
            .filter(|id| id.starts_with(&prefix))
            .collect();
        let id = match candidates.len() {
            0 => return Err(not_found()),
            1 => candidates.remove(0),
            _ if candidates.contains(&prefix) => prefix.clone(),
            _ => {
                return Err(Error::AmbiguousId { prefix, candidates });
            }
        };
        let path = Artifact::path(&id);
        let bytes = self.store.read(&snap, &path)?.ok_or_else(not_found)?;
        let artifact = Artifact::from_yaml(&bytes, TASKS_REF, &path)?;
        let limit = MAX_ARTIFACT_BYTES as u64;
        let content = self
            .store
            .read_within(&snap, &Artifact::content_path(&id), limit)?
            .ok_or_else(|| Error::Malformed {
                refname: TASKS_REF.into(),
                path: Artifact::content_path(&id),
                why: "the artifact's content is missing".into(),
            })?;
        Ok((artifact, content))
    }
}
