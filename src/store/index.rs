//! The derived task index: task summaries per shard, each tagged with the id of the shard tree it
//! was built from, cached in one file (`.git/coord/cache/tasks.index`). Every run reads the ref
//! tip and its shard trees, so a cached shard is only used for the exact tree it was built from;
//! in a changed shard only the documents whose blob changed are parsed again. The index is never the source of truth: delete `.git/coord/cache` and nothing is
//! lost.
//!
//! In memory a shard is fixed-size records of spans into its text, read in place from the cache
//! file's bytes, so loading 100,000 summaries costs one read and no allocation per task;
//! [`TaskRef`] reads a record. The done tasks of a shard are kept apart, with their names beside
//! the other tasks: a project's done tasks are most of it, and what asks only for the tasks not
//! done ([`Need::Undone`]: `ready`, `claim --next`) neither checks nor reads them.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::git::{Oid, PackOrder, Repo, TreeEntry};
use crate::model::MAX_DOCUMENT_BYTES;
use crate::model::task::{Kind, State, SummaryRef};
use crate::store::mapped::Bytes;
use crate::store::{Problem, Snapshot};

/// Names the layout of the cache file and the build that wrote it, so another version of
/// git-coord never trusts what this one made (and the other way round).
const MAGIC: &[u8] = concat!(
    "git-coord task index 8, git-coord ",
    env!("CARGO_PKG_VERSION"),
    ", task format 1\n"
)
.as_bytes();

/// Changed shards the side file (`tasks.changed`) holds before the whole cache file is rewritten.
const REWRITE_AFTER_SHARDS: usize = 16;

/// Lists (labels, deps) are stored joined by this byte; names and ids never contain it.
const LIST_SEP: char = '\n';

/// The text fields of a record, in their order in the record.
#[derive(Clone, Copy)]
enum Field {
    Name,
    Id,
    Title,
    Role,
    Labels,
    Deps,
    Parent,
    Assignee,
    Summary,
    BlockReason,
    Created,
    Updated,
}

const FIELDS: usize = 12;
/// One record: the blob id (20 bytes), ok/state/kind/priority (4 bytes), where the record's text
/// starts in its part's text (a u32, the base), then for each field its offset from the base and
/// its length, two u16s (offset [`ABSENT`]: absent), then the urgency key packed as two u64s
/// ([`TaskRef::packed_urgency`]). A record whose fields do not fit in u16s (a title of 64 KiB)
/// is wide: its base has the [`WIDE`] bit and points at its fields' whole spans, written in its
/// part's text as hex digits (see [`field_span`]). For a document that failed to load, `ok` is 0
/// and the title field holds why.
const REC_BYTES: usize = URGENCY_AT + 16;
const BASE_AT: usize = 24;
const SPANS_AT: usize = BASE_AT + 4;
const URGENCY_AT: usize = SPANS_AT + FIELDS * 4;
const ABSENT: u16 = u16::MAX;
const WIDE: u32 = 1 << 31;
/// A wide record's span of one field in hex: start then length, 8 digits each (start
/// `ffffffff`: absent).
const WIDE_SPAN: usize = 16;
const STATES: [State; 4] = [State::Open, State::Claimed, State::Done, State::Blocked];
const KINDS: [Kind; 5] = [
    Kind::Bug,
    Kind::Feature,
    Kind::Task,
    Kind::Chore,
    Kind::Epic,
];

/// The summaries of one shard, read in place from bytes: fixed-size records and their text.
/// Shards loaded from the cache file share its one buffer, so loading costs one read.
///
/// Two parts, each checked by its own checksum: the records of the tasks not done and of the
/// documents that failed to load, then the names of the done tasks, then the text of both; and
/// the done tasks' records and their text. Each part's records are in file name order.
#[derive(Debug, Clone)]
struct Shard {
    tree: Option<Oid>,
    /// How many of its documents failed to load (listings look for them only where there are).
    problems: u32,
    buf: Arc<Bytes>,
    recs: Range<usize>,
    /// Spans into `text`, one per done task, in the order of `done_recs`.
    done_names: Range<usize>,
    text: Range<usize>,
    done_recs: Range<usize>,
    done_text: Range<usize>,
    /// The checksum of the done part, as built or as read (kept as read until checked, so that
    /// a damaged part written out again stays damaged).
    done_sum: u64,
    /// Whether the done part was checked against `done_sum`: always for a shard built here; for
    /// a shard read from a file, once something needs its done tasks.
    done_checked: bool,
}

impl Shard {
    fn len(&self) -> usize {
        self.undone() + self.dones()
    }

    /// How many records the first part holds: tasks not done, and documents that failed to load.
    fn undone(&self) -> usize {
        self.recs.len() / REC_BYTES
    }

    fn dones(&self) -> usize {
        self.done_names.len() / 8
    }

