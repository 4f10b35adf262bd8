//! The station commands of SPEC §7 behind the command line: each takes the data
//! folder and its arguments, does one thing, and returns what to print.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use pollsync_election::{Ballot, BallotId, Contest, EventError, StationEvent, TallySheet};
use serde::Serialize;

use crate::error::{Result, StationError};
use crate::ledger::{self, ContestTally};
use crate::store::{META_LAST_CONTACT_MS, Provisioned, SealedBatch, Store, new_ballot_id};

/// The contest `id` if this station collects it.
pub fn served_contest<'a>(prov: &'a Provisioned, id: &str) -> Result<&'a Contest> {
    let station = prov.station()?;
    match prov.definition.contest(id) {
        Some(contest) if station.contests.iter().any(|c| c == id) => Ok(contest),
        _ => Err(StationError::NotServed {
            contest: id.to_string(),
            served: station.contests.join(", "),
        }),
    }
}

/// Check an event against the election and this station, then append it durably.
fn record_event(store: &mut Store, prov: &Provisioned, event: StationEvent) -> Result<()> {
    event.check(&prov.definition, prov.station()?)?;
    store.append(std::slice::from_ref(&event), &mut |_| {})
}

/// `station init`: set up a station in `dir` from its signed bundle, optionally
/// overriding the center's addresses (`HOST:PORT` each, tried in this order); a
/// station starting its chain opens its log with the zero report. Returns the text
/// to print.
pub fn init(dir: &Path, bundle: &Path, centers: &[String]) -> Result<String> {
    let store = Store::create(dir, bundle, centers)?;
    let prov = store.provisioned()?;
    let station = prov.station()?;
    let contests: Vec<String> = station
        .contests
        .iter()
        .map(|id| match prov.definition.contest(id) {
            Some(c) => format!("{id} ({})", c.name),
            None => id.clone(),
        })
        .collect();
    let mut text = format!(
        "station {} ({}) of election {} is set up in {}\ncontests: {}\ncenter: {}{}\n",
        station.id,
        station.name,
        prov.definition.election.id,
        dir.display(),
        contests.join(", "),
        prov.center_addresses.join(", then "),
        if prov.center_addresses.len() > 1 {
            " (tried in this order: the next one when one fails)"
        } else {
            ""
        }
    );
    text.push_str(match prov.bundle.mode {
        pollsync_election::Mode::Official => "mode: official\n",
        pollsync_election::Mode::Test => {
            "mode: TEST: a rehearsal; an official center refuses everything this device records\n"
        }
    });
    match store.history_missing()? {
        Some(through) => text.push_str(&format!(
            "this device replaces another one: it continues the station's chain after batch {through}; run `station recover` to bring back batches 1 to {through} so that its records hold the whole day\n"
        )),
        None => text.push_str(
            "zero report recorded: every contest stands at zero; it opens batch 1, before any ballot\n",
        ),
    }
    Ok(text)
}

/// `station issue`: record that `count` more ballots were issued for `contest`.
/// Returns the text to print.
pub fn issue(dir: &Path, contest: &str, count: u64) -> Result<String> {
    let mut store = Store::open(dir)?;
    let prov = store.provisioned()?;
    let contest = served_contest(&prov, contest)?;
    record_event(
        &mut store,
        &prov,
        StationEvent::Issued {
            contest: contest.id.clone(),
            count,
        },
    )?;
    Ok(format!(
        "{count} more ballot(s) issued for {} ({})\n",
        contest.id, contest.name
    ))
}

/// `station record`: record one ballot returned for `contest`, with the candidate
/// ids marked FOR and AGAINST and its write-in names. Returns the new ballot's id.
pub fn record(
    dir: &Path,
    contest: &str,
    for_ids: &[String],
    against: &[String],
    write_ins: &[String],
) -> Result<BallotId> {
    let mut store = Store::open(dir)?;
    let prov = store.provisioned()?;
    let contest = served_contest(&prov, contest)?;
    let ballot = Ballot::from_choices(new_ballot_id()?, contest, for_ids, against, write_ins)
        .map_err(EventError::from)?;
    let id = ballot.id;
    record_event(&mut store, &prov, StationEvent::Ballot(ballot))?;
    Ok(id)
}

