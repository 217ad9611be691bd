//! An artifact of a task (a plan, a review, a design note, a test report): a YAML document with
//! its summary at `artifacts/<shard>/<id>.yaml` in refs/coord/tasks, its content beside it at
//! `artifacts/<shard>/<id>.data`, and the same document filed under its task at
//! `tasks/<shard>/<task>/artifacts/<id>.yaml`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{id, name, parse_document, time};

pub const ARTIFACT_FORMAT: u32 = 1;
/// The largest artifact content accepted.
pub const MAX_ARTIFACT_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_ARTIFACT_SUMMARY: usize = 500;

/// What an artifact is, in the team's own words: `plan`, `review`, `doc`, `report` and `other`
/// are what the default roles use, and any other valid name (`code`, `pseudocode`,
/// `test-report`) is as good. A workflow stage that reads a kind is labelled `needs-<kind>`, so a
/// kind is a name short enough for that label to be one too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ArtifactKind(String);

/// The longest kind: `needs-<kind>` must still be a valid label.
pub const MAX_KIND: usize = 58;

impl ArtifactKind {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A kind is a name (letters, digits, `.`, `_`, `-`) of at most [`MAX_KIND`] characters.
    pub fn parse(s: &str) -> Result<ArtifactKind> {
        let why = match name::validate("artifact kind", s) {
            Err(Error::Invalid { why, .. }) => why,
            Err(other) => return Err(other),
            Ok(()) if s.len() > MAX_KIND => format!("it is longer than {MAX_KIND} characters"),
            Ok(()) => return Ok(ArtifactKind(s.to_string())),
        };
        Err(Error::invalid(
            "artifact kind",
            s,
            format!(
                "{why}; a kind is any name of letters, digits, '.', '_' and '-', at most {MAX_KIND} characters (plan, review, doc, report, code, test-report...)"
            ),
        ))
    }
}

impl TryFrom<String> for ArtifactKind {
    type Error = Error;

    fn try_from(s: String) -> Result<ArtifactKind> {
        ArtifactKind::parse(&s)
    }
}

impl From<ArtifactKind> for String {
    fn from(kind: ArtifactKind) -> String {
        kind.0
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

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(kind: &str) -> String {
        format!(
            "format: 1\nid: aaaaaaaaaaaa\ntask: bbbbbbbbbbbb\nkind: {kind}\nsummary: s\nname: f\nsize: 1\ncreated: \"2026-01-01T00:00:00.000Z\"\ncreated_by: ada\n"
        )
    }

    #[test]
    fn any_name_is_a_kind_and_earlier_documents_still_read() {
        let path = "artifacts/aa/aaaaaaaaaaaa.yaml";
        for kind in [
            "plan",
            "review",
            "doc",
            "report",
            "other",
            "code",
            "test-report",
        ] {
            let a = Artifact::from_yaml(doc(kind).as_bytes(), "refs/coord/tasks", path)
                .expect("a kind");
            assert_eq!(a.kind.as_str(), kind);
            assert!(a.to_yaml().contains(&format!("kind: {kind}")));
        }
        for bad in ["../x", "\"a b\"", "x.lock", &"k".repeat(MAX_KIND + 1)] {
            assert!(
                Artifact::from_yaml(doc(bad).as_bytes(), "refs/coord/tasks", path).is_err(),
                "{bad}"
            );
        }
    }
}
