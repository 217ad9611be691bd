//! A lease: one YAML document at `leases/<id>.yaml` in refs/coord/leases, the gitignore-style
//! patterns it reserves, how they are turned into globs, and how long a lease may last.

use std::time::Duration;

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::rules::Notice;
use crate::model::{id, name, parse_document, time};

/// The lease document format this build writes and the newest it reads.
pub const LEASE_FORMAT: u32 = 1;
/// How long a lease lasts when no `--ttl` is given.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 60);
/// The longest a lease may be taken or renewed for at once.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
pub const MAX_PATTERNS: usize = 100;
pub const MAX_PATTERN_LEN: usize = 1024;
pub const MAX_REASON: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Exclusive,
    Shared,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Exclusive => "exclusive",
            Mode::Shared => "shared",
        }
    }

    /// Whether a lease of this mode and one of `other` may cover the same paths for two agents.
    pub fn compatible(self, other: Mode) -> bool {
        self == Mode::Shared && other == Mode::Shared
    }
}

/// Where a lease stands at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Expired,
    Released,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Expired => "expired",
            Status::Released => "released",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub format: u32,
    pub id: String,
    pub agent: String,
    /// The human behind the agent, `Name <email>` as git knows them.
    pub human: String,
    /// Gitignore-style patterns, as normalised by [`Pattern::parse`].
    pub patterns: Vec<String>,
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub acquired: String,
    pub expires: String,
    /// Set when the lease was released: the document stays as a tombstone for a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<String>,
    /// Set when a sync found this lease overlapping another agent's, taken earlier on another
    /// replica: the id of the lease that won. `released` is then set too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    /// Fields of a newer build of the same format, kept as they are.
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

pub use crate::error::LeaseConflict;

impl Lease {
    /// Where the document lives in the ref's tree.
    pub fn path(id: &str) -> String {
        format!("leases/{id}.yaml")
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("a lease always serializes")
    }

    /// Parses and checks a lease document; `path` names it in errors.
    pub fn from_yaml(bytes: &[u8], refname: &str, path: &str) -> Result<Lease> {
        let lease: Lease =
            parse_document(bytes, refname, path, LEASE_FORMAT, |l: &Lease| l.format)?;
        let malformed = |why: String| Error::Malformed {
            refname: refname.into(),
            path: path.into(),
            why,
        };
        if !id::is_full_id(&lease.id) || path != Lease::path(&lease.id) {
            return Err(malformed(format!(
                "id '{}' does not match its path",
                lease.id
            )));
        }
        name::validate("agent name", &lease.agent).map_err(|e| malformed(e.to_string()))?;
        if lease.task.as_deref().is_some_and(|t| !id::is_full_id(t)) {
            return Err(malformed("task is not a full task id".into()));
        }
        for (field, value) in [
            ("acquired", Some(&lease.acquired)),
            ("expires", Some(&lease.expires)),
            ("released", lease.released.as_ref()),
        ] {
            if value.is_some_and(|v| time::parse(v).is_none()) {
                return Err(malformed(format!("{field} is not a timestamp")));
            }
        }
        if lease.patterns.is_empty() {
            return Err(malformed("no patterns".into()));
        }
        for pattern in &lease.patterns {
            Pattern::parse(pattern).map_err(|e| malformed(e.to_string()))?;
        }
        Ok(lease)
    }

    pub fn status(&self, now: jiff::Timestamp) -> Status {
        if self.released.is_some() {
            Status::Released
        } else if self.expires_at().is_some_and(|t| t > now) {
            Status::Active
        } else {
            Status::Expired
        }
    }

    pub fn is_active(&self, now: jiff::Timestamp) -> bool {
        self.status(now) == Status::Active
    }

    pub fn expires_at(&self) -> Option<jiff::Timestamp> {
        time::parse(&self.expires)
    }

    /// When the lease stopped counting: its release, else its expiry.
    pub fn ended_at(&self) -> Option<jiff::Timestamp> {
        match &self.released {
            Some(at) => time::parse(at),
            None => self.expires_at(),
        }
    }

    /// The parsed patterns (checked when the document was read).
    pub fn parsed_patterns(&self) -> Result<Vec<Pattern>> {
        self.patterns.iter().map(|p| Pattern::parse(p)).collect()
    }
}

