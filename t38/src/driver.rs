//! The real-time driver: many T.38 fax sessions on UDP sockets.
//!
//! The tokio runtime owns the sockets only: one receive task per socket
//! forwards datagrams into a channel. All spandsp work happens on dedicated
//! engine threads ("shards"); each owns its share of the [`FaxSession`]s
//! with their [`Udptl`] state and runs its own 20 ms ticker: on each tick it
//! feeds received datagrams, runs the sessions' due ticks (catching up a
//! late tick in 160-sample steps), and sends their datagrams with a
//! non-blocking `try_send_to`. Nothing on the runtime ever waits for
//! spandsp, and no engine thread ever waits for the runtime.
//!
//! Why shards: a session's tick costs microseconds, but spandsp decodes the
//! TIFF page when a page starts and encodes and writes it when a page ends
//! (several milliseconds each). On one thread such a step delays every
//! session behind it; spread over several threads the operating system
//! interleaves them, even on a single core.
//!
//! Lateness is measured per session tick: how long after the shard's tick
//! deadline that session's step started. [`Driver::lateness`] reports percentiles.
//!
//! For tests and benchmarks the driver can run faster than real time
//! (`time_scale` > 1): both ends of a call must then run in the same driver,
//! since a real peer only runs in real time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::session::{Event, FaxSession, TICK, Transmit};
use crate::udptl::Udptl;
use crate::{Error, FaxResult};

/// Driver settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriverConfig {
    /// Simulated seconds per real second (1.0: real time).
    pub time_scale: f64,
    /// Engine threads; sessions are spread over them round-robin.
    pub shards: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self { time_scale: 1.0, shards: 8 }
    }
}

/// Lateness percentiles of session ticks, in real time.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Lateness {
    /// Session ticks measured.
    pub ticks: u64,
    /// Median lateness.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Worst.
    pub max: Duration,
    /// CPU time of all engine threads so far.
    pub engine_cpu: Duration,
}

/// Histogram resolution.
const BUCKET_US: u64 = 10;
/// Buckets (10 µs each, up to 200 ms; later ticks count in the last one).
const BUCKETS: usize = 20_000;

#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    max_us: u64,
}

impl Histogram {
    fn new() -> Self {
        Self { counts: vec![0; BUCKETS], max_us: 0 }
    }

    fn record(&mut self, late: Duration) {
        let us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        self.max_us = self.max_us.max(us);
        let b = usize::try_from(us / BUCKET_US).unwrap_or(BUCKETS - 1).min(BUCKETS - 1);
        self.counts[b] += 1;
    }

    fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.max_us = self.max_us.max(o.max_us);
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn percentile(&self, p: f64) -> Duration {
        let total = self.total();
        if total == 0 {
            return Duration::ZERO;
        }
        let want = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                if i == BUCKETS - 1 {
                    return Duration::from_micros(self.max_us);
                }
                return Duration::from_micros((i as u64 + 1) * BUCKET_US);
            }
        }
        Duration::from_micros(self.max_us)
    }
}

/// The id of a session in a driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(u64);

enum Cmd {
    Add {
        id: SessionId,
        slot: Box<Slot>,
    },
    /// A datagram and when it was received (real time).
    Datagram(SessionId, Vec<u8>, Instant),
    HangUp(SessionId),
    Stop,
}

struct Slot {
    session: Box<FaxSession>,
    udptl: Udptl,
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    events: mpsc::UnboundedSender<Event>,
    recv_task: tokio::task::JoinHandle<()>,
}

/// A session running in a driver: its events arrive here.
#[derive(Debug)]
pub struct SessionHandle {
    /// Its id.
    pub id: SessionId,
    events: mpsc::UnboundedReceiver<Event>,
}

impl SessionHandle {
    /// The next event; None once the session has gone.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Waits for phase E.
    pub async fn finished(&mut self) -> Option<FaxResult> {
        while let Some(e) = self.events.recv().await {
            if let Event::Finished(r) = e {
                return Some(r);
            }
        }
        None
    }
}

struct ShardStats {
    hist: Histogram,
    cpu: Duration,
}

