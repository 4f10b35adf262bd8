//! pollsync's simulator: election generator (`sim generate`); the election-day
//! simulator, demo and benchmarks come with later issues.

pub mod ballots;
pub mod generate;
mod names;
