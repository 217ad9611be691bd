//! The derived inbox cache: per agent, the summaries of the messages in each shard of its box,
//! tagged with the shard's tree id and each message's blob id (`.git/coord/cache/inbox/<agent>.tsv`).
//! A shard is reused only for the exact tree it was built from, a summary only for the exact blob;
//! anything unreadable is ignored and rebuilt. Never the source of truth.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::git::Oid;
use crate::model::message::Importance;
use crate::model::message::MessageSummary;

const MAGIC: &str = concat!(
    "git-coord inbox cache 2, git-coord ",
    env!("CARGO_PKG_VERSION")
);

/// Shard name -> (shard tree id, (blob id, summary) of each message).
pub type Shards = BTreeMap<String, (Oid, Vec<(Oid, MessageSummary)>)>;

/// The cached shards, or none when the file is missing, from another build, or damaged.
pub fn read(file: &Path) -> Shards {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Shards::new();
    };
    parse(&text).unwrap_or_default()
}

fn parse(text: &str) -> Option<Shards> {
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let mut shards = Shards::new();
    let mut current: Option<String> = None;
    let mut complete = false;
    for line in lines {
        if line == "end" {
            complete = true;
            break;
        }
        if let Some(rest) = line.strip_prefix("S\t") {
            let (name, oid) = rest.split_once('\t')?;
            shards.insert(
                name.to_string(),
                (Oid::from_hex(oid.as_bytes()).ok()?, Vec::new()),
            );
            current = Some(name.to_string());
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let [
            blob,
            id,
            created,
            from,
            importance,
            thread,
            task,
            attachments,
            subject,
            first,
        ] = f[..]
        else {
            return None;
        };
        let summary = MessageSummary {
            id: id.into(),
            created: created.into(),
            from: from.into(),
            importance: Importance::parse(importance).ok()?,
            thread: thread.into(),
            task: (task != "-").then(|| task.to_string()),
            attachments: attachments.parse().ok()?,
            subject: subject.into(),
            first_line: first.into(),
        };
        let shard = shards.get_mut(current.as_ref()?)?;
        shard
            .1
            .push((Oid::from_hex(blob.as_bytes()).ok()?, summary));
    }
    complete.then_some(shards)
}

/// Writes the cache (to a temporary file renamed into place). Failing to write only costs speed.
pub fn write(file: &Path, shards: &Shards) {
    let mut out = String::with_capacity(64 * 1024);
    out.push_str(MAGIC);
    out.push('\n');
    for (name, (tree, records)) in shards {
        out.push_str(&format!("S\t{name}\t{tree}\n"));
        for (blob, s) in records {
            out.push_str(&format!(
                "{blob}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                s.id,
                s.created,
                s.from,
                s.importance.as_str(),
                s.thread,
                s.task.as_deref().unwrap_or("-"),
                s.attachments,
                flat(&s.subject),
                flat(&s.first_line)
            ));
        }
    }
    out.push_str("end\n");
    let Some(dir) = file.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(out.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, file));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Text as one field: tabs and line breaks become spaces.
fn flat(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}
