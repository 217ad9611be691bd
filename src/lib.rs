//! git-coord: coordination for coding agents and humans, kept in git refs under refs/coord/.

pub mod cli;
pub mod error;
pub mod git;
pub mod mcp;
pub mod model;
pub mod ops;
pub mod remote;
pub mod serve;
pub mod store;
pub mod views;

// Paths older callers (and the integration tests) use for the command context and the leases.
pub use ops::context as coord;
pub use ops::leases;