    /// Record `i` of the tasks not done and the text it points into, found once for all its
    /// fields.
    fn task(&self, i: usize) -> TaskRef<'_> {
        let start = self.recs.start + i * REC_BYTES;
        TaskRef {
            rec: self.buf[start..start + REC_BYTES]
                .try_into()
                .expect("a record is REC_BYTES long"),
            text: self.text(),
        }
    }

    /// Done task `i`; only for a checked done part.
    fn done_task(&self, i: usize) -> TaskRef<'_> {
        debug_assert!(self.done_checked, "a done part read before it was checked");
        let start = self.done_recs.start + i * REC_BYTES;
        TaskRef {
            rec: self.buf[start..start + REC_BYTES]
                .try_into()
                .expect("a record is REC_BYTES long"),
            text: self.part_text(self.done_text.clone()),
        }
    }

    /// The file name of done task `i`, from the part checked with the shard.
    fn done_name(&self, i: usize) -> &str {
        let at = self.done_names.start + i * 8;
        let span: [u8; 8] = self.buf[at..at + 8].try_into().expect("eight bytes");
        let (start, len) = span_of(&span);
        self.text().get(start..start + len).unwrap_or_default()
    }

    /// Every task, the done ones only when checked.
    fn tasks(&self) -> impl Iterator<Item = TaskRef<'_>> {
        fn part<'a>(recs: &'a [u8], text: &'a str) -> impl Iterator<Item = TaskRef<'a>> {
            recs.chunks_exact(REC_BYTES).map(move |rec| TaskRef {
                rec: rec.try_into().expect("a record is REC_BYTES long"),
                text,
            })
        }
        let done = match self.done_checked {
            true => self.done_recs.clone(),
            false => 0..0,
        };
        let done_text = self.part_text(self.done_text.clone());
        part(&self.buf[self.recs.clone()], self.text()).chain(part(&self.buf[done], done_text))
    }

    /// The shard's text, checked as UTF-8 once for the whole shard rather than field by field
    /// (a listing of 100,000 tasks reads over half a million fields).
    fn text(&self) -> &str {
        self.part_text(self.text.clone())
    }

    #[allow(unsafe_code)]
    fn part_text(&self, range: Range<usize>) -> &str {
        let bytes = &self.buf[range];
        // SAFETY: a shard's texts are valid UTF-8: `ShardBuilder` writes them from `&str`s only,
        // `read_cache` drops a cache file whose first part's text is not, and `check_done`
        // drops a done part whose text is not before any of its records is read (`done_task`
        // and `tasks` read only checked ones). The file is only ever replaced by rename, so its
        // mapping never changes under us.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// Checks the done part against its checksum, once; false if it is damaged.
    fn check_done(&mut self) -> bool {
        if !self.done_checked {
            let (start, end) = (self.done_recs.start, self.done_text.end);
            let text_at = self.done_text.start - start;
            self.done_checked = checked(&self.buf[start..end], text_at, self.done_sum);
        }
        self.done_checked
    }

    /// Where the task not done (or the document that failed to load) with this id is.
    fn find_undone(&self, id: &str) -> Option<usize> {
        Shard::find(self.undone(), |i| self.task(i).str(Field::Name), id)
    }

    /// Where the done task with this id is, from the names checked with the first part.
    fn find_done(&self, id: &str) -> Option<usize> {
        Shard::find(self.dones(), |i| self.done_name(i), id)
    }

    /// Binary search of `count` names in name order for `ID.yaml`, compared as bytes without
    /// being built: the bytes up to the id's length, then what follows them.
    fn find<'n>(count: usize, name: impl Fn(usize) -> &'n str, id: &str) -> Option<usize> {
        let id = id.as_bytes();
        let order = |name: &[u8]| {
            let (head, rest) = name.split_at(name.len().min(id.len()));
            head.cmp(id).then_with(|| rest.cmp(b".yaml"))
        };
        let (mut lo, mut hi) = (0, count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match order(name(mid).as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }
}

/// Whether `bytes` (text from `text_at` on) match `sum` and their text is UTF-8.
fn checked(bytes: &[u8], text_at: usize, sum: u64) -> bool {
    let (body_sum, text_ascii) = checksum(bytes, text_at);
    // ASCII text is UTF-8; other text is checked again as UTF-8 (see `Shard::text`).
    body_sum == sum && (text_ascii || std::str::from_utf8(&bytes[text_at..]).is_ok())
}

/// Builds a shard: its records, each written at its slot (the document's place among the
/// shard's documents, in tree order), and the text they point into, in any order: a done task's
/// in the done part's text, every other record's in the first part's.
struct ShardBuilder {
    recs: Vec<u8>,
    text: Vec<u8>,
    done_text: Vec<u8>,
    /// Whether the record being put is a done task's.
    done: bool,
}

impl ShardBuilder {
    fn with_slots(slots: usize) -> ShardBuilder {
        ShardBuilder {
            recs: vec![0; slots * REC_BYTES],
            text: Vec::new(),
            done_text: Vec::new(),
            done: false,
        }
    }

    /// The text of the part the record being put goes to.
    fn out(&mut self) -> &mut Vec<u8> {
        match self.done {
            true => &mut self.done_text,
            false => &mut self.text,
        }
    }

    fn text(&mut self, s: Option<&str>) -> Span {
        let s = s?;
        let out = self.out();
        let start = out.len() as u32;
        out.extend_from_slice(s.as_bytes());
        Some((start, s.len() as u32))
    }

    fn list<'s>(&mut self, mut items: impl Iterator<Item = &'s str>) -> Span {
        let out = self.out();
        let start = out.len();
        if let Some(first) = items.next() {
            out.extend_from_slice(first.as_bytes());
            for item in items {
                out.push(LIST_SEP as u8);
                out.extend_from_slice(item.as_bytes());
            }
        }
        Some((start as u32, (out.len() - start) as u32))
    }

    /// The file name and the id: the id is written once, as the start of `<id>.yaml`.
    fn name_and_id(&mut self, name: &str, id: &str) -> (Span, Span) {
        let name_span = self.text(Some(name));
        let id_span = match (name.strip_suffix(".yaml"), name_span) {
            (Some(stem), Some((start, _))) if stem == id => Some((start, id.len() as u32)),
            _ => self.text(Some(id)),
        };
        (name_span, id_span)
    }

    /// `created` and `updated`, written once when they are the same (a task never changed).
    fn times(&mut self, created: &str, updated: &str) -> (Span, Span) {
        let created_span = self.text(Some(created));
        let updated_span = if updated == created {
            created_span
        } else {
            self.text(Some(updated))
        };
        (created_span, updated_span)
    }

    fn record(
        &mut self,
        slot: usize,
        blob: Oid,
        flags: [u8; 4],
        fields: [Span; FIELDS],
        (high, low): (u64, u64),
    ) {
        let (base, spans) = match narrow_spans(&fields) {
            Some(narrow) => narrow,
            None => {
                // Too long for u16s: the whole spans go in the text, as hex digits (ASCII, so
                // the text stays UTF-8).
                let out = self.out();
                let at = out.len() as u32;
                for field in fields {
                    let (start, len) = field.unwrap_or((u32::MAX, 0));
                    out.extend_from_slice(format!("{start:08x}{len:08x}").as_bytes());
                }
                (at | WIDE, [0; FIELDS * 4])
            }
        };
        let rec = &mut self.recs[slot * REC_BYTES..(slot + 1) * REC_BYTES];
        rec[..20].copy_from_slice(blob.as_bytes());
        rec[20..24].copy_from_slice(&flags);
        rec[BASE_AT..SPANS_AT].copy_from_slice(&base.to_le_bytes());
        rec[SPANS_AT..URGENCY_AT].copy_from_slice(&spans);
        rec[URGENCY_AT..URGENCY_AT + 8].copy_from_slice(&high.to_le_bytes());
        rec[URGENCY_AT + 8..].copy_from_slice(&low.to_le_bytes());
    }

    fn put_task(&mut self, slot: usize, name: &str, blob: Oid, t: TaskRef<'_>) {
        self.done = t.state() == State::Done;
        let (name, id) = self.name_and_id(name, t.id());
        let (created, updated) = self.times(t.created(), t.updated());
        let fields = [
            name,
            id,
            self.text(Some(t.title())),
            self.text(t.role()),
            self.list(t.labels()),
            self.list(t.deps()),
            self.text(t.parent()),
            self.text(t.assignee()),
            self.text(t.summary()),
            self.text(t.block_reason()),
            created,
            updated,
        ];
        self.record(
            slot,
            blob,
            [1, t.state() as u8, t.kind() as u8, t.priority()],
            fields,
            t.packed_urgency(),
        );
    }

    fn put_summary(&mut self, slot: usize, name: &str, blob: Oid, t: &SummaryRef<'_>) {
        self.done = t.state == State::Done;
        let (name, id) = self.name_and_id(name, &t.id);
        let (created, updated) = self.times(&t.created, &t.updated);
        let fields = [
            name,
            id,
            self.text(Some(&t.title)),
            self.text(t.role.as_deref()),
            self.list(t.labels.iter().map(|s| s.as_ref())),
            self.list(t.deps.iter().map(|s| s.as_ref())),
            self.text(t.parent.as_deref()),
            self.text(t.assignee.as_deref()),
            self.text(t.summary.as_deref()),
            self.text(t.block_reason.as_deref()),
            created,
            updated,
        ];
        self.record(
            slot,
            blob,
            [1, t.state as u8, t.kind as u8, t.priority],
            fields,
            pack_urgency(t.priority, &t.created, &t.id),
        );
    }

    fn put_problem(&mut self, slot: usize, name: &str, blob: Oid, why: &str) {
        self.done = false;
        let mut fields = [None; FIELDS];
        fields[Field::Name as usize] = self.text(Some(name));
        fields[Field::Title as usize] = self.text(Some(why));
        self.record(slot, blob, [0, 0, 0, 0], fields, (INEXACT, 0));
    }

    /// The shard, its records put in their parts (see [`Shard`]), each part's text after them.
    fn finish(self, tree: Oid) -> Shard {
        let (mut recs, mut done_recs) = (Vec::new(), Vec::new());
        for rec in self.recs.chunks_exact(REC_BYTES) {
            match rec[20] == 1 && STATES.get(rec[21] as usize) == Some(&State::Done) {
                true => done_recs.extend_from_slice(rec),
                false => recs.extend_from_slice(rec),
            }
        }
        let problems = recs.chunks_exact(REC_BYTES).filter(|r| r[20] != 1).count();
        // The done tasks' names, copied into the first part's text.
        let mut text = self.text;
        let mut names = Vec::with_capacity(done_recs.len() / REC_BYTES * 8);
        for rec in done_recs.chunks_exact(REC_BYTES) {
            let rec = rec.try_into().expect("a record is REC_BYTES long");
            let (start, len) = field_span(rec, &self.done_text, Field::Name).unwrap_or((0, 0));
            let at = text.len() as u32;
            text.extend_from_slice(&self.done_text[start..start + len]);
            names.extend_from_slice(&span_bytes(at, len as u32));
        }
        let mut buf = recs;
        let recs = 0..buf.len();
        buf.extend_from_slice(&names);
        let done_names = recs.end..buf.len();
        buf.extend_from_slice(&text);
        let text = done_names.end..buf.len();
        buf.extend_from_slice(&done_recs);
        let done_recs = text.end..buf.len();
        buf.extend_from_slice(&self.done_text);
        let done_text = done_recs.end..buf.len();
        let done_sum = checksum(&buf[done_recs.start..], done_recs.len()).0;
        Shard {
            tree: Some(tree),
            problems: problems as u32,
            buf: Arc::new(Bytes::Owned(buf)),
            recs,
            done_names,
            text,
            done_recs,
            done_text,
            done_sum,
            done_checked: true,
        }
    }
}

