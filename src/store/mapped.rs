//! A cache file mapped read-only, read in place without a copy.

use std::fs;

/// Bytes built in memory, or a cache file mapped read-only. The cache file is
/// only ever replaced by rename, never written in place, so a mapping stays valid.
pub enum Bytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl Bytes {
    /// Maps `file` privately, read-only, its pages mapped in one go (`MAP_POPULATE` on Linux):
    /// a listing reads every page of the index (docs/PERFORMANCE.md).
    #[allow(unsafe_code)]
    pub fn map(file: &fs::File) -> Option<Bytes> {
        let len = file.metadata().ok()?.len();
        if len == 0 {
            return Some(Bytes::Owned(Vec::new()));
        }
        // SAFETY: the mapping is undefined only if the file changes under it; git-coord's cache
        // files are only ever replaced by rename, never written in place.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .populate()
                .map_copy_read_only(file)
        };
        map.ok().map(Bytes::Mapped)
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Mapped(map) => map,
        }
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.len())
    }
}
