//! Entity ids: random, short, coordination-free, resolvable by unique prefix.

use crate::error::{Error, Result};

/// Hex characters in a full id: 48 random bits. Among a million ids the odds that some two are
/// equal are about 1 in 560, so creation checks the store and draws again on a collision.
pub const ID_LEN: usize = 12;
/// The shortest prefix accepted when naming an entity.
pub const MIN_PREFIX: usize = 4;
/// Characters of the id that name its shard directory.
pub const SHARD_LEN: usize = 2;

pub fn new_id() -> String {
    let mut bytes = [0u8; ID_LEN / 2];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn shard(id: &str) -> &str {
    &id[..SHARD_LEN]
}

/// Checks what a user typed as an id or id prefix, and returns it lowercased.
pub fn parse_prefix(input: &str) -> Result<String> {
    let s = input.trim().trim_start_matches('#').to_ascii_lowercase();
    if s.len() < MIN_PREFIX || s.len() > ID_LEN || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(
            "id",
            input,
            format!(
                "ids are {MIN_PREFIX} to {ID_LEN} hex characters (a unique prefix of the full id)"
            ),
        ));
    }
    Ok(s)
}

pub fn is_full_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Splits `NAME:ID` (a task of a related project) into the project's name and the id part.
pub fn split_foreign(input: &str) -> Option<(&str, &str)> {
    let (project, id) = input.trim().trim_start_matches('#').split_once(':')?;
    (!project.is_empty()).then_some((project, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_of_another_project_is_name_colon_id() {
        assert_eq!(split_foreign("beads:42d4"), Some(("beads", "42d4")));
        assert_eq!(split_foreign("#beads:42d4"), Some(("beads", "42d4")));
        assert_eq!(split_foreign("42d4"), None);
        assert_eq!(split_foreign(":42d4"), None);
    }
}