/// Where a field's text is in its part's text, as the builder has it: start and length (None:
/// the field is absent).
type Span = Option<(u32, u32)>;

/// A record's base and its fields' offsets and lengths from it, or None when one does not fit.
fn narrow_spans(fields: &[Span; FIELDS]) -> Option<(u32, [u8; FIELDS * 4])> {
    let base = fields
        .iter()
        .flatten()
        .map(|&(start, _)| start)
        .min()
        .unwrap_or(0);
    let mut spans = [0; FIELDS * 4];
    for (field, out) in fields.iter().zip(spans.chunks_exact_mut(4)) {
        let (offset, len) = match *field {
            None => (ABSENT, 0),
            Some((start, len)) => (
                u16::try_from(start - base).ok().filter(|&o| o != ABSENT)?,
                u16::try_from(len).ok()?,
            ),
        };
        out[..2].copy_from_slice(&offset.to_le_bytes());
        out[2..].copy_from_slice(&len.to_le_bytes());
    }
    (base & WIDE == 0).then_some((base, spans))
}

/// Where a record's text starts in its part's text, with the [`WIDE`] bit.
fn base_of(rec: &[u8; REC_BYTES]) -> u32 {
    u32::from_le_bytes(rec[BASE_AT..SPANS_AT].try_into().expect("four bytes"))
}

/// Where `field` of `rec` is in `text` (its part's text): start and length, None when absent.
/// A wide record's span that does not parse reads as empty.
fn field_span(rec: &[u8; REC_BYTES], text: &[u8], field: Field) -> Option<(usize, usize)> {
    let base = base_of(rec);
    if base & WIDE == 0 {
        let at = SPANS_AT + field as usize * 4;
        let offset = u16::from_le_bytes([rec[at], rec[at + 1]]);
        let len = u16::from_le_bytes([rec[at + 2], rec[at + 3]]);
        return (offset != ABSENT).then_some((base as usize + offset as usize, len as usize));
    }
    let at = (base & !WIDE) as usize + field as usize * WIDE_SPAN;
    let hex = |digits: &[u8]| u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok();
    let span = text.get(at..at + WIDE_SPAN);
    match span.and_then(|span| Some((hex(&span[..8])?, hex(&span[8..])?))) {
        Some((u32::MAX, _)) => None,
        Some((start, len)) => Some((start as usize, len as usize)),
        None => Some((0, 0)),
    }
}

/// Asks the CPU to start loading the cache line at `at` (nothing elsewhere than on x86-64).
#[allow(unsafe_code)]
fn prefetch(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and never faults, whatever the address;
    // SSE, which has it, is part of every x86-64 CPU.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// A done name's start and length.
fn span_of(span: &[u8; 8]) -> (usize, usize) {
    let start = u32::from_le_bytes([span[0], span[1], span[2], span[3]]);
    let len = u32::from_le_bytes([span[4], span[5], span[6], span[7]]);
    (start as usize, len as usize)
}

fn span_bytes(start: u32, len: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&start.to_le_bytes());
    out[4..].copy_from_slice(&len.to_le_bytes());
    out
}

/// A task of the index, read in place.
#[derive(Debug, Clone, Copy)]
pub struct TaskRef<'a> {
    rec: &'a [u8; REC_BYTES],
    /// The text of the record's shard.
    text: &'a str,
}

impl<'a> TaskRef<'a> {
    /// Whether the document loaded (else its title field says why not).
    fn ok(&self) -> bool {
        self.rec[20] == 1
    }

    fn blob(&self) -> Oid {
        Oid::try_from(&self.rec[..20]).expect("twenty bytes make an object id")
    }