/// Reads a lease duration: as every duration ([`time::parse_duration`]), at most 7d.
pub fn parse_ttl(input: &str) -> Result<Duration> {
    let bad = |why: &str| {
        Error::invalid(
            "ttl",
            input,
            format!("{why}; use a number and a unit: 90s, 30m, 2h or 1d (at most 7d)"),
        )
    };
    let ttl = time::parse_duration(input).map_err(|why| bad(&why))?;
    if ttl > MAX_TTL {
        return Err(bad("it is longer than 7d"));
    }
    Ok(ttl)
}

/// A gitignore-style pattern, checked and normalised.
///
/// Rules, as in gitignore: a pattern without a slash (other than a trailing one) matches at any
/// depth; a leading `/` (or `./`) anchors it at the repository root, and so does a slash in the
/// middle; a trailing `/` matches only a directory; `**` as a whole component matches any number
/// of directories; other runs of `*` are a single `*`; `{` and `}` are literal. A pattern that
/// matches a directory also covers everything under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The normalised text, as stored in the lease.
    pub text: String,
    /// The pattern without its anchor and trailing slash: the path it names when read literally.
    pub path: String,
    pub anchored: bool,
    pub dir_only: bool,
}

impl Pattern {
    pub fn parse(input: &str) -> Result<Pattern> {
        let bad = |why: &str| Error::invalid("pattern", input, why);
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(bad("it is empty"));
        }
        if trimmed.len() > MAX_PATTERN_LEN {
            return Err(bad(&format!(
                "it is longer than {MAX_PATTERN_LEN} characters"
            )));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(bad("control characters are not allowed"));
        }
        if trimmed.starts_with('!') {
            return Err(bad(
                "negation ('!') is not supported; lease only the paths you want",
            ));
        }
        if trimmed.starts_with('#') {
            return Err(bad(
                "a leading '#' is a comment in gitignore; write '\\#' for a file name that starts with '#'",
            ));
        }
        if trimmed.starts_with('~') || looks_like_drive(trimmed) {
            return Err(bad(
                "it looks like a filesystem path; give a path relative to the repository root",
            ));
        }
        let mut rest = trimmed;
        let mut anchored = false;
        while let Some(r) = rest.strip_prefix("./") {
            rest = r;
            anchored = true;
        }
        if let Some(r) = rest.strip_prefix('/') {
            rest = r;
            anchored = true;
        }
        let dir_only = rest.ends_with('/');
        let body = rest.strip_suffix('/').unwrap_or(rest);
        if body.is_empty() {
            return Err(bad(
                "it names the whole repository; use '**' to lease everything",
            ));
        }
        for component in body.split('/') {
            match component {
                "" => return Err(bad("it has an empty path component ('//')")),
                ".." => {
                    return Err(bad(
                        "'..' is not allowed: a pattern names paths inside the repository",
                    ));
                }
                "." => return Err(bad("'.' is only allowed as a leading './'")),
                _ => {}
            }
        }
        let mut text = String::new();
        if anchored {
            text.push('/');
        }
        text.push_str(body);
        let anchored = anchored || body.contains('/');
        if dir_only {
            text.push('/');
        }
        let pattern = Pattern {
            text,
            path: body.to_string(),
            anchored,
            dir_only,
        };
        compile(&pattern.glob()).map_err(|why| bad(&why))?;
        Ok(pattern)
    }

    /// The pattern in globset syntax (without the directory-only condition, which
    /// [`PatternSet`] applies).
    pub fn glob(&self) -> String {
        let body = self
            .path
            .split('/')
            .map(translate_component)
            .collect::<Vec<_>>()
            .join("/");
        if self.anchored || body == "**" {
            body
        } else {
            format!("**/{body}")
        }
    }

    /// A path given on the command line, as a pattern that names exactly it (and what is under it).
    pub fn literal(path: &str) -> Result<Pattern> {
        let bad = |why: &str| Error::invalid("path", path, why);
        let trimmed = path.strip_prefix("./").unwrap_or(path);
        if trimmed.is_empty() || trimmed == "." {
            return Err(bad("it is empty"));
        }
        if trimmed.starts_with('/') || looks_like_drive(trimmed) {
            return Err(bad("give it relative to the repository root"));
        }
        let dir_only = trimmed.ends_with('/');
        let body = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if body
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(bad(
                "it must be a plain path inside the repository (no '.', '..' or '//')",
            ));
        }
        Ok(Pattern {
            text: trimmed.to_string(),
            path: body.to_string(),
            anchored: true,
            dir_only,
        })
    }

    /// The glob that matches exactly this pattern's path, every character literal.
    fn literal_glob(&self) -> String {
        globset::escape(&self.path.replace('\\', "\\\\"))
    }
}

