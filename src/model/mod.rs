//! The documents git-coord keeps in refs/coord/*: their types, validation and encoding.

pub mod agent;
pub mod id;
pub mod lease;
pub mod name;
pub mod task;
pub mod time;

/// Largest document accepted from a ref; anything bigger is reported as malformed, not parsed.
pub const MAX_DOCUMENT_BYTES: u64 = 1024 * 1024;

/// Parses a YAML document with tight limits on nesting, aliases and events.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut options = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    budget.max_aliases = 0;
    budget.max_anchors = 0;
    budget.max_events = 200_000;
    budget.max_depth = 32;
    options.budget = Some(budget);
    options.with_snippet = false;
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        // The parser's message carries a source snippet; its first line says what and where.
        let text = e.to_string();
        text.lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string()
    })
}