struct Shard {
    cmd: std_mpsc::Sender<Cmd>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<Mutex<ShardStats>>,
}

/// Many sessions on a few engine threads.
pub struct Driver {
    shards: Vec<Shard>,
    next_id: AtomicU64,
    epoch: Instant,
    scale: f64,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("shards", &self.shards.len()).field("scale", &self.scale).finish()
    }
}

impl Driver {
    /// Starts the engine threads. Returns the driver and the simulated time
    /// of its first tick.
    pub fn start(cfg: DriverConfig) -> Result<(Self, Instant), Error> {
        if !(cfg.time_scale.is_finite() && (1.0..=1000.0).contains(&cfg.time_scale)) {
            return Err(Error::InvalidSetting("time scale must be between 1 and 1000"));
        }
        if !(1..=256).contains(&cfg.shards) {
            return Err(Error::InvalidSetting("shards must be between 1 and 256"));
        }
        let epoch = Instant::now();
        let mut shards = Vec::with_capacity(cfg.shards);
        for i in 0..cfg.shards {
            let (tx, rx) = std_mpsc::channel();
            let stats = Arc::new(Mutex::new(ShardStats { hist: Histogram::new(), cpu: Duration::ZERO }));
            let st = stats.clone();
            let scale = cfg.time_scale;
            // Each shard ticks at its own phase of the 20 ms period, so that
            // the shards' work is spread over the period instead of every
            // shard waking at the same instant and queueing for the CPU.
            let phase = TICK.div_f64(scale).mul_f64(i as f64 / cfg.shards as f64);
            let thread = std::thread::Builder::new()
                .name(format!("fax-engine-{i}"))
                .spawn(move || engine(rx, st, epoch, phase, scale))?;
            shards.push(Shard { cmd: tx, thread: Some(thread), stats });
        }
        Ok((Self { shards, next_id: AtomicU64::new(1), epoch, scale: cfg.time_scale }, epoch))
    }

    /// The simulated time now (for creating sessions).
    pub fn now(&self) -> Instant {
        self.epoch + self.epoch.elapsed().mul_f64(self.scale)
    }

    fn shard(&self, id: SessionId) -> &Shard {
        &self.shards[(id.0 % self.shards.len() as u64) as usize]
    }

