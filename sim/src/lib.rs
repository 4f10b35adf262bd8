//! pollsync's simulator: election generator (`sim generate`), ballots drawn with
//! their ground truth, the in-process election-day harness (`fleet`) and the demo
//! built on it (`sim demo`), the benchmarks of SPEC §9 (`sim bench`), and a private
//! PostgreSQL server for them and the tests (`pg`).

pub mod ballots;
pub mod bench;
pub mod demo;
pub mod fleet;
pub mod generate;
mod names;
pub mod pg;
