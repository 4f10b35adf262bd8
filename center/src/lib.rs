//! The counting center: checks election definitions, and (in later issues) ingests
//! station batches exactly once, reconciles every contest and serves operators.

pub mod validate;
