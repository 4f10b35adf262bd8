//! A TCP fault proxy for the cross-process tests: it sits between stations and the
//! center (stations are initialised with the proxy's address) and can be switched at
//! runtime between passing traffic and a fault: dropping every connection, a black
//! hole, a delay per chunk, or cutting a connection after a number of bytes (in the
//! middle of a message), or a silent drop: the station side of every open
//! connection vanishes while the center side stays open and hears nothing more (a
//! link that died without a FIN), so only the center's keepalive can find it.
//! Counters tell a test that a fault really hit traffic.
//!
//! The proxy sees only TLS bytes; it needs no keys. It runs on plain threads: one
//! accepting, two per connection (one per direction).

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Largest chunk read and forwarded at once (a delay applies per chunk).
pub const CHUNK_BYTES: usize = 8 * 1024;
/// How long the proxy waits to reach the center for a new connection.
pub const UPSTREAM_CONNECT_TIMEOUT_MS: u64 = 2_000;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Close every open connection now (both sides) and close new ones at once.
    Drop,
    /// Read and discard everything both ways, forward nothing: connections look
    /// alive but nothing arrives. A connection that lost bytes stays dead.
    BlackHole,
    /// Wait this long before forwarding each chunk, each way.
    Delay { per_chunk_ms: u64 },
}

/// A direction of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Station to center.
    Up,
    /// Center to station.
    Down,
}

/// What the proxy has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections accepted from stations.
    pub accepted: u64,
    /// Connections joined to the center.
    pub forwarded: u64,
    /// New connections closed at once in [`Fault::Drop`] mode.
    pub refused: u64,
    /// Open connections closed by a switch to [`Fault::Drop`].
    pub dropped: u64,
    /// Connections that lost bytes to the black hole (or were accepted into it).
    pub black_holed: u64,
    /// Bytes read and discarded by the black hole.
    pub swallowed_bytes: u64,
    /// Connections cut after their byte budget, with the budget reached.
    pub cut: u64,
    /// Chunks forwarded after a delay.
    pub delayed_chunks: u64,
    /// Bytes forwarded station → center.
    pub bytes_up: u64,
    /// Bytes forwarded center → station.
    pub bytes_down: u64,
    /// New connections closed because the center could not be reached.
    pub upstream_failed: u64,
    /// Connections whose station side vanished silently ([`Proxy::silent_drop`]).
    pub silenced: u64,
    /// Of those, the ones the center closed by itself (its keepalive noticed).
    pub silent_closed_by_center: u64,
}

/// One connection's sockets, kept so a drop can close them from outside.
struct Open {
    client: TcpStream,
    upstream: Option<TcpStream>,
}

/// A cut waiting for the next connection.
#[derive(Debug, Clone, Copy)]
struct Cut {
    direction: Direction,
    after_bytes: u64,
}

struct State {
    fault: Fault,
    /// Switch to a fault once this many bytes in all have gone up.
    armed: Option<(u64, Fault)>,
    cuts: VecDeque<Cut>,
    open: HashMap<u64, Open>,
    /// Connections that lost bytes to the black hole: they never forward again.
    dead: std::collections::HashSet<u64>,
    /// Connections dropped silently: the station side is gone, the center side stays
    /// open, unread answers are discarded and nothing is sent to the center.
    silent: std::collections::HashSet<u64>,
    next_id: u64,
    counters: Counters,
}

impl State {
    /// Applies `fault`; a drop closes every open connection.
    fn switch(&mut self, fault: Fault) {
        self.fault = fault;
        if fault == Fault::Drop {
            for (_, open) in self.open.drain() {
                close(&open.client);
                if let Some(up) = &open.upstream {
                    close(up);
                }
                self.counters.dropped += 1;
            }
        }
    }
}