    fn opt(&self, field: Field) -> Option<&'a str> {
        let (start, len) = field_span(self.rec, self.text.as_bytes(), field)?;
        // The cache is checksummed; a span that still does not fit, or cuts a character in two,
        // reads as empty.
        Some(self.text.get(start..start + len).unwrap_or_default())
    }

    fn str(&self, field: Field) -> &'a str {
        self.opt(field).unwrap_or_default()
    }

    pub fn id(&self) -> &'a str {
        self.str(Field::Id)
    }
    pub fn title(&self) -> &'a str {
        self.str(Field::Title)
    }
    pub fn state(&self) -> State {
        STATES
            .get(self.rec[21] as usize)
            .copied()
            .unwrap_or_default()
    }
    pub fn kind(&self) -> Kind {
        KINDS
            .get(self.rec[22] as usize)
            .copied()
            .unwrap_or_default()
    }
    pub fn priority(&self) -> u8 {
        self.rec[23]
    }
    pub fn role(&self) -> Option<&'a str> {
        self.opt(Field::Role)
    }
    pub fn labels(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        split_list(self.str(Field::Labels))
    }
    pub fn deps(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        split_list(self.str(Field::Deps))
    }
    pub fn has_deps(&self) -> bool {
        field_span(self.rec, self.text.as_bytes(), Field::Deps).is_some_and(|(_, len)| len > 0)
    }
    pub fn parent(&self) -> Option<&'a str> {
        self.opt(Field::Parent)
    }
    pub fn assignee(&self) -> Option<&'a str> {
        self.opt(Field::Assignee)
    }
    pub fn summary(&self) -> Option<&'a str> {
        self.opt(Field::Summary)
    }
    pub fn block_reason(&self) -> Option<&'a str> {
        self.opt(Field::BlockReason)
    }
    pub fn created(&self) -> &'a str {
        self.str(Field::Created)
    }
    pub fn updated(&self) -> &'a str {
        self.str(Field::Updated)
    }

    /// Urgency order: lower priority number first, then older first, then id.
    pub fn urgency_key(&self) -> (u8, &'a str, &'a str) {
        (self.priority(), self.created(), self.id())
    }

    /// Starts loading the record into the CPU's cache, for a reader that reads it soon (see
    /// [`TaskRef::prefetch_text`]).
    pub fn prefetch_record(&self) {
        prefetch(self.rec.as_ptr());
        prefetch(self.rec[REC_BYTES - 1..].as_ptr());
    }

    /// Starts loading the start of the record's text (where its fields are, one after another),
    /// once its record is in the cache. A listing reads records in urgency order, all over a file
    /// of 20 MB at 100,000 tasks: without these two, it waited on memory for the record and then
    /// for the text of every line, two thirds of the time it spent on its lines.
    pub fn prefetch_text(&self) {
        let at = (base_of(self.rec) & !WIDE) as usize;
        if let Some(text) = self.text.as_bytes().get(at..) {
            prefetch(text.as_ptr());
            prefetch(text[text.len().min(64)..].as_ptr());
        }
    }

    /// [`TaskRef::urgency_key`] packed when the task was indexed (see [`pack_urgency`]), read
    /// without touching the text.
    pub fn packed_urgency(&self) -> (u64, u64) {
        let word =
            |at: usize| u64::from_le_bytes(self.rec[at..at + 8].try_into().expect("eight bytes"));
        (word(URGENCY_AT), word(URGENCY_AT + 8))
    }

    #[cfg(test)]
    pub fn to_summary(self) -> crate::model::task::TaskSummary {
        crate::model::task::TaskSummary {
            id: self.id().into(),
            title: self.title().into(),
            kind: self.kind(),
            state: self.state(),
            priority: self.priority(),
            role: self.role().map(Into::into),
            labels: self.labels().map(Into::into).collect(),
            deps: self.deps().map(Into::into).collect(),
            parent: self.parent().map(Into::into),
            assignee: self.assignee().map(Into::into),
            summary: self.summary().map(Into::into),
            block_reason: self.block_reason().map(Into::into),
            created: self.created().into(),
            updated: self.updated().into(),
        }
    }
}

/// As [`TaskSummary`] serializes (the same fields in the same order), read in place: a listing
/// of 100,000 tasks as JSON made a dozen strings for each of them only to write them out.
impl serde::Serialize for TaskRef<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct List<'a>(&'a str);
        impl serde::Serialize for List<'_> {
            fn serialize<S: serde::Serializer>(
                &self,
                serializer: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                serializer.collect_seq(split_list(self.0))
            }
        }
        let mut task = serializer.serialize_struct("TaskSummary", 14)?;
        task.serialize_field("id", self.id())?;
        task.serialize_field("title", self.title())?;
        task.serialize_field("type", &self.kind())?;
        task.serialize_field("state", &self.state())?;
        task.serialize_field("priority", &self.priority())?;
        task.serialize_field("role", &self.role())?;
        task.serialize_field("labels", &List(self.str(Field::Labels)))?;
        task.serialize_field("deps", &List(self.str(Field::Deps)))?;
        task.serialize_field("parent", &self.parent())?;
        task.serialize_field("assignee", &self.assignee())?;
        task.serialize_field("summary", &self.summary())?;
        task.serialize_field("block_reason", &self.block_reason())?;
        task.serialize_field("created", self.created())?;
        task.serialize_field("updated", self.updated())?;
        task.end()
    }
}

/// Marks a key [`pack_urgency`] could not pack (its bits are never set otherwise).
pub const INEXACT: u64 = 1 << 63;

/// The urgency key as two integers that order as the key does: the priority and the 17 digits
/// of a `created` of the form `YYYY-MM-DDTHH:MM:SS.mmmZ` as one number (in that form they order
/// as the string does), then the id's first 8 bytes. `(INEXACT, 0)` for a key not of that form.
fn pack_urgency(priority: u8, created: &str, id: &str) -> (u64, u64) {
    let packed = || {
        let created: &[u8; 24] = created.as_bytes().try_into().ok()?;
        let separators = [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
        ];
        if priority > 15
            || created[23] != b'Z'
            || separators.iter().any(|&(at, c)| created[at] != c)
        {
            return None;
        }
        let mut digits: u64 = 0;
        for at in [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22] {
            let digit = created[at].wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            digits = digits * 10 + u64::from(digit);
        }
        let mut start = [0u8; 8];
        let id = &id.as_bytes()[..id.len().min(8)];
        start[..id.len()].copy_from_slice(id);
        Some((
            u64::from(priority) << 57 | digits,
            u64::from_be_bytes(start),
        ))
    };
    packed().unwrap_or((INEXACT, 0))
}

fn split_list(joined: &str) -> impl Iterator<Item = &str> {
    joined.split(LIST_SEP).filter(|s| !s.is_empty())
}

/// What a refresh makes ready to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Every task.
    All,
    /// The tasks not done, and whether an id is a done task's ([`TaskIndex::dep_done`]): all that
    /// `ready` and `claim --next` ask. The done tasks of shards read from the cache file are
    /// then neither checked nor read ([`TaskIndex::tasks`] and [`TaskIndex::get`] leave them
    /// out), until a refresh for [`Need::All`].
    Undone,
}

/// Every task summary of one snapshot of refs/coord/tasks. Cloning shares the shards' buffers.
#[derive(Debug, Default, Clone)]
pub struct TaskIndex {
    shards: HashMap<String, Shard>,
    /// Whether the cache file was read (once per process; later refreshes start from memory).
    loaded: bool,
    /// Dependencies on other projects' tasks (`NAME:ID`), as last fetched.
    foreign: HashMap<String, crate::store::foreign::ForeignDep>,
}