    /// Runs `session` over `socket` (bound) to `peer`, with `udptl` framing.
    /// Must be called inside a tokio runtime.
    pub fn add(
        &self,
        session: FaxSession,
        udptl: Udptl,
        socket: UdpSocket,
        peer: SocketAddr,
    ) -> Result<SessionHandle, Error> {
        let id = SessionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let socket = Arc::new(socket);
        let (etx, erx) = mpsc::unbounded_channel();
        let sock = socket.clone();
        let cmd = self.shard(id).cmd.clone();
        let recv_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                match sock.recv_from(&mut buf).await {
                    Ok((n, _from)) => {
                        if cmd.send(Cmd::Datagram(id, buf[..n].to_vec(), Instant::now())).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        // ICMP port unreachable and the like: keep listening.
                        tracing::debug!("udptl receive: {e}");
                        tokio::task::yield_now().await;
                    }
                }
            }
        });
        // The engine aborts the receive task when the session ends.
        let slot = Slot { session: Box::new(session), udptl, socket, peer, events: etx, recv_task };
        self.shard(id)
            .cmd
            .send(Cmd::Add { id, slot: Box::new(slot) })
            .map_err(|_| Error::Spandsp("engine thread gone"))?;
        Ok(SessionHandle { id, events: erx })
    }

    /// Clears the call of session `id` (as on a BYE).
    pub fn hang_up(&self, id: SessionId) {
        let _ = self.shard(id).cmd.send(Cmd::HangUp(id));
    }

    /// Lateness so far, over all shards.
    pub fn lateness(&self) -> Lateness {
        let mut hist = Histogram::new();
        let mut cpu = Duration::ZERO;
        for s in &self.shards {
            let g = match s.stats.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            hist.merge(&g.hist);
            cpu += g.cpu;
        }
        Lateness {
            ticks: hist.total(),
            p50: hist.percentile(0.50),
            p99: hist.percentile(0.99),
            p999: hist.percentile(0.999),
            max: Duration::from_micros(hist.max_us),
            engine_cpu: cpu,
        }
    }

    /// Stops the engine threads (sessions still running are dropped).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        for s in &self.shards {
            let _ = s.cmd.send(Cmd::Stop);
        }
        for s in &mut self.shards {
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One shard's loop: its ticks fall `phase` after the driver's tick
/// instants; simulated time is counted from the driver's `epoch`.
fn engine(rx: std_mpsc::Receiver<Cmd>, stats: Arc<Mutex<ShardStats>>, epoch: Instant, phase: Duration, scale: f64) {
    let mut slots: HashMap<SessionId, Slot> = HashMap::new();
    let real_tick = TICK.div_f64(scale);
    let mut tick_no: u32 = 0;
    let mut hist = Histogram::new();
    loop {
        tick_no = tick_no.saturating_add(1);
        let deadline = epoch + phase + real_tick * tick_no;
        let now_real = Instant::now();
        if deadline > now_real {
            std::thread::sleep(deadline - now_real);
        }
        // Commands and datagrams that arrived since the last tick.
        loop {
            let started = Instant::now();
            let sim_now = epoch + (started - epoch).mul_f64(scale);
            match rx.try_recv() {
                Ok(Cmd::Add { id, slot }) => {
                    slots.insert(id, *slot);
                }
                Ok(Cmd::Datagram(id, d, arrived)) => {
                    if let Some(slot) = slots.get_mut(&id) {
                        // Feed it at its arrival time, so that after a stall
                        // the catch-up ticks and the packets interleave as
                        // they happened (T.30 timers see the packets in time).
                        let at = epoch + arrived.saturating_duration_since(epoch).mul_f64(scale);
                        let at = at.min(sim_now);
                        match slot.udptl.decode(&d) {
                            Ok(list) => {
                                for r in list {
                                    let _ = slot.session.handle_ifp(at, r.seq, &r.ifp);
                                }
                            }
                            Err(e) => tracing::debug!("udptl: {e}"),
                        }
                    }
                }
                Ok(Cmd::HangUp(id)) => {
                    if let Some(slot) = slots.get_mut(&id) {
                        slot.session.hang_up();
                    }
                }
                Ok(Cmd::Stop) | Err(std_mpsc::TryRecvError::Disconnected) => {
                    for slot in slots.values() {
                        slot.recv_task.abort();
                    }
                    publish(&stats, &mut hist);
                    return;
                }
                Err(std_mpsc::TryRecvError::Empty) => break,
            }
        }
        let mut gone = Vec::new();
        for (id, slot) in slots.iter_mut() {
            let started = Instant::now();
            let sim_now = epoch + (started - epoch).mul_f64(scale);
            // Lateness of this session's tick: when it runs versus the
            // deadline of the shard tick it belongs to.
            hist.record(started.saturating_duration_since(deadline));
            slot.session.handle_timeout(sim_now);
            while let Some(tx) = slot.session.poll_transmit() {
                if let Transmit::Ifp { data, copies } = tx {
                    match slot.udptl.encode(&data) {
                        Ok(d) => {
                            for _ in 0..copies.max(1) {
                                if let Err(e) = slot.socket.try_send_to(&d, slot.peer) {
                                    tracing::debug!("udptl send: {e}");
                                }
                            }
                        }
                        Err(e) => tracing::warn!("udptl: {e}"),
                    }
                }
            }
            while let Some(ev) = slot.session.poll_event() {
                let _ = slot.events.send(ev);
            }
            if slot.session.is_finished() {
                gone.push(*id);
            }
        }
        for id in gone {
            if let Some(slot) = slots.remove(&id) {
                slot.recv_task.abort();
            }
        }
        if tick_no.is_multiple_of(25) {
            publish(&stats, &mut hist);
        }
    }
}

fn publish(stats: &Arc<Mutex<ShardStats>>, hist: &mut Histogram) {
    let cpu = crate::thread_cpu_time();
    let mut g = match stats.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    g.hist.merge(hist);
    g.cpu = cpu;
    hist.counts.fill(0);
    hist.max_us = 0;
}