struct Shared {
    upstream: SocketAddr,
    state: Mutex<State>,
    stopping: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running proxy; dropping it closes everything.
pub struct Proxy {
    address: SocketAddr,
    shared: Arc<Shared>,
}

fn close(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Both);
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (`HOST:PORT`).
    pub fn start(upstream: &str) -> Proxy {
        let upstream: SocketAddr = upstream
            .parse()
            .unwrap_or_else(|e| panic!("proxy upstream {upstream:?}: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listens");
        let address = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream,
            state: Mutex::new(State {
                fault: Fault::Pass,
                armed: None,
                cuts: VecDeque::new(),
                open: HashMap::new(),
                dead: Default::default(),
                silent: Default::default(),
                next_id: 0,
                counters: Counters::default(),
            }),
            stopping: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || accept_loop(&listener, &accept_shared))
            .expect("proxy thread starts");
        Proxy { address, shared }
    }

    /// The address stations should dial.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Switches the fault now.
    pub fn set(&self, fault: Fault) {
        self.shared.lock().switch(fault);
    }

    /// Switches to `fault` as soon as `after_bytes` more bytes have gone up (station
    /// to center) through any connection: a fault that strikes mid-transfer.
    pub fn arm(&self, after_bytes: u64, fault: Fault) {
        let mut state = self.shared.lock();
        let at = state.counters.bytes_up + after_bytes;
        state.armed = Some((at, fault));
    }

    /// The next connection accepted forwards only `after_bytes` in `direction` (the
    /// other direction flows freely), then both its sides are closed. Several calls
    /// cut several connections in turn.
    pub fn cut_next(&self, direction: Direction, after_bytes: u64) {
        self.shared.lock().cuts.push_back(Cut {
            direction,
            after_bytes,
        });
    }

    /// Every open connection's station side vanishes now, as if its link died
    /// silently: the station sees its connection closed and dials again (through
    /// the proxy, which forwards new connections as before), while the center side
    /// stays open and never hears another byte nor a FIN.
    pub fn silent_drop(&self) {
        let mut state = self.shared.lock();
        let ids: Vec<u64> = state
            .open
            .iter()
            .filter(|(_, o)| o.upstream.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if state.silent.insert(id) {
                state.counters.silenced += 1;
            }
            if let Some(open) = state.open.get(&id) {
                close(&open.client);
            }
        }
    }

    /// Cuts armed with [`Proxy::cut_next`] and not yet used.
    pub fn cuts_waiting(&self) -> usize {
        self.shared.lock().cuts.len()
    }

    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.lock().switch(Fault::Drop);
        // Wake the accepting thread so it sees the stop.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_millis(500));
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let _ = client.set_nodelay(true);
        let shared = Arc::clone(shared);
        let _ = std::thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || serve_connection(client, &shared));
    }
}

/// What a new connection becomes, decided under the lock.
enum Start {
    Refuse,
    BlackHole(u64),
    Forward(u64, Option<Cut>),
}

fn serve_connection(client: TcpStream, shared: &Arc<Shared>) {
    let start = {
        let mut state = shared.lock();
        state.counters.accepted += 1;
        let id = state.next_id;
        state.next_id += 1;
        match state.fault {
            Fault::Drop => {
                state.counters.refused += 1;
                Start::Refuse
            }
            Fault::BlackHole => {
                state.counters.black_holed += 1;
                state.dead.insert(id);
                let clone = client.try_clone().ok();
                if let Some(c) = clone {
                    state.open.insert(
                        id,
                        Open {
                            client: c,
                            upstream: None,
                        },
                    );
                }
                Start::BlackHole(id)
            }
            Fault::Pass | Fault::Delay { .. } => {
                let cut = state.cuts.pop_front();
                Start::Forward(id, cut)
            }
        }
    };
    match start {
        Start::Refuse => close(&client),
        Start::BlackHole(id) => {
            swallow(&client, shared);
            let mut state = shared.lock();
            state.open.remove(&id);
            state.dead.remove(&id);
            drop(state);
            close(&client);
        }
        Start::Forward(id, cut) => forward(id, client, cut, shared),
    }
}

/// Reads and discards until the peer goes away.
fn swallow(from: &TcpStream, shared: &Shared) {
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut from = from;
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => shared.lock().counters.swallowed_bytes += n as u64,
        }
    }
}

