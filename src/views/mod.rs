//! Views and decisions: read-only answers built from the operations (what an agent needs to know
//! now, whether it may stop).

pub mod brief;
pub mod stop;
