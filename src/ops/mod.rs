//! The operations: what a command does to the coordination state, one module per kind of work.
//! `context` (who acts, where, online or not) and `config` sit at the bottom of this layer; the
//! others build on them and on store/ and remote/ below.

pub mod agent_logs;
pub mod agent_pause;
pub mod agent_role;
pub mod agents;
pub mod artifacts;
pub mod breaker;
pub mod checkpoints;
pub mod config;
pub mod context;
pub mod history;
pub mod hooks;
pub mod launch;
pub mod leases;
pub mod mail;
pub mod messages;
pub mod notices;
pub mod online;
pub mod presence;
pub mod projects;
pub mod supervision;
pub mod tasks;
pub mod team;
pub mod wait;
pub mod work;
pub mod workflows;
