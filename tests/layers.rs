//! The layers hold: no file of src/ imports, directly or through others, a file that imports it
//! back. Records (tasks, leases, messages, agents, presence) sit below the flows that combine
//! them (workflows, checkpoints, the breaker, projects, mail, work), and a circle would tie them
//! together again. An import is any path `crate::a::b` or `super::a` outside comments and tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of the crate (`ops::tasks`, `git`, ...) and the source file that holds it.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ reads") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path
                .strip_prefix(src)
                .expect("under src/")
                .with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let name = parts.join("::");
            let text = std::fs::read_to_string(&path).expect("a source file reads");
            out.insert(name, text);
        }
    }
    out
}

/// The code of a file without its tests and comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths of `text` that start with `prefix` (`crate::`, `super::`), as their segments.
fn paths_after<'t>(text: &'t str, prefix: &str) -> Vec<Vec<&'t str>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `mycrate::`, not `crate::`
        }
        let mut segments = Vec::new();
        let mut tail = rest;
        loop {
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            if end == 0 {
                // `{a, b}`: each name in the group is a path of its own.
                if let Some(group) = tail.strip_prefix('{') {
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    for name in group.split(',') {
                        let name = name.trim().split("::").next().unwrap_or_default();
                        let mut each = segments.clone();
                        each.push(name);
                        out.push(each);
                    }
                }
                break;
            }
            segments.push(&tail[..end]);
            tail = &tail[end..];
            match tail.strip_prefix("::") {
                Some(more) => tail = more,
                None => break,
            }
        }
        if !segments.is_empty() {
            out.push(segments);
        }
    }
    out
}

/// Which modules each module imports.
fn imports(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, text) in mods {
        let code = code(text);
        let parent: Vec<&str> = match name.rsplit_once("::") {
            Some((parent, _)) => parent.split("::").collect(),
            None => Vec::new(),
        };
        let mut targets = Vec::new();
        for path in paths_after(&code, "crate::") {
            targets.push(path);
        }
        for path in paths_after(&code, "super::") {
            let mut full: Vec<&str> = parent.clone();
            full.extend(path);
            targets.push(full);
        }
        let edges = graph.entry(name.clone()).or_default();
        for path in targets {
            // The longest prefix of the path that is a module.
            for len in (1..=path.len()).rev() {
                let candidate = path[..len].join("::");
                if mods.contains_key(&candidate) {
                    if candidate != *name {
                        edges.insert(candidate);
                    }
                    break;
                }
            }
        }
    }
    graph
}

/// The circles of `graph`: its strongly connected parts of more than one module.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Two modules are in one circle when each reaches the other.
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut placed = BTreeSet::new();
    for m in graph.keys() {
        if placed.contains(m) || !reached[m].contains(m) {
            continue;
        }
        let circle: Vec<String> = graph
            .keys()
            .filter(|o| reached[m].contains(*o) && reached[*o].contains(m))
            .cloned()
            .collect();
        placed.extend(circle.iter().cloned());
        found.push(circle);
    }
    found
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    assert!(mods.contains_key("ops::tasks"), "the modules are found");
    let graph = imports(&mods);
    let found = circles(&graph);
    let described: Vec<String> = found
        .iter()
        .map(|circle| {
            let edges: Vec<String> = circle
                .iter()
                .map(|m| {
                    let inside: Vec<&str> = graph[m]
                        .iter()
                        .filter(|t| circle.contains(t))
                        .map(String::as_str)
                        .collect();
                    format!("  {m} -> {}", inside.join(", "))
                })
                .collect();
            edges.join("\n")
        })
        .collect();
    assert!(
        found.is_empty(),
        "import circles between files of src/:\n{}",
        described.join("\n\n")
    );
}

#[test]
fn the_checker_sees_a_circle_and_grouped_imports() {
    let mut mods = BTreeMap::new();
    mods.insert("a".to_string(), "use crate::b::{self, C};\n".to_string());
    mods.insert("b".to_string(), "fn f() { crate::c::g() }\n".to_string());
    mods.insert(
        "c".to_string(),
        "// crate::a in a comment is no import\nuse super::a;\n".to_string(),
    );
    mods.insert("d".to_string(), "use crate::a;\n".to_string());
    let graph = imports(&mods);
    assert_eq!(graph["a"], BTreeSet::from(["b".to_string()]));
    assert_eq!(graph["c"], BTreeSet::from(["a".to_string()]));
    assert_eq!(circles(&graph), vec![vec!["a", "b", "c"]]);
}
