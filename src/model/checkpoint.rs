//! A checkpoint: one YAML document at `checkpoints/<seq>.yaml` in refs/coord/checkpoints, saying
//! which agent branches were merged into the integration branch, which were left out and why,
//! which gates ran with what result, and where the branch went.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::parse_document;

pub const CHECKPOINT_FORMAT: u32 = 1;

/// What became of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every gate passed and the integration branch moved.
    Moved,
    /// A gate failed: the integration branch did not move.
    GatesFailed,
    /// Nothing to merge: every branch was already in.
    NothingToMerge,
    /// The integration branch moved meanwhile: nothing was changed; run it again.
    BranchMoved,
    /// A rollback: the branch now holds an earlier checkpoint's content.
    RolledBack,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Moved => "moved",
            Outcome::GatesFailed => "gates-failed",
            Outcome::NothingToMerge => "nothing-to-merge",
            Outcome::BranchMoved => "branch-moved",
            Outcome::RolledBack => "rolled-back",
        }
    }
}

/// A branch merged by a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedBranch {
    pub agent: String,
    pub branch: String,
    pub commit: String,
}

/// A branch left out because it conflicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictedBranch {
    pub agent: String,
    pub branch: String,
    pub commit: String,
    pub paths: Vec<String>,
    /// The task opened for the agent to resolve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_task: Option<String>,
}

/// A branch left out because it changes paths another agent holds an exclusive lease on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRefusal {
    pub agent: String,
    pub branch: String,
    pub commit: String,
    pub breaches: Vec<LeaseBreach>,
}

/// One path of a branch left out for a lease: the lease, and a commit of the branch that changes
/// the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseBreach {
    pub path: String,
    pub holder: String,
    pub lease: String,
    pub pattern: String,
    pub until: String,
    pub commit: String,
    pub subject: String,
}

/// A commit, named with its subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRef {
    pub commit: String,
    pub subject: String,
}

/// One gate command and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub command: String,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub seconds: f64,
    /// The last lines it printed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output_tail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    pub seq: u64,
    pub into: String,
    pub outcome: Outcome,
    /// The integration branch's commit before.
    pub before: String,
    /// The merged result (the branch's commit after, when it moved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<MergedBranch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<ConflictedBranch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lease_refusals: Vec<LeaseRefusal>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateResult>,
    /// For a rollback: the checkpoint whose content was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u64>,
    /// For a rollback: true when it restored the content from before `rollback_of` (undoing it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undo: bool,
    /// For `rollback --force`: the commits made on the branch after `rollback_of`, by no
    /// checkpoint, whose changes the rollback dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<CommitRef>,
    pub at: String,
    pub by: String,
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Checkpoint {
    pub fn path(seq: u64) -> String {
        format!("checkpoints/{seq:06}.yaml")
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("a checkpoint always serializes")
    }

    pub fn from_yaml(bytes: &[u8], refname: &str, path: &str) -> Result<Checkpoint> {
        let c: Checkpoint =
            parse_document(bytes, refname, path, CHECKPOINT_FORMAT, |c: &Checkpoint| {
                c.format
            })?;
        if path != Checkpoint::path(c.seq) {
            return Err(Error::Malformed {
                refname: refname.into(),
                path: path.into(),
                why: format!("seq {} does not match its path", c.seq),
            });
        }
        Ok(c)
    }
}