impl TaskIndex {
    /// Loads the index for `snap`, reusing shards already in memory, cache files, and the
    /// unchanged documents of a shard that changed. A refresh that fails leaves the index empty,
    /// as if new, so that an index kept after an error is never half refreshed.
    pub fn refresh(
        &mut self,
        repo: &Repo,
        refname: &str,
        snap: &Snapshot,
        need: Need,
    ) -> Result<()> {
        // Worked on apart: a refresh that fails leaves this index empty, as if new.
        let mut this = std::mem::take(self);
        let shard_trees = match snap.tree {
            Some(tree) => match repo.lookup_path(tree, "tasks")? {
                Some(tasks) => repo
                    .tree_entries(tasks)?
                    .into_iter()
                    .filter(|e| e.is_tree)
                    .collect(),
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        let file = cache_file(repo);
        let side_file = file.with_extension("changed");
        let first = !this.loaded;
        // The shards the side file holds, and the cache file's versions of them.
        let (mut from_side, mut shadowed) = (HashSet::new(), HashMap::new());
        if first {
            this.shards = read_cache(&file).unwrap_or_default();
            for (name, shard) in read_cache(&side_file).unwrap_or_default() {
                from_side.insert(name.clone());
                if let Some(older) = this.shards.insert(name.clone(), shard) {
                    shadowed.insert(name, older);
                }
            }
            this.loaded = true;
        }
        let mut next = HashMap::with_capacity(shard_trees.len());
        let mut missing = Vec::new();
        // Shards held other than as the cache file has them: from the side file, or rebuilt.
        let mut changed = Vec::new();
        // A shard whose done part is wanted must have it checked; one whose part is damaged is
        // rebuilt from nothing (which rewrites the whole file).
        let usable = |shard: &mut Shard, tree: Oid| {
            shard.tree == Some(tree) && (need == Need::Undone || shard.check_done())
        };
        for entry in shard_trees {
            let mut held = this.shards.remove(&entry.name);
            let mut older = shadowed.remove(&entry.name);
            if let Some(shard) = held.take_if(|s| usable(s, entry.oid)) {
                if from_side.contains(&entry.name) {
                    changed.push(entry.name.clone());
                }
                next.insert(entry.name, shard);
            } else if let Some(older) = older.take_if(|s| usable(s, entry.oid)) {
                // A side file older than the cache file: the cache file's version is current.
                next.insert(entry.name, older);
            } else {
                // A changed shard (or one whose done part is damaged): parse only the documents
                // its older version lacks, its done tasks counting only if their part is sound.
                let base = held.map(|mut base| {
                    base.check_done();
                    base
                });
                changed.push(entry.name.clone());
                missing.push((entry.name, entry.oid, base));
            }
        }
        let (rebuilt, removed) = (missing.len(), !this.shards.is_empty());
        let missing_docs = missing.iter().filter(|(_, _, base)| base.is_none()).count();
        next.extend(build_shards(repo, refname, missing)?);
        this.shards = next;
        // Only the first refresh of a process saves (a retry after a lost race refreshes again
        // within moments). Rewriting the whole file costs more than writing the few shards that
        // changed beside it, so those go to the side file until they are many.
        if first && (removed || missing_docs > 0 || changed.len() >= REWRITE_AFTER_SHARDS) {
            write_cache(&file, this.shards.iter());
            let _ = fs::remove_file(&side_file);
        } else if first && rebuilt > 0 {
            let changed = changed.iter().filter_map(|n| this.shards.get_key_value(n));
            write_cache(&side_file, changed);
        }
        // Only a clone that fetched another project can have dependencies there worth reading.
        this.foreign.clear();
        if !repo
            .refs_under(crate::store::foreign::PROJECTS_NS)?
            .is_empty()
        {
            let deps: Vec<String> = this
                .tasks()
                .filter(|t| t.has_deps())
                .flat_map(|t| t.deps().filter(|d| d.contains(':')).map(str::to_string))
                .collect();
            this.foreign = crate::store::foreign::load_deps(repo, deps.iter().map(String::as_str))?;
        }
        *self = this;
        Ok(())
    }

    /// The shard an id of this project belongs in, if the index holds it.
    fn shard_of(&self, id: &str) -> Option<&Shard> {
        self.shards.get(id.get(..crate::model::id::SHARD_LEN)?)
    }

    /// Whether dependency `dep` (an id here, or `NAME:ID` in another project) is done.
    pub fn dep_done(&self, dep: &str) -> bool {
        self.shard_of(dep)
            .is_some_and(|shard| shard.find_done(dep).is_some())
            || self.foreign.get(dep).is_some_and(|f| f.done)
    }

    /// A dependency on another project's task, as last fetched (None: not such a dependency,
    /// or its project was never fetched here).
    pub fn foreign(&self, dep: &str) -> Option<&crate::store::foreign::ForeignDep> {
        self.foreign.get(dep)
    }

    /// How many documents the index holds (at least as many as [`TaskIndex::tasks`] yields).
    pub fn len(&self) -> usize {
        self.shards.values().map(Shard::len).sum()
    }

    /// Every task that loaded (after a refresh for [`Need::Undone`], those not done), in no
    /// particular order.
    pub fn tasks(&self) -> impl Iterator<Item = TaskRef<'_>> {
        self.shards
            .values()
            .flat_map(Shard::tasks)
            .filter(TaskRef::ok)
    }

    /// The task with this full id (after a refresh for [`Need::Undone`], if it is not done),
    /// found in its shard by binary search.
    pub fn get(&self, id: &str) -> Option<TaskRef<'_>> {
        let shard = self.shard_of(id)?;
        if let Some(i) = shard.find_undone(id) {
            let task = shard.task(i);
            return task.ok().then_some(task);
        }
        if !shard.done_checked {
            return None;
        }
        shard.find_done(id).map(|i| shard.done_task(i))
    }

    /// Documents that failed to load, in path order.
    pub fn problems(&self) -> Vec<Problem> {
        let mut all: Vec<Problem> = self
            .shards
            .iter()
            .filter(|(_, shard)| shard.problems > 0)
            .flat_map(|(name, shard)| {
                (0..shard.undone())
                    .map(|i| shard.task(i))
                    .filter(|t| !t.ok())
                    .map(move |t| Problem {
                        path: format!("tasks/{name}/{}", t.str(Field::Name)),
                        why: t.str(Field::Title).to_string(),
                    })
            })
            .collect();
        all.sort_by(|a, b| a.path.cmp(&b.path));
        all
    }
}

fn cache_file(repo: &Repo) -> PathBuf {
    repo.common_dir()
        .join("coord")
        .join("cache")
        .join("tasks.index")
}

/// A document of a shard being built that must be read from its blob (its blob is new): which
/// shard and slot its record goes to, and where its file name is in [`Unread::names`].
struct UnreadDoc {
    oid: Oid,
    shard: u32,
    slot: u32,
    name: (u32, u32),
}

/// The documents to read, kept small: at 100,000 tasks they all wait at once.
#[derive(Default)]
struct Unread {
    docs: Vec<UnreadDoc>,
    names: String,
}

impl Unread {
    fn push(&mut self, shard: usize, slot: usize, oid: Oid, name: &str) {
        let start = self.names.len() as u32;
        self.names.push_str(name);
        self.docs.push(UnreadDoc {
            oid,
            shard: shard as u32,
            slot: slot as u32,
            name: (start, name.len() as u32),
        });
    }

    fn name(&self, doc: &UnreadDoc) -> &str {
        let (start, len) = (doc.name.0 as usize, doc.name.1 as usize);
        &self.names[start..start + len]
    }
}

/// Documents to read below which threads cost more than they save: shards rebuilt from their
/// older versions parse a document or two each, less than a thread's opening the repository
/// again costs.
const THREADS_FROM_DOCUMENTS: usize = 256;