fn forward(id: u64, client: TcpStream, cut: Option<Cut>, shared: &Arc<Shared>) {
    let upstream = match TcpStream::connect_timeout(
        &shared.upstream,
        Duration::from_millis(UPSTREAM_CONNECT_TIMEOUT_MS),
    ) {
        Ok(s) => s,
        Err(_) => {
            shared.lock().counters.upstream_failed += 1;
            close(&client);
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let clones = (client.try_clone(), upstream.try_clone());
    let (Ok(client_w), Ok(upstream_w)) = clones else {
        close(&client);
        close(&upstream);
        return;
    };
    {
        let mut state = shared.lock();
        // A drop may have come while connecting.
        if state.fault == Fault::Drop || shared.stopping.load(Ordering::SeqCst) {
            state.counters.refused += 1;
            drop(state);
            close(&client);
            close(&upstream);
            return;
        }
        state.counters.forwarded += 1;
        let (Ok(c), Ok(u)) = (client.try_clone(), upstream.try_clone()) else {
            drop(state);
            close(&client);
            close(&upstream);
            return;
        };
        state.open.insert(
            id,
            Open {
                client: c,
                upstream: Some(u),
            },
        );
    }
    let budget = |d: Direction| cut.filter(|c| c.direction == d).map(|c| c.after_bytes);
    let down_shared = Arc::clone(shared);
    let down_budget = budget(Direction::Down);
    let down = std::thread::Builder::new()
        .name("fault-proxy-down".into())
        .spawn(move || {
            pump(
                id,
                &upstream,
                &client_w,
                Direction::Down,
                down_budget,
                &down_shared,
            )
        });
    pump(
        id,
        &client,
        &upstream_w,
        Direction::Up,
        budget(Direction::Up),
        shared,
    );
    if let Ok(handle) = down {
        let _ = handle.join();
    }
    let mut state = shared.lock();
    state.open.remove(&id);
    state.dead.remove(&id);
    state.silent.remove(&id);
}

/// Copies `from` to `to` chunk by chunk under the current fault; closes both
/// connections' sockets when either side ends, a cut's budget is spent, or a
/// write fails.
fn pump(
    id: u64,
    from: &TcpStream,
    to: &TcpStream,
    direction: Direction,
    budget: Option<u64>,
    shared: &Shared,
) {
    let mut buf = vec![0u8; CHUNK_BYTES];
    let (mut from, mut to) = (from, to);
    let mut sent: u64 = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let fault = {
            let mut state = shared.lock();
            if state.silent.contains(&id) {
                // The station is gone: what the center says goes nowhere.
                state.counters.swallowed_bytes += n as u64;
                continue;
            }
            if state.fault == Fault::BlackHole || state.dead.contains(&id) {
                if state.dead.insert(id) {
                    state.counters.black_holed += 1;
                }
                state.counters.swallowed_bytes += n as u64;
                continue;
            }
            state.fault
        };
        if let Fault::Delay { per_chunk_ms } = fault {
            std::thread::sleep(Duration::from_millis(per_chunk_ms));
        }
        // A cut: forward only up to the budget, then close both sides.
        let (len, spent) = match budget {
            Some(b) if sent + n as u64 >= b => ((b - sent) as usize, true),
            _ => (n, false),
        };
        if to.write_all(&buf[..len]).is_err() {
            break;
        }
        sent += len as u64;
        let mut state = shared.lock();
        if matches!(fault, Fault::Delay { .. }) {
            state.counters.delayed_chunks += 1;
        }
        match direction {
            Direction::Up => state.counters.bytes_up += len as u64,
            Direction::Down => state.counters.bytes_down += len as u64,
        }
        if spent {
            state.counters.cut += 1;
            break;
        }
        if direction == Direction::Up
            && let Some((at, fault)) = state.armed
            && state.counters.bytes_up >= at
        {
            state.armed = None;
            state.switch(fault);
        }
    }
    let mut state = shared.lock();
    if state.silent.contains(&id) {
        match direction {
            // The station side ended: the center side stays open, silent.
            Direction::Up => {
                drop(state);
                close(from);
                return;
            }
            // The center closed its side by itself.
            Direction::Down => state.counters.silent_closed_by_center += 1,
        }
    }
    drop(state);
    // Whatever ended this direction ends the connection.
    close(from);
    close(to);
}
