//! Across machines: fetch refs/coord/* into a staging namespace, merge each ref with the model's
//! rules, push fast-forward only, and confirm writes at the remote. This layer never writes a
//! message itself: whom a merge decided against goes back to the caller's [`Courier`].

pub mod confirm;
pub mod merge;
pub mod presence;
pub mod sync;
pub mod transport;

pub use confirm::confirmed_update;
pub use sync::{RefReport, fetch_and_merge, push_only, sync};
pub use transport::{MAX_TRIES, Pushed, Remote, default_remote, fetch, push, resolve_remote};

use crate::error::Result;
use crate::model::merge::Notice;

/// Delivers what a merge owes people (a lost claim, a revoked lease); the operations layer writes
/// them to the inbox. Returns how many it delivered.
pub trait Courier {
    fn deliver(&self, notices: &[Notice]) -> Result<usize>;

    /// Tells the user something that went wrong after a write held (the operations layer shows
    /// it as a warning); by default only logged.
    fn warn(&self, text: String) {
        tracing::warn!("{text}");
    }
}
