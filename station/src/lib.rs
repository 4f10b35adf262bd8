//! The polling-station agent: a durable local log of ballots and events (`store`),
//! the door checks and commands election workers use (`commands`, `import`), what the
//! records say (`ledger`), the agent's structured logs (`logging`), and sealing into signed, hash-chained batches for the
//! center (`store::Store::seal`), and sending them to the center (`sync`).

pub mod commands;
pub mod error;
pub mod import;
pub mod ledger;
pub mod logging;
pub mod receipt;
pub mod store;
pub mod sync;

pub use error::{Result, StationError};
pub use store::Store;