fn looks_like_drive(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'/' | b'\\')
}

/// One component of a gitignore pattern in globset syntax: `**` stays only as a whole component,
/// other runs of `*` become one `*`, braces become literal; escapes and classes are kept.
fn translate_component(component: &str) -> String {
    if component == "**" {
        return component.to_string();
    }
    let mut out = String::with_capacity(component.len());
    let mut chars = component.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '[' => {
                // A class runs to the first ']' that is not its first character.
                out.push(c);
                if let Some(&neg @ ('!' | '^')) = chars.peek() {
                    out.push(neg);
                    chars.next();
                }
                if let Some(&']') = chars.peek() {
                    out.push(']');
                    chars.next();
                }
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == ']' {
                        break;
                    }
                }
            }
            '*' => {
                out.push('*');
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
            }
            '{' | '}' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

fn compile(glob: &str) -> std::result::Result<globset::Glob, String> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("not a valid glob: {}", e.kind()))
}

/// Many patterns compiled together, answering which of them cover a path.
#[derive(Debug, Clone)]
pub struct PatternSet {
    /// Globs of patterns that match files and directories.
    any: GlobSet,
    /// Globs of directory-only patterns, tried only on directories.
    dirs: GlobSet,
    /// For each glob of `any` and of `dirs`, the index of its pattern in the input.
    any_owner: Vec<usize>,
    dirs_owner: Vec<usize>,
}

