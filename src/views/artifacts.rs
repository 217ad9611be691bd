//! Artifacts as briefs show them: the inputs a workflow stage reads from earlier stages, and the
//! organiser's summary (counts per kind and stage, then the latest), never their content.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::model::artifact::Artifact;
use crate::ops::artifacts::Artifacts;
use crate::ops::context::Coord;
use crate::ops::messages::clip;
use crate::ops::workflows::NEEDS_PREFIX;
use crate::store::index::TaskIndex;

fn stage_of(index: &TaskIndex, task: &str) -> Option<String> {
    index
        .get(task)?
        .labels()
        .find_map(|l| l.strip_prefix("stage-"))
        .map(str::to_string)
}

/// For each of `tasks` that needs artifacts (`needs-<kind>` labels), the artifacts of those
/// kinds on the other tasks of its workflow: a line each with the summary and how to read it.
pub fn inputs_of(coord: &Coord, index: &TaskIndex, tasks: &[&str]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let store = Artifacts::new(coord);
    for id in tasks {
        let Some(task) = index.get(id) else { continue };
        let kinds: Vec<&str> = task
            .labels()
            .filter_map(|l| l.strip_prefix(NEEDS_PREFIX))
            .collect();
        let Some(parent) = task.parent().filter(|_| !kinds.is_empty()) else {
            continue;
        };
        let siblings: Vec<String> = index
            .tasks()
            .filter(|t| t.parent() == Some(parent) && t.id() != *id)
            .map(|t| t.id().to_string())
            .collect();
        for sibling in siblings {
            let (artifacts, _) = store.list(Some(&sibling))?;
            for a in artifacts
                .iter()
                .filter(|a| kinds.contains(&a.kind.as_str()))
            {
                out.push(format!(
                    "- {} {} from {} (task {}, by {}) for {id}: {}\n    read it: git coord artifact show {}",
                    a.kind.as_str(),
                    a.id,
                    stage_of(index, &sibling)
                        .map(|s| format!("stage {s}"))
                        .unwrap_or_else(|| "an earlier task".into()),
                    sibling,
                    a.created_by,
                    clip(&a.summary, 200),
                    a.id
                ));
            }
        }
    }
    Ok(out)
}

/// The organiser's view of every artifact: a line of counts per kind, a line of counts per
/// workflow stage, then the `latest` newest summaries; and how many older ones were left out.
pub fn organiser_summary(
    coord: &Coord,
    index: &TaskIndex,
    latest: usize,
) -> Result<(Vec<String>, Vec<String>, usize)> {
    let (mut all, _) = Artifacts::new(coord).list(None)?;
    if all.is_empty() {
        return Ok((Vec::new(), Vec::new(), 0));
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut stages: BTreeMap<String, usize> = BTreeMap::new();
    for a in &all {
        *kinds.entry(a.kind.as_str()).or_default() += 1;
        let stage = stage_of(index, &a.task).unwrap_or_else(|| "no stage".into());
        *stages.entry(stage).or_default() += 1;
    }
    let line = |m: Vec<(String, usize)>| {
        m.into_iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let counts = vec![
        format!(
            "- by kind: {}",
            line(kinds.into_iter().map(|(k, n)| (k.to_string(), n)).collect())
        ),
        format!("- by stage: {}", line(stages.into_iter().collect())),
    ];
    all.reverse(); // newest first
    let shown = all.len().min(latest);
    let lines = all[..shown]
        .iter()
        .map(|a: &Artifact| {
            format!(
                "- {} {} ({}, task {}): {}",
                a.id,
                a.kind.as_str(),
                a.created_by,
                a.task,
                clip(&a.summary, 160)
            )
        })
        .collect();
    Ok((counts, lines, all.len() - shown))
}
