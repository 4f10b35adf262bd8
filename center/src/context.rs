//! The election as the center works with it: the definition, the hash of its file,
//! and indexes by contest and station id, built once at start. Below the store and
//! ingest alike: both look contests up through it.

use std::collections::HashMap;

use pollsync_election::{Contest, ElectionDefinition, Station};
use pollsync_proto::limits::HASH_BYTES;

/// What the center knows about its election, built once.
#[derive(Debug)]
pub struct Context {
    /// The election definition.
    pub definition: ElectionDefinition,
    /// SHA-256 of the definition file's exact bytes.
    pub definition_sha256: [u8; HASH_BYTES],
    contest_index: HashMap<String, usize>,
    station_index: HashMap<String, usize>,
}

impl Context {
    /// Indexes `definition` (whose file hashes to `definition_sha256`).
    pub fn new(definition: ElectionDefinition, definition_sha256: [u8; HASH_BYTES]) -> Self {
        let contest_index = definition
            .contests
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let station_index = definition
            .stations
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        Self {
            definition,
            definition_sha256,
            contest_index,
            station_index,
        }
    }

    /// The election id.
    pub fn election_id(&self) -> &str {
        &self.definition.election.id
    }

    /// Whether the election is official or a test.
    pub fn mode(&self) -> pollsync_election::Mode {
        self.definition.election.mode
    }

    /// A contest by id (hash lookup).
    pub fn contest(&self, id: &str) -> Option<&Contest> {
        self.contest_index
            .get(id)
            .map(|&i| &self.definition.contests[i])
    }

    /// A station by id (hash lookup).
    pub fn station(&self, id: &str) -> Option<&Station> {
        self.station_index
            .get(id)
            .map(|&i| &self.definition.stations[i])
    }
}