/// Builds shards: lists their trees, keeps what their older versions already hold, then reads
/// the new blobs in pack order (see [`Repo::pack_order`]), on up to four threads when there are
/// many.
fn build_shards(
    repo: &Repo,
    refname: &str,
    missing: Vec<(String, Oid, Option<Shard>)>,
) -> Result<Vec<(String, Shard)>> {
    let mut unread = Unread::default();
    let mut builders = Vec::with_capacity(missing.len());
    for (n, (_, tree, base)) in missing.iter().enumerate() {
        builders.push(Mutex::new(plan_shard(
            repo,
            n,
            *tree,
            base.as_ref(),
            &mut unread,
        )?));
    }
    let oids: Vec<Oid> = unread.docs.iter().map(|u| u.oid).collect();
    let PackOrder { order, packed } = repo.pack_order(&oids);
    drop(oids);
    let names: Vec<&str> = missing.iter().map(|(name, _, _)| name.as_str()).collect();
    // `part` starts at `from` in the order; its documents before `packed` are in a pack.
    let read = |repo: &Repo, from: usize, part: &[usize]| -> Result<()> {
        for (n, &at) in part.iter().enumerate() {
            let doc = &unread.docs[at];
            let (shard, slot, name) = (doc.shard as usize, doc.slot as usize, unread.name(doc));
            let packed = from + n < packed;
            load_summary(
                repo,
                refname,
                names[shard],
                name,
                doc.oid,
                packed,
                |loaded| {
                    // A poisoned lock means another thread panicked, which the join reports.
                    let mut builder = builders[shard]
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    match loaded {
                        Ok(task) => builder.put_summary(slot, name, doc.oid, task),
                        Err(why) => builder.put_problem(slot, name, doc.oid, why),
                    }
                },
            )?;
        }
        Ok(())
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4);
    if threads < 2 || order.len() < THREADS_FROM_DOCUMENTS {
        read(&repo.for_bulk_reads(), 0, &order)?;
    } else {
        // Contiguous runs of the pack order, so each thread still reads deltas after their bases.
        // This thread reads the first run itself, with the packs its repository already mapped:
        // each other thread maps them again, and their pages count again in its memory.
        let per_thread = order.len().div_ceil(threads);
        let mut parts = order.chunks(per_thread).enumerate();
        let first = parts.next().map(|(_, part)| part).unwrap_or_default();
        std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .map(|(n, part)| {
                    let git_dir = repo.git_dir();
                    let read = &read;
                    let from = n * per_thread;
                    scope.spawn(move || read(&Repo::open(&git_dir)?.for_bulk_reads(), from, part))
                })
                .collect();
            let here = read(&repo.for_bulk_reads(), 0, first);
            for handle in handles {
                handle
                    .join()
                    .map_err(|_| Error::Other("index builder thread panicked".into()))??;
            }
            here
        })?;
    }
    drop((order, unread));
    Ok(missing
        .into_iter()
        .zip(builders)
        .map(|((name, tree, _), shard)| {
            let shard = shard
                .into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            (name, shard.finish(tree))
        })
        .collect())
}

/// Starts shard number `n`: a slot for each document of its tree, filled at once for an odd
/// entry and for a document whose blob its older version `base` already read; every other
/// document goes to `unread`.
fn plan_shard(
    repo: &Repo,
    n: usize,
    tree: Oid,
    base: Option<&Shard>,
    unread: &mut Unread,
) -> Result<ShardBuilder> {
    // Its done tasks only if their part was checked (`Shard::tasks`).
    let known: HashMap<Oid, TaskRef<'_>> = match base {
        Some(base) => base.tasks().map(|t| (t.blob(), t)).collect(),
        None => HashMap::new(),
    };
    // Per-task attachments live beside the documents and get no slot.
    let is_document = |e: &TreeEntry| e.odd.is_some() || (e.is_blob && e.name.ends_with(".yaml"));
    let entries = repo.tree_entries(tree)?;
    let mut shard = ShardBuilder::with_slots(entries.iter().filter(|e| is_document(e)).count());
    for (slot, entry) in entries.into_iter().filter(is_document).enumerate() {
        if let Some(odd) = entry.odd {
            let shown = entry.name.escape_debug().to_string();
            shard.put_problem(slot, &shown, entry.oid, &format!("skipped: {odd}"));
            continue;
        }
        let reusable = known
            .get(&entry.oid)
            .filter(|t| t.str(Field::Name) == entry.name);
        match reusable {
            Some(&task) if task.ok() => shard.put_task(slot, &entry.name, entry.oid, task),
            Some(task) => shard.put_problem(slot, &entry.name, entry.oid, task.str(Field::Title)),
            None => unread.push(n, slot, entry.oid, &entry.name),
        }
    }
    Ok(shard)
}

/// Reads one document of shard `shard` and checks it, as [`SummaryRef::from_yaml`] does (its
/// size before its bytes; `packed`: its blob is in a pack, see [`Repo::read_packed_blob_within`]),
/// then hands its summary (or why the index skips it) to `put`.
fn load_summary<T>(
    repo: &Repo,
    refname: &str,
    shard: &str,
    name: &str,
    oid: Oid,
    packed: bool,
    put: impl FnOnce(std::result::Result<&SummaryRef<'_>, &str>) -> T,
) -> Result<T> {
    let read = match packed {
        true => repo.read_packed_blob_within(oid, MAX_DOCUMENT_BYTES)?,
        false => repo.read_blob_within(oid, MAX_DOCUMENT_BYTES)?,
    };
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(size) => {
            let why = format!("{size} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit");
            return Ok(put(Err(&why)));
        }
    };
    let path = format!("tasks/{shard}/{name}");
    let why = match SummaryRef::from_yaml(&bytes, refname, &path) {
        Ok(task) if !task.id.starts_with(shard) => {
            format!("task {} is in the wrong shard", task.id)
        }
        Ok(task)
            if task
                .labels
                .iter()
                .chain(&task.deps)
                .any(|s| s.contains(LIST_SEP)) =>
        {
            "a label or dependency contains a line break".to_string()
        }
        Ok(task) => return Ok(put(Ok(&task))),
        Err(Error::Malformed { why, .. }) => why,
        Err(Error::NewerFormat {
            found, supported, ..
        }) => {
            format!("format version {found} is newer than this git-coord understands ({supported})")
        }
        Err(other) => other.to_string(),
    };
    Ok(put(Err(&why)))
}

