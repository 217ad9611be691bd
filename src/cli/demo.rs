//! `git coord demo`: a throwaway repository, simulated agents, every capability shown working.

use crate::error::Result;

pub fn run(_keep: bool) -> Result<()> {
    Ok(())
}
