//! The counting center: checks election definitions, keeps the store (election,
//! CA, enrolled stations, raw batches, running tallies, alerts), ingests station
//! batches exactly once (network and `center import` alike) and runs the offline
//! commands; reconciliation and the operators' views build on it.

pub mod audit;
pub mod commands;
pub mod context;
pub mod error;
pub mod http;
pub mod ingest;
pub mod listen;
pub mod logging;
pub mod overview;
pub mod results;
pub mod serve;
pub mod serve_config;
pub mod server;
pub mod status;
pub mod store;
pub mod validate;

pub use error::CenterError;