/// Reads the cache file: every shard it holds, with the tree each was built from, its first part
/// checked (the done part is checked when needed, see [`Need`]). The shards share the file's one
/// buffer.
fn read_cache(file: &Path) -> Option<HashMap<String, Shard>> {
    let buf = Arc::new(Bytes::map(&fs::File::open(file).ok()?)?);
    let mut r = Reader { bytes: &buf, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let count = r.u32()? as usize;
    let mut shards = HashMap::new();
    for _ in 0..count {
        let len = r.u32()? as usize;
        let sum = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let start = r.at;
        let end = r.at.checked_add(len)?;
        let name_len = r.u32()? as usize;
        let name = std::str::from_utf8(r.take(name_len)?).ok()?.to_string();
        let tree = Oid::try_from(r.take(20)?).ok()?;
        let problems = r.u32()?;
        let recs = r.u32()? as usize;
        let dones = r.u32()? as usize;
        let text_len = r.u32()? as usize;
        let recs = r.at..r.at + r.take(recs.checked_mul(REC_BYTES)?)?.len();
        let done_names = r.at..r.at + r.take(dones.checked_mul(8)?)?.len();
        let text = r.at..r.at + r.take(text_len)?.len();
        if r.at != end || !checked(&buf[start..end], text.start - start, sum) {
            return None;
        }
        let done_len = r.u32()? as usize;
        let done_sum = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let done_recs = r.at..r.at + r.take(dones.checked_mul(REC_BYTES)?)?.len();
        let done_text_len = done_len.checked_sub(done_recs.len())?;
        let done_text = r.at..r.at + r.take(done_text_len)?.len();
        let shard = Shard {
            tree: Some(tree),
            problems,
            buf: Arc::clone(&buf),
            recs,
            done_names,
            text,
            done_recs,
            done_text,
            done_sum,
            done_checked: false,
        };
        shards.insert(name, shard);
    }
    (r.at == buf.len()).then_some(shards)
}

/// A fast 64-bit checksum, to notice a damaged cache file (not a defence against forgery: the
/// cache is local and never the source of truth). Four independent lanes keep the CPU busy.
/// Also says whether `bytes[ascii_from..]` is all ASCII, found in the same pass: a second pass
/// over the 9 MB of text of 100,000 tasks costs about a millisecond.
fn checksum(bytes: &[u8], ascii_from: usize) -> (u64, bool) {
    const K: u64 = 0x0100_0000_01b3;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let mut lanes = [0x9e37_79b9_7f4a_7c15_u64 ^ bytes.len() as u64, 1, 2, 3];
    // Blocks from this one on are all at or after `ascii_from`: their words are or-ed here.
    let first_ascii_block = ascii_from.div_ceil(32);
    let mut high = 0u64;
    let mut blocks = bytes.chunks_exact(32);
    for (n, block) in (&mut blocks).enumerate() {
        let mask = if n >= first_ascii_block { u64::MAX } else { 0 };
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            high |= word & mask;
            *lane = (*lane ^ word).wrapping_mul(K).rotate_left(31);
        }
    }
    let mut h = lanes
        .iter()
        .fold(0u64, |h, lane| (h ^ lane).wrapping_mul(K).rotate_left(27));
    for &b in blocks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K);
    }
    // What the blocks did not cover: from `ascii_from` to the first such block, and the tail.
    let tail = bytes.len() - blocks.remainder().len();
    let head_end = (first_ascii_block * 32).min(tail).max(ascii_from.min(tail));
    let ascii = high & HIGH_BITS == 0
        && bytes[ascii_from.min(tail)..head_end].is_ascii()
        && bytes[tail.max(ascii_from).min(bytes.len())..].is_ascii();
    (h, ascii)
}

/// Writes the cache file (atomically, by rename). Failing to write it is never an error: the
/// next run rebuilds what it needs.
fn write_cache<'a>(file: &Path, shards: impl Iterator<Item = (&'a String, &'a Shard)>) {
    let Some(dir) = file.parent() else { return };
    if fs::create_dir_all(dir).is_err() {
        return;
    }
    let mut suffix = [0u8; 4];
    let _ = getrandom::fill(&mut suffix);
    let tmp = dir.join(format!(
        "tmp-{}-{}",
        std::process::id(),
        u32::from_le_bytes(suffix)
    ));
    let written = fs::File::create(&tmp)
        .and_then(|f| {
            let mut out = std::io::BufWriter::new(f);
            out.write_all(MAGIC)?;
            let built: Vec<(&String, &Shard, Oid)> = shards
                .filter_map(|(name, shard)| Some((name, shard, shard.tree?)))
                .collect();
            out.write_all(&(built.len() as u32).to_le_bytes())?;
            let mut w = Vec::new();
            for (name, shard, tree) in built {
                w.clear();
                put_u32(&mut w, name.len() as u32);
                w.extend_from_slice(name.as_bytes());
                w.extend_from_slice(tree.as_bytes());
                put_u32(&mut w, shard.problems);
                put_u32(&mut w, shard.undone() as u32);
                put_u32(&mut w, shard.dones() as u32);
                put_u32(&mut w, shard.text.len() as u32);
                w.extend_from_slice(&shard.buf[shard.recs.clone()]);
                w.extend_from_slice(&shard.buf[shard.done_names.clone()]);
                let text_at = w.len();
                w.extend_from_slice(&shard.buf[shard.text.clone()]);
                out.write_all(&(w.len() as u32).to_le_bytes())?;
                out.write_all(&checksum(&w, text_at).0.to_le_bytes())?;
                out.write_all(&w)?;
                // The done part as it is, with its checksum as built or read: a damaged part
                // not yet checked stays damaged.
                let done = shard.done_recs.start..shard.done_text.end;
                out.write_all(&(done.len() as u32).to_le_bytes())?;
                out.write_all(&shard.done_sum.to_le_bytes())?;
                out.write_all(&shard.buf[done])?;
            }
            out.flush()
        })
        .and_then(|_| fs::rename(&tmp, file));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

