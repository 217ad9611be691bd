//! git-coord: coordination for coding agents and humans, kept in git refs under refs/coord/.

pub mod agents;
pub mod artifacts;
pub mod brief;
pub mod checkpoints;
pub mod cli;
pub mod config;
pub mod coord;
pub mod error;
pub mod git;
pub mod hooks;
pub mod launch;
pub mod leases;
pub mod mcp;
pub mod messages;
pub mod model;
pub mod online;
pub mod projects;
pub mod remote;
pub mod serve;
pub mod stop;
pub mod store;
pub mod tasks;
pub mod team;
pub mod workflows;
