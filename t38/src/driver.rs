//! The real-time driver: many T.38 fax sessions on UDP sockets.
//!
//! The tokio runtime owns the sockets only: one receive task per socket
//! forwards datagrams into a channel. All spandsp work happens on a
//! dedicated engine thread that owns every [`FaxSession`] and its
//! [`Udptl`] state and runs one shared 20 ms ticker: on each tick it feeds
//! received datagrams, runs the sessions' due ticks (catching up a late tick
//! in 160-sample steps), and sends their datagrams with a non-blocking
//! `try_send_to`. Nothing on the runtime ever waits for spandsp, and the
//! engine thread never waits for the runtime.
//!
//! Tick lateness (how long after its deadline a tick started) is recorded
//! for every tick; [`Driver::lateness`] reports percentiles.
//!
//! For tests and benchmarks the driver can run faster than real time
//! (`time_scale` > 1): both ends of a call must then run in the same driver,
//! since a real peer only runs in real time.

use std::collections::HashMap;
use std::net::SocketAddr;
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
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self { time_scale: 1.0 }
    }
}

/// Tick lateness percentiles, measured on the engine thread in real time.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Lateness {
    /// Ticks measured.
    pub ticks: u64,
    /// Median lateness.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Worst.
    pub max: Duration,
    /// CPU time of the engine thread so far.
    pub engine_cpu: Duration,
}

/// The id of a session in a driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(u64);

enum Cmd {
    Add { id: SessionId, slot: Box<Slot> },
    Datagram(SessionId, Vec<u8>),
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

#[derive(Default)]
struct Shared {
    lateness_us: Vec<u32>,
    engine_cpu: Duration,
}

/// Many sessions, one engine thread, one shared ticker.
#[derive(Debug)]
pub struct Driver {
    cmd: std_mpsc::Sender<Cmd>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Mutex<SharedDebug>>,
    next_id: std::sync::atomic::AtomicU64,
    epoch: Instant,
    scale: f64,
}

struct SharedDebug(Shared);

impl std::fmt::Debug for SharedDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("ticks", &self.0.lateness_us.len())
            .finish()
    }
}

impl Driver {
    /// Starts the engine thread. `epoch` is the simulated time of the first
    /// tick; create sessions with it as their start.
    pub fn start(cfg: DriverConfig) -> Result<(Self, Instant), Error> {
        if !(cfg.time_scale.is_finite() && cfg.time_scale >= 1.0 && cfg.time_scale <= 1000.0) {
            return Err(Error::InvalidSetting(
                "time scale must be between 1 and 1000",
            ));
        }
        let (tx, rx) = std_mpsc::channel();
        let shared = Arc::new(Mutex::new(SharedDebug(Shared::default())));
        let epoch = Instant::now();
        let sh = shared.clone();
        let scale = cfg.time_scale;
        let thread = std::thread::Builder::new()
            .name("fax-engine".into())
            .spawn(move || engine(rx, sh, epoch, scale))?;
        Ok((
            Self {
                cmd: tx,
                thread: Some(thread),
                shared,
                next_id: std::sync::atomic::AtomicU64::new(1),
                epoch,
                scale,
            },
            epoch,
        ))
    }

    /// The simulated time now (for creating sessions that join later).
    pub fn now(&self) -> Instant {
        self.epoch + self.epoch.elapsed().mul_f64(self.scale)
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
        let id = SessionId(
            self.next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
        let socket = Arc::new(socket);
        let (etx, erx) = mpsc::unbounded_channel();
        let sock = socket.clone();
        let cmd = self.cmd.clone();
        let recv_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                match sock.recv_from(&mut buf).await {
                    Ok((n, _from)) => {
                        if cmd.send(Cmd::Datagram(id, buf[..n].to_vec())).is_err() {
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
        let slot = Slot {
            session: Box::new(session),
            udptl,
            socket,
            peer,
            events: etx,
            recv_task,
        };
        let slot_cmd = Cmd::Add {
            id,
            slot: Box::new(slot),
        };
        self.cmd
            .send(slot_cmd)
            .map_err(|_| Error::Spandsp("engine thread gone"))?;
        Ok(SessionHandle { id, events: erx })
    }

    /// Clears the call of session `id` (as on a BYE).
    pub fn hang_up(&self, id: SessionId) {
        let _ = self.cmd.send(Cmd::HangUp(id));
    }

    /// Lateness so far.
    pub fn lateness(&self) -> Lateness {
        let g = match self.shared.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut v = g.0.lateness_us.clone();
        let engine_cpu = g.0.engine_cpu;
        drop(g);
        if v.is_empty() {
            return Lateness::default();
        }
        v.sort_unstable();
        let pct = |p: f64| {
            Duration::from_micros(u64::from(v[((v.len() - 1) as f64 * p).round() as usize]))
        };
        Lateness {
            ticks: v.len() as u64,
            p50: pct(0.5),
            p99: pct(0.99),
            max: pct(1.0),
            engine_cpu,
        }
    }

    /// Stops the engine thread (sessions still running are dropped).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.cmd.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn engine(
    rx: std_mpsc::Receiver<Cmd>,
    shared: Arc<Mutex<SharedDebug>>,
    epoch: Instant,
    scale: f64,
) {
    let mut slots: HashMap<SessionId, Slot> = HashMap::new();
    let real_tick = TICK.div_f64(scale);
    let mut tick_no: u64 = 0;
    let mut lateness: Vec<u32> = Vec::new();
    loop {
        tick_no += 1;
        let deadline = epoch + real_tick * u32::try_from(tick_no).unwrap_or(u32::MAX);
        let now_real = Instant::now();
        if deadline > now_real {
            std::thread::sleep(deadline - now_real);
        }
        let started = Instant::now();
        lateness.push(
            u32::try_from(started.saturating_duration_since(deadline).as_micros())
                .unwrap_or(u32::MAX),
        );
        let sim_now = epoch + (started - epoch).mul_f64(scale);
        // Commands and datagrams that arrived since the last tick.
        loop {
            match rx.try_recv() {
                Ok(Cmd::Add { id, slot }) => {
                    slots.insert(id, *slot);
                }
                Ok(Cmd::Datagram(id, d)) => {
                    if let Some(slot) = slots.get_mut(&id) {
                        match slot.udptl.decode(&d) {
                            Ok(list) => {
                                for r in list {
                                    let _ = slot.session.handle_ifp(sim_now, r.seq, &r.ifp);
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
                    publish(&shared, &mut lateness);
                    return;
                }
                Err(std_mpsc::TryRecvError::Empty) => break,
            }
        }
        let mut gone = Vec::new();
        for (id, slot) in slots.iter_mut() {
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
        if tick_no.is_multiple_of(50) {
            publish(&shared, &mut lateness);
        }
    }
}

fn publish(shared: &Arc<Mutex<SharedDebug>>, lateness: &mut Vec<u32>) {
    let cpu = crate::thread_cpu_time();
    let mut g = match shared.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    g.0.lateness_us.append(lateness);
    g.0.engine_cpu = cpu;
}
