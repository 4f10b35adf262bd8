//! pollsync's simulator: election generator (`sim generate`), ballots drawn with
//! their ground truth, the in-process election-day harness (`fleet`) and the demo
//! built on it (`sim demo`); benchmarks come with a later issue.

pub mod ballots;
pub mod demo;
pub mod fleet;
pub mod generate;
mod names;