impl PatternSet {
    pub fn new<'p>(patterns: impl IntoIterator<Item = &'p Pattern>) -> Result<PatternSet> {
        Self::build(patterns, Pattern::glob)
    }

    /// A set in which every pattern's path is taken literally (for paths given to `lease check`).
    pub fn literal<'p>(patterns: impl IntoIterator<Item = &'p Pattern>) -> Result<PatternSet> {
        Self::build(patterns, Pattern::literal_glob)
    }

    fn build<'p>(
        patterns: impl IntoIterator<Item = &'p Pattern>,
        glob_of: impl Fn(&Pattern) -> String,
    ) -> Result<PatternSet> {
        let (mut any, mut dirs) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        let (mut any_owner, mut dirs_owner) = (Vec::new(), Vec::new());
        for (n, pattern) in patterns.into_iter().enumerate() {
            let glob = compile(&glob_of(pattern))
                .map_err(|why| Error::invalid("pattern", pattern.text.clone(), why))?;
            if pattern.dir_only {
                dirs.add(glob);
                dirs_owner.push(n);
            } else {
                any.add(glob);
                any_owner.push(n);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::Other(format!("cannot compile lease patterns: {e}")))
        };
        Ok(PatternSet {
            any: build(any)?,
            dirs: build(dirs)?,
            any_owner,
            dirs_owner,
        })
    }

    /// The indices of the patterns that cover `path`: match it, or match a directory containing
    /// it. `is_dir` says whether `path` itself is a directory. Sorted, without repeats.
    pub fn matches(&self, path: &str, is_dir: bool) -> Vec<usize> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let prefixes = path.match_indices('/').map(|(i, _)| (&path[..i], true));
        for (candidate, dir) in prefixes.chain([(path, is_dir)]) {
            let candidate = Candidate::new(candidate);
            self.any.matches_candidate_into(&candidate, &mut scratch);
            out.extend(scratch.iter().map(|&g| self.any_owner[g]));
            if dir {
                self.dirs.matches_candidate_into(&candidate, &mut scratch);
                out.extend(scratch.iter().map(|&g| self.dirs_owner[g]));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn is_match(&self, path: &str, is_dir: bool) -> bool {
        !self.matches(path, is_dir).is_empty()
    }
}

/// One lease changed on both sides: released if either released (the earlier time), the later
/// expiry, other fields three ways.
pub fn merge_lease(path: &str, base: Option<&[u8]>, ours: &[u8], theirs: &[u8]) -> Option<Vec<u8>> {
    let parse = |b: &[u8]| Lease::from_yaml(b, "", path).ok();
    let (o, t) = match (parse(ours), parse(theirs)) {
        (Some(o), Some(t)) => (o, t),
        (Some(_), None) => return Some(ours.to_vec()),
        (None, Some(_)) => return Some(theirs.to_vec()),
        (None, None) => return None,
    };
    let merged_fields = crate::model::rules::merge_fields(base, ours, theirs)?;
    let mut lease = Lease::from_yaml(&merged_fields, "", path).ok()?;
    lease.expires = o.expires.clone().max(t.expires.clone());
    lease.released = match (&o.released, &t.released) {
        (Some(a), Some(b)) => Some(a.clone().min(b.clone())),
        (a, b) => a.clone().or(b.clone()),
    };
    lease.revoked_by = o.revoked_by.clone().max(t.revoked_by.clone());
    Some(lease.to_yaml().into_bytes())
}

/// Two leases granted apart on two replicas, both new since they forked. When they may not
/// coexist (two agents, a mode that excludes, lifetimes and patterns that meet), the earlier one
/// holds and the other is revoked: returns the revoked lease and the notice its agent is owed.
pub fn settle_overlap(x: &Lease, y: &Lease) -> Option<(Lease, Notice)> {
    if x.agent == y.agent
        || x.mode.compatible(y.mode)
        || x.revoked_by.is_some()
        || y.revoked_by.is_some()
        || !lifetimes_meet(x, y)
        || !patterns_overlap(x, y)
    {
        return None;
    }
    let (winner, loser) = if (&x.acquired, &x.id) <= (&y.acquired, &y.id) {
        (x, y)
    } else {
        (y, x)
    };
    let at = loser.acquired.clone().max(winner.acquired.clone());
    let mut lost = loser.clone();
    lost.released = Some(match &lost.released {
        Some(r) => r.clone().min(at.clone()),
        None => at.clone(),
    });
    lost.revoked_by = Some(winner.id.clone());
    let notice = Notice::LeaseRevoked {
        lease: lost.id.clone(),
        loser: lost.agent.clone(),
        patterns: lost.patterns.clone(),
        winner: winner.agent.clone(),
        winner_lease: winner.id.clone(),
        at,
    };
    Some((lost, notice))
}

fn lifetimes_meet(a: &Lease, b: &Lease) -> bool {
    let end = |l: &Lease| match &l.released {
        Some(r) => r.clone().min(l.expires.clone()),
        None => l.expires.clone(),
    };
    a.acquired < end(b) && b.acquired < end(a)
}

/// Whether two leases' patterns meet: a pattern of one, read as a path, is covered by the other.
/// (Paths that exist differ between replicas, so a merge looks at patterns only.)
fn patterns_overlap(a: &Lease, b: &Lease) -> bool {
    let (Ok(pa), Ok(pb)) = (a.parsed_patterns(), b.parsed_patterns()) else {
        return false;
    };
    let (Ok(sa), Ok(sb)) = (PatternSet::new(&pa), PatternSet::new(&pb)) else {
        return false;
    };
    let meets = |ps: &[Pattern], set: &PatternSet| {
        ps.iter()
            .any(|p| set.is_match(&p.path, true) || set.is_match(&p.path, false))
    };
    meets(&pa, &sb) || meets(&pb, &sa)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(pattern: &str, path: &str) -> bool {
        let p = Pattern::parse(pattern).expect("a valid pattern");
        PatternSet::new([&p])
            .expect("compiles")
            .is_match(path, false)
    }

    #[test]
    fn gitignore_rules() {
        // No slash: any depth.
        assert!(covers("main.rs", "main.rs"));
        assert!(covers("main.rs", "src/bin/main.rs"));
        assert!(covers("*.rs", "src/lib.rs"));
        assert!(!covers("*.rs", "src/lib.rsx"));
        // Leading slash or a middle slash: anchored.
        assert!(covers("/main.rs", "main.rs"));
        assert!(!covers("/main.rs", "src/main.rs"));
        assert!(covers("src/*.rs", "src/main.rs"));
        assert!(!covers("src/*.rs", "lib/src/main.rs"));
        assert!(!covers("src/*.rs", "src/bin/main.rs"), "* stops at a slash");
        assert!(covers("./src/main.rs", "src/main.rs"));
        // Trailing slash: a directory and everything under it.
        assert!(covers("docs/", "docs/a.md"));
        assert!(covers("docs/", "x/docs/deep/a.md"));
        assert!(
            !covers("docs/", "docs"),
            "a file named docs is not the directory"
        );
        // A pattern naming a directory covers what is under it.
        assert!(covers("/src", "src/deep/main.rs"));
        assert!(covers("target", "a/target/debug/x"));
        // `**`.
        assert!(covers("src/**", "src/a/b/c.rs"));
        assert!(!covers("src/**", "src"));
        assert!(covers("**/tests/*.rs", "tests/a.rs"));
        assert!(covers("**/tests/*.rs", "x/y/tests/a.rs"));
        assert!(covers("a/**/b", "a/b"));
        assert!(covers("a/**/b", "a/x/y/b"));
        assert!(covers("**", "anything/at/all"));
        assert!(
            covers("foo**bar", "foo-bar"),
            "a ** inside a component is a *"
        );
        assert!(!covers("foo**bar", "foo/bar"));
        // Braces are literal, classes work, escapes work.
        assert!(covers("{a,b}.rs", "{a,b}.rs"));
        assert!(!covers("{a,b}.rs", "a.rs"));
        assert!(covers("file[0-9].txt", "file7.txt"));
        assert!(covers("\\*.txt", "*.txt"));
        assert!(!covers("\\*.txt", "a.txt"));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("/", "whole repository"),
            ("../x", "'..'"),
            ("src/../x", "'..'"),
            ("a//b", "empty path component"),
            ("!src", "negation"),
            ("#x", "comment"),
            ("src/./x", "'.'"),
            ("C:/src", "filesystem path"),
            ("~/src", "filesystem path"),
            ("src/[a-", "not a valid glob"),
            ("a\nb", "control"),
        ] {
            let err = Pattern::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn normalised_text() {
        let p = |s: &str| Pattern::parse(s).expect("valid").text;
        assert_eq!(p(" src/ "), "src/");
        assert_eq!(p("./src"), "/src");
        assert_eq!(p("/src/main.rs"), "/src/main.rs");
        assert_eq!(p("./src/main.rs"), "/src/main.rs");
        assert_eq!(p("src/main.rs"), "src/main.rs");
        assert_eq!(p("*.rs"), "*.rs");
        for text in ["src/", "/src", "src/main.rs", "*.rs", "/docs/"] {
            assert_eq!(p(&p(text)), p(text), "normalising twice changes nothing");
        }
        assert_eq!(Pattern::parse("/docs/").expect("valid").glob(), "docs");
        assert!(Pattern::parse("/docs/").expect("valid").dir_only);
    }

    #[test]
    fn ttl_forms() {
        assert_eq!(parse_ttl("90s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m").ok(), Some(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("2h").ok(), Some(Duration::from_secs(7200)));
        assert_eq!(parse_ttl("1d").ok(), Some(Duration::from_secs(86400)));
        assert_eq!(parse_ttl("1h30m").ok(), Some(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("7d").ok(), Some(MAX_TTL));
        for bad in [
            "",
            "30",
            "m",
            "0s",
            "8d",
            "169h",
            "5x",
            "-5m",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn literal_paths() {
        let set = PatternSet::literal(&[Pattern::literal("src/[id].rs").expect("valid")])
            .expect("compiles");
        assert!(set.is_match("src/[id].rs", false));
        assert!(!set.is_match("src/i.rs", false));
        assert!(set.is_match("src/[id].rs/x", false), "what is under it");
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b"] {
            assert!(Pattern::literal(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn documents_round_trip_and_are_checked() {
        let lease = Lease {
            format: LEASE_FORMAT,
            id: "0123456789ab".into(),
            agent: "alice".into(),
            human: "Ada <ada@example.com>".into(),
            patterns: vec!["src/**".into(), "*.md".into()],
            mode: Mode::Shared,
            task: Some("ba9876543210".into()),
            reason: Some("refactor: #1".into()),
            acquired: "2026-01-01T00:00:00.000Z".into(),
            expires: "2026-01-01T00:30:00.000Z".into(),
            released: None,
            revoked_by: None,
            extra: Default::default(),
        };
        let path = Lease::path(&lease.id);
        let yaml = lease.to_yaml();
        let read = Lease::from_yaml(yaml.as_bytes(), "refs/coord/leases", &path).expect("reads");
        assert_eq!(read, lease);
        let now = time::parse("2026-01-01T00:10:00.000Z").expect("a timestamp");
        assert_eq!(lease.status(now), Status::Active);
        let later = time::parse("2026-01-01T00:30:00.000Z").expect("a timestamp");
        assert_eq!(lease.status(later), Status::Expired, "expiry is exclusive");

        let broken = yaml.replace("src/**", "../x");
        let err = Lease::from_yaml(broken.as_bytes(), "refs/coord/leases", &path)
            .expect_err("a bad pattern")
            .to_string();
        assert!(err.contains("malformed"), "{err}");
        let newer = yaml.replace("format: 1", "format: 2\nnew_field: [1");
        assert!(matches!(
            Lease::from_yaml(newer.as_bytes(), "refs/coord/leases", &path),
            Err(Error::Malformed { .. }) | Err(Error::NewerFormat { .. })
        ));
        let newer = yaml.replace("format: 1", "format: 2");
        assert!(matches!(
            Lease::from_yaml(newer.as_bytes(), "refs/coord/leases", &path),
            Err(Error::NewerFormat { found: 2, .. })
        ));
        assert!(
            Lease::from_yaml(
                yaml.as_bytes(),
                "refs/coord/leases",
                "leases/aaaaaaaaaaaa.yaml"
            )
            .is_err()
        );
    }

    /// Lease patterns cover what git's own gitignore matching (gix-glob's) covers: a path the
    /// pattern matches, or one under a directory it matches, on generated patterns and paths.
    #[test]
    fn patterns_cover_what_gitignore_matching_covers() {
        use gix_glob::pattern::Case;
        use gix_glob::wildmatch::Mode;
        let seed = std::env::var("GIT_COORD_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| crate::model::time::now_seconds() as u64 | 1);
        eprintln!("seed {seed} (set GIT_COORD_TEST_SEED to repeat)");
        let mut x = seed;
        let mut below = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        const PARTS: [&str; 14] = [
            "src", "a", "b", "*", "**", "*.rs", "b?", "[ab]", "[!a]", "x*y", "a**", "{a}", "?",
            "ab",
        ];
        const NAMES: [&str; 9] = ["src", "a", "b", "x.rs", "ab", "xy", "xay", "{a}", "ba"];
        let gix_covers = |glob: &gix_glob::Pattern, path: &str| {
            let matches = |p: &str, dir: bool| {
                glob.matches_repo_relative_path(
                    p.into(),
                    p.rfind('/').map(|i| i + 1),
                    Some(dir),
                    Case::Sensitive,
                    Mode::NO_MATCH_SLASH_LITERAL,
                )
            };
            let prefixes = path.match_indices('/').map(|(i, _)| &path[..i]);
            prefixes.into_iter().any(|p| matches(p, true)) || matches(path, false)
        };
        let (mut compared, mut covered) = (0, 0);
        for _ in 0..3_000 {
            let text: Vec<&str> = (0..=below(3)).map(|_| PARTS[below(PARTS.len())]).collect();
            let mut text = text.join("/");
            if below(4) == 0 {
                text.insert(0, '/');
            }
            if below(4) == 0 {
                text.push('/');
            }
            let Ok(ours) = Pattern::parse(&text) else {
                continue;
            };
            let set = PatternSet::new([&ours]).expect("compiles");
            let theirs = gix_glob::parse(&text).expect("gix reads every pattern ours reads");
            for _ in 0..20 {
                let path: Vec<&str> = (0..=below(3)).map(|_| NAMES[below(NAMES.len())]).collect();
                let path = path.join("/");
                let want = gix_covers(&theirs, &path);
                assert_eq!(
                    set.is_match(&path, false),
                    want,
                    "pattern {text:?}, path {path:?}, seed {seed}"
                );
                compared += 1;
                covered += usize::from(want);
            }
        }
        assert!(
            covered * 10 > compared,
            "only {covered} of {compared} covered, seed {seed}"
        );
    }
}