/// `station cancel`: cancel the recorded ballot `ballot`, giving the reason.
/// Returns the text to print.
pub fn cancel(dir: &Path, ballot: &str, reason: &str) -> Result<String> {
    let ballot_id: BallotId = ballot.parse()?;
    let mut store = Store::open(dir)?;
    let prov = store.provisioned()?;
    record_event(
        &mut store,
        &prov,
        StationEvent::Cancel {
            ballot_id,
            reason: reason.trim().to_string(),
        },
    )?;
    Ok(format!("ballot {ballot_id} cancelled\n"))
}

/// How a contest is closed.
pub enum SheetSource<'a> {
    /// The tally sheet as the records say.
    FromRecords,
    /// The human count, from a tally-sheet JSON file.
    File(&'a Path),
}

/// Close a contest with its tally sheet. Returns the text to print and, for a human
/// count that differs from the records, the differences (printed as a warning).
pub fn close(dir: &Path, contest: &str, source: SheetSource<'_>) -> Result<(String, Vec<String>)> {
    let mut store = Store::open(dir)?;
    let prov = store.provisioned()?;
    let contest = served_contest(&prov, contest)?.clone();
    let station = prov.station()?;
    let records_of = |log: &[StationEvent]| -> TallySheet {
        ledger::tally(&prov.definition, station, log)
            .into_iter()
            .find(|t| t.id == contest.id)
            .map(|t| t.records)
            .unwrap_or_else(|| TallySheet::for_contest(&contest))
    };
    let history_missing = store.history_missing()?;
    let (sheet, differences) = match source {
        SheetSource::FromRecords => {
            if let Some(through) = history_missing {
                return Err(StationError::HistoryMissing { through });
            }
            let event = store.close_from_records(&|log| {
                let event = StationEvent::Close {
                    contest: contest.id.clone(),
                    sheet: records_of(log),
                };
                event.check(&prov.definition, station)?;
                Ok(event)
            })?;
            let StationEvent::Close { sheet, .. } = event else {
                return Err(StationError::Corrupt {
                    detail: "close produced another event".into(),
                });
            };
            (sheet, Vec::new())
        }
        SheetSource::File(file) => {
            let text = std::fs::read(file).map_err(|source| StationError::Io {
                path: file.to_path_buf(),
                source,
            })?;
            let sheet: TallySheet =
                serde_json::from_slice(&text).map_err(|e| StationError::Io {
                    path: file.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("not a tally sheet: {e}"),
                    ),
                })?;
            let differences = match history_missing {
                Some(through) => vec![format!(
                    "not compared with this device's records: it lacks the station's batches 1 to {through} (run `station recover`)"
                )],
                None => sheet.differences_as(&records_of(&store.log()?), "tally sheet", "records"),
            };
            record_event(
                &mut store,
                &prov,
                StationEvent::Close {
                    contest: contest.id.clone(),
                    sheet: sheet.clone(),
                },
            )?;
            (sheet, differences)
        }
    };
    let text = format!(
        "contest {} ({}) closed: issued {}, returned {}, valid {}, void {}; nothing more is taken for it\n",
        contest.id, contest.name, sheet.issued, sheet.returned, sheet.valid, sheet.void
    );
    Ok((text, differences))
}

/// `station tally`: the station's id and, per contest it serves, the tally its
/// records give.
pub fn tally(dir: &Path) -> Result<(String, Vec<ContestTally>)> {
    let store = Store::open(dir)?;
    let prov = store.provisioned()?;
    let tallies = ledger::tally(&prov.definition, prov.station()?, &store.log()?);
    Ok((prov.station_id().to_string(), tallies))
}

/// `station import --json`: the file, its ballots, and how many per contest.
#[derive(Debug, Serialize)]
pub struct ImportReport<'a> {
    /// The file imported.
    pub file: String,
    /// Ballots imported, every contest together.
    pub ballots: u64,
    /// Ballots imported per contest.
    pub contests: &'a crate::import::Imported,
}