fn put_u32(w: &mut Vec<u8>, n: u32) {
    w.extend_from_slice(&n.to_le_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "aa0000000001.yaml";

    /// A cache file of one shard holding one problem whose title is `why`, and the offset of
    /// that shard's checksummed bytes.
    fn cache_file_with(dir: &Path, why: &str) -> (PathBuf, usize) {
        let mut shard = ShardBuilder::with_slots(1);
        let blob = Oid::try_from(&[1u8; 20][..]).expect("an object id");
        shard.put_problem(0, NAME, blob, why);
        let tree = Oid::try_from(&[2u8; 20][..]).expect("an object id");
        let shards = HashMap::from([("aa".to_string(), shard.finish(tree))]);
        let file = dir.join("tasks.index");
        write_cache(&file, shards.iter());
        // The header line, the shard count, then the shard's length and checksum.
        (file, MAGIC.len() + 4 + 4 + 8)
    }

    fn title_read_back(file: &Path) -> Option<String> {
        let shards = read_cache(file)?;
        Some(shards["aa"].task(0).str(Field::Title).to_string())
    }

    /// Replaces `from` by `to` (of the same length) in the file, and makes its first part's
    /// checksum right again: damage the checksum alone cannot see.
    fn rewrite(file: &Path, body_at: usize, from: &[u8], to: &[u8]) {
        let mut bytes = fs::read(file).expect("the cache file");
        let at = bytes
            .windows(from.len())
            .position(|w| w == from)
            .expect("the bytes are in the file");
        bytes[at..at + to.len()].copy_from_slice(to);
        let len = u32::from_le_bytes(bytes[body_at - 12..body_at - 8].try_into().unwrap());
        let sum = checksum(&bytes[body_at..body_at + len as usize], 0).0;
        bytes[body_at - 8..body_at].copy_from_slice(&sum.to_le_bytes());
        fs::write(file, bytes).expect("the cache file is writable");
    }

    #[test]
    fn text_that_is_not_utf8_makes_the_cache_file_unread_even_with_a_right_checksum() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (file, body_at) = cache_file_with(dir.path(), "why: ünïcödé ✓");
        assert_eq!(title_read_back(&file).as_deref(), Some("why: ünïcödé ✓"));
        // The first byte of `✓` (three bytes) becomes a byte UTF-8 never has.
        rewrite(&file, body_at, "✓".as_bytes(), &[0xff]);
        assert_eq!(title_read_back(&file), None);
    }

    #[test]
    fn the_checksum_pass_finds_a_byte_that_is_not_ascii_wherever_it_is() {
        for len in [0, 1, 31, 32, 33, 64, 95, 130] {
            let mut bytes = vec![b'a'; len];
            let plain = checksum(&bytes, 0).0;
            for from in 0..=len {
                assert!(checksum(&bytes, from).1, "len {len}, from {from}");
                assert_eq!(checksum(&bytes, from).0, plain, "the sum ignores `from`");
            }
            for at in 0..len {
                bytes[at] = 0xc3;
                for from in 0..=len {
                    assert_eq!(
                        checksum(&bytes, from).1,
                        at < from,
                        "len {len}, at {at}, from {from}"
                    );
                }
                bytes[at] = b'a';
            }
        }
    }

    /// A tree of task documents in shard `aa` (by id and text), as a snapshot of the tasks ref.
    fn snapshot_of(repo: &Repo, docs: &[(&str, String)]) -> Snapshot {
        let edits: Vec<_> = docs
            .iter()
            .map(|(id, text)| crate::git::PathEdit {
                path: format!("tasks/aa/{id}.yaml"),
                blob: Some(repo.write_blob(text.as_bytes()).expect("written")),
            })
            .collect();
        Snapshot {
            tip: None,
            tree: Some(repo.edit_tree(None, &edits).expect("written")),
        }
    }

    /// A task document as git-coord writes it, in the fields the index reads.
    fn doc(id: &str, title: &str, state: &str, deps: &str) -> String {
        format!(
            "format: 1\nid: {id}\ntitle: {title}\ntype: task\nstate: {state}\npriority: 2\n\
             deps: [{deps}]\ncreated: \"2026-01-01T00:00:00.000Z\"\ncreated_by: someone\n\
             updated: \"2026-01-01T00:00:00.000Z\"\n"
        )
    }

    #[test]
    fn one_index_read_for_the_undone_tasks_then_for_all_checks_the_done_part_it_skipped() {
        let (_dir, repo) = crate::git::test_repo();
        let (done, open) = ("aa0000000001", "aa0000000002");
        let snap = snapshot_of(
            &repo,
            &[
                (done, doc(done, "finished-alpha", "done", "")),
                (open, doc(open, "beta", "open", done)),
            ],
        );
        let refname = "refs/coord/tasks";
        TaskIndex::default()
            .refresh(&repo, refname, &snap, Need::All)
            .expect("built");
        // The done title, damaged in the cache file (its checksum left as it was).
        let file = cache_file(&repo);
        let mut bytes = fs::read(&file).expect("the cache file");
        let at = bytes
            .windows(14)
            .position(|w| w == b"finished-alpha")
            .expect("the done title is in the file");
        bytes[at..at + 14].copy_from_slice(b"FINISHED-ALPHA");
        fs::write(&file, &bytes).expect("written");

        // As a long-lived server does: one index, first for `ready`, then for a listing.
        let mut index = TaskIndex::default();
        index
            .refresh(&repo, refname, &snap, Need::Undone)
            .expect("read");
        let undone: Vec<&str> = index.tasks().map(|t| t.id()).collect();
        assert_eq!(undone, [open]);
        assert!(index.dep_done(done), "a done task's name says it is done");
        assert!(!index.dep_done(open) && !index.dep_done("aa0000000003"));
        assert!(index.get(done).is_none(), "no done task is read unchecked");
        index
            .refresh(&repo, refname, &snap, Need::All)
            .expect("read");
        let title = index.get(done).map(|t| t.title().to_string());
        assert_eq!(
            title.as_deref(),
            Some("finished-alpha"),
            "rebuilt, not trusted"
        );
        assert_eq!(index.tasks().count(), 2);
        assert!(index.dep_done(done));
    }

    #[test]
    fn a_task_of_the_index_serializes_as_its_summary_does() {
        let (_dir, repo) = crate::git::test_repo();
        let full = "format: 1\nid: aa0000000001\ntitle: \"all: \\\"quoted\\\"\"\ntype: bug\n\
                    state: blocked\npriority: 0\nrole: dev\nlabels: [x, y]\ndeps: [aa0000000002]\n\
                    parent: aa0000000002\nassignee: ann\nsummary: half\nblock_reason: waits\n\
                    created: \"2026-01-01T00:00:00.000Z\"\ncreated_by: someone\n\
                    updated: \"2026-01-02T00:00:00.000Z\"\n";
        let bare = doc("aa0000000002", "bare", "open", "");
        let snap = snapshot_of(
            &repo,
            &[("aa0000000001", full.to_string()), ("aa0000000002", bare)],
        );
        let mut index = TaskIndex::default();
        index
            .refresh(&repo, "refs/coord/tasks", &snap, Need::All)
            .expect("built");
        assert_eq!(index.tasks().count(), 2);
        for task in index.tasks() {
            let direct = serde_json::to_string(&task).expect("json");
            let summary = serde_json::to_string(&task.to_summary()).expect("json");
            assert_eq!(direct, summary);
        }
        let full = index.get("aa0000000001").expect("indexed");
        assert!(
            serde_json::to_string(&full)
                .expect("json")
                .contains(r#""labels":["x","y"]"#)
        );
    }

    #[test]
    fn a_span_that_cuts_a_character_reads_as_empty() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let why = "é";
        let (file, body_at) = cache_file_with(dir.path(), why);
        assert_eq!(title_read_back(&file).as_deref(), Some(why));
        // The title's span: its offset from the record's text (after the name) and its
        // length, 2, made 1.
        let offset = (NAME.len() as u16).to_le_bytes();
        let span = [offset[0], offset[1], 2, 0];
        let cut = [offset[0], offset[1], 1, 0];
        rewrite(&file, body_at, &span, &cut);
        assert_eq!(title_read_back(&file).as_deref(), Some(""));
    }

    #[test]
    fn a_record_whose_fields_do_not_fit_in_u16s_reads_back_whole() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let long = "é".repeat(40_000);
        let mut shard = ShardBuilder::with_slots(3);
        let blob = Oid::try_from(&[1u8; 20][..]).expect("an object id");
        shard.put_problem(0, "aa0000000001.yaml", blob, "short");
        shard.put_problem(1, "aa0000000002.yaml", blob, &long);
        shard.put_problem(2, "aa0000000003.yaml", blob, "after");
        let tree = Oid::try_from(&[2u8; 20][..]).expect("an object id");
        let shards = HashMap::from([("aa".to_string(), shard.finish(tree))]);
        let wide = shards["aa"].task(1);
        assert_ne!(wide.rec[BASE_AT + 3] & 0x80, 0, "the record is wide");
        let file = dir.path().join("tasks.index");
        write_cache(&file, shards.iter());
        let shards = read_cache(&file).expect("the cache file reads back");
        let read = |i: usize| {
            let task = shards["aa"].task(i);
            (
                task.str(Field::Name).to_string(),
                task.title().to_string(),
                task.role(),
            )
        };
        assert_eq!(read(0), ("aa0000000001.yaml".into(), "short".into(), None));
        assert_eq!(read(1), ("aa0000000002.yaml".into(), long, None));
        assert_eq!(read(2), ("aa0000000003.yaml".into(), "after".into(), None));
    }
}
