//! The polling-station agent: a durable local log of ballots and events, sealed into
//! signed batches and pushed to the center. Built in issue 3; empty until then.
