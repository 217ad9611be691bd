//! Names of agents, roles and labels: checked before they reach a ref, a path or a branch.

use crate::error::{Error, Result};

const MAX_NAME: usize = 64;

/// Accepts `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 64 characters, never `..` nor a `.lock` ending,
/// so a name is always safe as a ref component, a file name and a branch name.
pub fn validate(what: &'static str, name: &str) -> Result<()> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME {
        Some("it is longer than 64 characters")
    } else if !name.as_bytes()[0].is_ascii_alphanumeric() {
        Some("it must start with a letter or a digit")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only letters, digits, '.', '_' and '-' are allowed")
    } else if name.contains("..") || name.ends_with(".lock") || name.ends_with('.') {
        Some("it may not contain '..' or end with '.' or '.lock'")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::invalid(what, name, why)),
        None => Ok(()),
    }
}

/// Turns a git user name ("Ada Lovelace") into an agent name ("ada-lovelace").
pub fn agent_from_user_name(user: &str) -> Option<String> {
    let mut out = String::new();
    for c in user.trim().chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out
        .trim_matches(|c| c == '-' || c == '.')
        .replace("..", ".");
    let out: String = out.chars().take(MAX_NAME).collect();
    validate("agent", &out).ok().map(|_| out)
}
