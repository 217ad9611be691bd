//! git-coord: coordination for coding agents and humans, kept in git refs under refs/coord/.
//!
//! The binary is the product; this library exists for it and for the benchmark. What is `pub`
//! below is what those use: the command line's entry point, the documents and the git layer
//! the benchmark writes through. Everything else is the crate's own (`pub(crate)` in effect),
//! so the compiler finds what nothing uses.

pub mod cli;
pub(crate) mod error;
pub mod git;
pub(crate) mod mcp;
pub mod model;
pub(crate) mod ops;
pub(crate) mod remote;
pub(crate) mod serve;
pub(crate) mod store;
pub(crate) mod views;

/// Limits the integration tests check against.
pub mod limits {
    /// Dashboard event streams open at once.
    pub const MAX_EVENT_STREAMS: usize = crate::serve::MAX_EVENT_STREAMS;
    /// The longest MCP request line.
    pub const MAX_REQUEST_BYTES: usize = crate::mcp::MAX_REQUEST_BYTES;
}
