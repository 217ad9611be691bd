//! Views and decisions: read-only answers built from the operations (what an agent needs to know
//! now, the team at a glance, whether an agent may stop, the mail it hears mid-turn).

pub mod artifacts;
pub mod brief;
pub mod midturn;
pub mod status;
pub mod stop;
