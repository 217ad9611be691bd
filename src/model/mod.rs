//! The documents git-coord keeps in refs/coord/*: their types, validation and encoding.

pub mod agent;
pub mod artifact;
pub mod checkpoint;
pub mod id;
pub mod lease;
pub mod merge;
pub mod message;
pub mod name;
pub mod presence;
pub mod rules;
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

/// Parses a versioned document: size and UTF-8 checks, the YAML limits of [`parse_yaml`], and a
/// format version no newer than `supported` (a newer one is reported as such even when the rest
/// does not parse). `path` names the document in errors.
pub(crate) fn parse_document<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    refname: &str,
    path: &str,
    supported: u32,
    format_of: impl Fn(&T) -> u32,
) -> crate::error::Result<T> {
    use crate::error::Error;
    let malformed = |why: String| Error::Malformed {
        refname: refname.into(),
        path: path.into(),
        why,
    };
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(malformed(format!(
            "{} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8".into()))?;
    let newer = |found: u32| Error::NewerFormat {
        refname: refname.into(),
        path: path.into(),
        found,
        supported,
    };
    let doc: T = match parse_yaml(text) {
        Ok(doc) => doc,
        Err(why) => {
            #[derive(serde::Deserialize)]
            struct FormatProbe {
                format: u32,
            }
            return Err(match parse_yaml::<FormatProbe>(text) {
                Ok(probe) if probe.format > supported => newer(probe.format),
                _ => malformed(why),
            });
        }
    };
    match format_of(&doc) {
        0 => Err(malformed("format version 0".into())),
        found if found > supported => Err(newer(found)),
        _ => Ok(doc),
    }
}