/// `station seal --json`: the batches made.
#[derive(Debug, Serialize)]
pub struct SealReport<'a> {
    /// Each batch sealed, oldest first.
    pub sealed: &'a [SealedBatch],
}

/// `station tally --json`: the station and each contest it serves.
#[derive(Debug, Serialize)]
pub struct TallyReport<'a> {
    /// The station.
    pub station: &'a str,
    /// Each contest it serves, as its records say.
    pub contests: &'a [ContestTally],
}

/// `station tally` in words: per contest, its tally sheet and each candidate's FOR
/// and AGAINST.
pub fn tally_text(
    prov_def: &pollsync_election::ElectionDefinition,
    station: &str,
    tallies: &[ContestTally],
) -> String {
    let mut out = format!("station {station}\n");
    for t in tallies {
        let Some(contest) = prov_def.contest(&t.id) else {
            continue;
        };
        let r = &t.records;
        out.push_str(&format!(
            "\n{} {} ({}): issued {}, returned {}, valid {}, void {}\n",
            t.id,
            contest.name,
            if t.closed { "closed" } else { "open" },
            r.issued,
            r.returned,
            r.valid,
            r.void
        ));
        for c in &contest.candidates {
            out.push_str(&format!(
                "  {:<12} {:<8} FOR {:>6}  AGAINST {:>6}\n",
                c.id,
                c.name,
                r.for_of(&c.id),
                r.against_of(&c.id)
            ));
        }
        for (name, votes) in &r.write_in {
            out.push_str(&format!("  write-in {name}: FOR {votes}\n"));
        }
    }
    out
}

/// `station status`: what the device holds and where its sync stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StationStatus {
    /// The station.
    pub station: String,
    /// The election.
    pub election: String,
    /// Its mode: `official`, or `test` for a rehearsal.
    pub mode: &'static str,
    /// The center address in use: the one last reached, or the first to try if
    /// the center was never reached.
    pub center: String,
    /// Whether `center` was reached (a Hello answered there) at least once.
    pub center_reached: bool,
    /// Every center address, in the order they are tried after a failure.
    pub center_addresses: Vec<String>,
    /// Events waiting to be sealed, and sealed.
    pub events: EventCounts,
    /// Ballots in sealed batches.
    pub ballots_sealed: u64,
    /// Ballots waiting for their group (`min_ballots_per_batch`).
    pub ballots_waiting: u64,
    /// K: the fewest ballots of a contest a batch carries.
    pub min_ballots_per_batch: u64,
    /// Batches sealed, and acknowledged by the center.
    pub batches: BatchCounts,
    /// The last batch sealed.
    pub head: HeadView,
    /// The last contact with the center (Unix ms), if any.
    pub last_contact_unix_ms: Option<u64>,
    /// Contests this station has closed.
    pub closed: BTreeSet<String>,
    /// Why sealing is held, when it is (an operator must act).
    pub sealing_held: Option<String>,
    /// What is wrong with the center's transparency log, once the station caught
    /// it showing two histories (`station receipt` shows both checkpoints).
    pub log_alarm: Option<String>,
}

/// Events by state, for [`StationStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventCounts {
    /// Waiting to be sealed.
    pub pending: u64,
    /// In sealed batches.
    pub sealed: u64,
}

/// Batches by state, for [`StationStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchCounts {
    /// Sealed on this device.
    pub sealed: u64,
    /// Acknowledged by the center.
    pub acknowledged: u64,
}

/// A chain head as shown: its sequence and its hash in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeadView {
    /// The last batch's sequence (0: none yet).
    pub sequence: u64,
    /// Its chain hash, hex.
    pub hash: String,
}

