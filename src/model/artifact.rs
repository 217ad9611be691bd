//! An artifact of a task (a plan, a review, a design note, a test report): a YAML document with
//! its summary at `artifacts/<shard>/<id>.yaml` in refs/coord/tasks, its content beside it at
//! `artifacts/<shard>/<id>.data`, and the same document filed under its task at
//! `tasks/<shard>/<task>/artifacts/<id>.yaml`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{id, parse_document, time};

pub const ARTIFACT_FORMAT: u32 = 1;
/// The largest artifact content accepted.
pub const MAX_ARTIFACT_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_ARTIFACT_SUMMARY: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    Plan,
    Review,
    Doc,
    Report,
    Other,
}

impl ArtifactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Plan => "plan",
            ArtifactKind::Review => "review",
            ArtifactKind::Doc => "doc",
            ArtifactKind::Report => "report",
            ArtifactKind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Result<ArtifactKind> {
        Ok(match s {
            "plan" => ArtifactKind::Plan,
            "review" => ArtifactKind::Review,
            "doc" => ArtifactKind::Doc,
            "report" => ArtifactKind::Report,
            "other" => ArtifactKind::Other,
            _ => {
                return Err(Error::invalid(
                    "kind",
                    s,
                    "use plan, review, doc, report or other",
                ));
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub format: u32,
    pub id: String,
    pub task: String,
    pub kind: ArtifactKind,
    /// What an organiser reads instead of the content.
    pub summary: String,
    /// The file name it was put from.
    pub name: String,
    pub size: u64,
    pub created: String,
    pub created_by: String,
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Artifact {
    pub fn path(id: &str) -> String {
        format!("artifacts/{}/{id}.yaml", id::shard(id))
    }

    pub fn content_path(id: &str) -> String {
        format!("artifacts/{}/{id}.data", id::shard(id))
    }

    pub fn task_path(task: &str, id: &str) -> String {
        format!("tasks/{}/{task}/artifacts/{id}.yaml", id::shard(task))
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("an artifact always serializes")
    }

    pub fn from_yaml(bytes: &[u8], refname: &str, path: &str) -> Result<Artifact> {
        let a: Artifact = parse_document(bytes, refname, path, ARTIFACT_FORMAT, |a: &Artifact| {
            a.format
        })?;
        let malformed = |why: &str| Error::Malformed {
            refname: refname.into(),
            path: path.into(),
            why: why.into(),
        };
        if !id::is_full_id(&a.id) || !path.ends_with(&format!("/{}.yaml", a.id)) {
            return Err(malformed("its id does not match its path"));
        }
        if !id::is_full_id(&a.task) {
            return Err(malformed("task is not a full task id"));
        }
        if time::parse(&a.created).is_none() {
            return Err(malformed("created is not a timestamp"));
        }
        Ok(a)
    }
}