/// `station status` figures.
pub fn status(dir: &Path) -> Result<StationStatus> {
    let store = Store::open(dir)?;
    let prov = store.provisioned()?;
    let counts = store.counts()?;
    let head = store.head()?;
    let last_contact: Option<u64> = store
        .meta(META_LAST_CONTACT_MS)?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse().ok());
    Ok(StationStatus {
        station: prov.station_id().to_owned(),
        election: prov.definition.election.id.clone(),
        mode: prov.definition.election.mode.as_str(),
        center: prov.center_addresses[prov.first_center_index()].clone(),
        center_reached: prov
            .center_reached
            .as_ref()
            .is_some_and(|r| prov.center_addresses.contains(r)),
        center_addresses: prov.center_addresses.clone(),
        events: EventCounts {
            pending: counts.pending_events,
            sealed: counts.sealed_events,
        },
        ballots_sealed: counts.sealed_ballots,
        ballots_waiting: counts.ballots_waiting,
        min_ballots_per_batch: store.min_ballots_per_batch(),
        batches: BatchCounts {
            sealed: counts.batches_sealed,
            acknowledged: counts.batches_acknowledged,
        },
        head: HeadView {
            sequence: head.sequence,
            hash: head.hash_hex(),
        },
        last_contact_unix_ms: last_contact,
        closed: store.closed_contests()?,
        sealing_held: store.sealing_hold()?,
        log_alarm: store
            .meta(crate::receipt::META_LOG_ALARM)?
            .and_then(|raw| serde_json::from_slice::<crate::receipt::LogAlarm>(&raw).ok())
            .map(|alarm| alarm.detail),
    })
}

/// `station status` in words.
pub fn status_text(v: &StationStatus) -> String {
    format!(
        "station {} of election {}{}\n\
         events: {} waiting to be sealed, {} sealed ({} ballots)\n\
         ballots waiting for their group of {}: {}\n\
         batches: {} sealed, {} acknowledged by the center\n\
         center: {} ({}; addresses in order: {})\n\
         last contact with the center ({}): {}\n\
         closed contests: {}\n{}{}",
        v.station,
        v.election,
        if v.mode == "test" {
            " (TEST election: a rehearsal, never counted as official)"
        } else {
            ""
        },
        v.events.pending,
        v.events.sealed,
        v.ballots_sealed,
        v.min_ballots_per_batch,
        v.ballots_waiting,
        v.batches.sealed,
        v.batches.acknowledged,
        v.center,
        if v.center_reached {
            "last reached there"
        } else {
            "not reached yet; tried first"
        },
        v.center_addresses.join(", "),
        v.center,
        match v.last_contact_unix_ms {
            Some(ms) => pollsync_proto::time::utc_time(ms),
            None => "never".into(),
        },
        if v.closed.is_empty() {
            "none".to_string()
        } else {
            v.closed
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        },
        match &v.sealing_held {
            Some(why) => format!("SEALING HELD (call an operator): {why}\n"),
            None => String::new(),
        },
        match &v.log_alarm {
            Some(why) => format!(
                "LOG ALARM (call the election authority; `station receipt` shows both checkpoints): {why}\n"
            ),
            None => String::new(),
        },
    )
}

/// `station seal`: seal what is pending into batches. Returns the batches made,
/// oldest first.
pub fn seal(dir: &Path) -> Result<Vec<SealedBatch>> {
    let mut store = Store::open(dir)?;
    let prov = store.provisioned()?;
    store.seal(&prov)
}

/// Seal what is pending, then write every batch not yet acknowledged into one file.
pub fn export(dir: &Path, out: &Path) -> Result<(usize, u64)> {
    let mut store = Store::open(dir)?;
    let prov = store.provisioned()?;
    // A held device exports what it sealed before, and seals nothing more.
    if store.sealing_hold()?.is_none() {
        store.seal(&prov)?;
    }
    let batches = store.unacknowledged()?;
    let count = batches.len();
    let bytes = batches.iter().map(|b| b.batch.len() as u64).sum();
    let export = pollsync_proto::export::new_export(
        &prov.bundle.election_id,
        &prov.bundle.station_id,
        batches,
    );
    pollsync_proto::write_export(out, &export).map_err(|e| StationError::Io {
        path: out.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok((count, bytes))
}

/// Ballots per contest in a map, for messages.
pub fn per_contest_text(counts: &BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
