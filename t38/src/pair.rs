//! Two fax sessions joined in memory on a simulated clock: the deterministic
//! harness behind the tests and the loopback diagnostic.
//!
//! Each direction of the link has a latency, a random extra delay (which
//! reorders packets), a loss rate and a seed. T.38 packets cross it as real
//! UDPTL datagrams (encoded and decoded by [`crate::udptl`]); audio crosses
//! it as G.711 packets. Time jumps from one deadline to the next, so a call
//! of a minute runs in milliseconds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::session::{Event, FaxResult, FaxSession, Transmit};
use crate::udptl::{ErrorCorrection, Udptl};
use crate::{Error, Transport};

/// One direction of the simulated network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// One-way delay.
    pub latency: Duration,
    /// Extra random delay, uniform in `0..=jitter` (reorders packets).
    pub jitter: Duration,
    /// Probability of losing a datagram, 0.0-1.0.
    pub loss: f64,
    /// UDPTL error correction used by the sender.
    pub ec: ErrorCorrection,
    /// UDPTL maximum datagram.
    pub max_datagram: usize,
    /// Seed of the loss and jitter generator.
    pub seed: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(20),
            jitter: Duration::ZERO,
            loss: 0.0,
            ec: ErrorCorrection::default(),
            max_datagram: crate::udptl::DEFAULT_MAX_DATAGRAM,
            seed: 1,
        }
    }
}

/// Which end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The first session given to [`Pair::new`].
    A,
    /// The second.
    B,
}

struct End {
    session: FaxSession,
    udptl: Udptl,
    events: Vec<(Duration, Event)>,
    silent: bool,
}

impl std::fmt::Debug for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("End").field("finished", &self.session.is_finished()).finish()
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    order: u64,
    to_b: bool,
    payload: Vec<u8>,
}

/// What a run of the pair produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Events of A with the simulated time they came at.
    pub a: Vec<(Duration, Event)>,
    /// Events of B.
    pub b: Vec<(Duration, Event)>,
    /// Simulated time when both had finished (or the run stopped).
    pub elapsed: Duration,
    /// Datagrams lost on the link.
    pub lost: u64,
    /// Datagrams delivered.
    pub delivered: u64,
}

impl Outcome {
    /// A's phase E result.
    pub fn a_result(&self) -> Option<&FaxResult> {
        result_of(&self.a)
    }

    /// B's phase E result.
    pub fn b_result(&self) -> Option<&FaxResult> {
        result_of(&self.b)
    }
}

fn result_of(ev: &[(Duration, Event)]) -> Option<&FaxResult> {
    ev.iter().find_map(|(_, e)| match e {
        Event::Finished(r) => Some(r),
        _ => None,
    })
}

/// Two sessions and the link between them.
#[derive(Debug)]
pub struct Pair {
    a: End,
    b: End,
    ab: LinkConfig,
    ba: LinkConfig,
    rng_ab: fastrand::Rng,
    rng_ba: fastrand::Rng,
    start: Instant,
    now: Instant,
    queue: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    lost: u64,
    delivered: u64,
    t38: bool,
}

impl Pair {
    /// Joins `a` and `b`, both created at `start`, with link settings per
    /// direction. Both must use the same transport.
    pub fn new(a: FaxSession, b: FaxSession, ab: LinkConfig, ba: LinkConfig, start: Instant, t38: bool) -> Self {
        let end = |s: FaxSession, cfg: &LinkConfig| End {
            session: s,
            udptl: Udptl::new(cfg.ec, cfg.max_datagram),
            events: Vec::new(),
            silent: false,
        };
        Self {
            a: end(a, &ab),
            b: end(b, &ba),
            rng_ab: fastrand::Rng::with_seed(ab.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            rng_ba: fastrand::Rng::with_seed(ba.seed.wrapping_mul(0xD1B5_4A32_D192_ED03)),
            ab,
            ba,
            start,
            now: start,
            queue: BinaryHeap::new(),
            order: 0,
            lost: 0,
            delivered: 0,
            t38,
        }
    }

    /// Convenience: the transport flag for [`Pair::new`].
    pub fn is_t38(t: &Transport) -> bool {
        matches!(t, Transport::T38 { .. })
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The session at `side`.
    pub fn session(&mut self, side: Side) -> &mut FaxSession {
        match side {
            Side::A => &mut self.a.session,
            Side::B => &mut self.b.session,
        }
    }

    /// Events seen so far at `side`.
    pub fn events(&self, side: Side) -> &[(Duration, Event)] {
        match side {
            Side::A => &self.a.events,
            Side::B => &self.b.events,
        }
    }

    /// From now on `side` neither sends nor is stepped: a peer gone silent.
    pub fn silence(&mut self, side: Side) {
        match side {
            Side::A => self.a.silent = true,
            Side::B => self.b.silent = true,
        }
    }

    /// True when both sessions (or the one still speaking) have finished.
    pub fn done(&self) -> bool {
        (self.a.silent || self.a.session.is_finished()) && (self.b.silent || self.b.session.is_finished())
    }

    /// Advances to the next deadline and processes it. False when nothing is
    /// left to do.
    pub fn step(&mut self) -> bool {
        let mut next: Option<Instant> = None;
        for end in [&self.a, &self.b] {
            if !end.silent
                && let Some(t) = end.session.poll_timeout()
            {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        if let Some(Reverse(p)) = self.queue.peek() {
            next = Some(next.map_or(p.at, |n| n.min(p.at)));
        }
        let Some(next) = next else { return false };
        self.now = self.now.max(next);
        let now = self.now;
        // Deliver what has arrived.
        while self.queue.peek().is_some_and(|Reverse(p)| p.at <= now) {
            let Some(Reverse(p)) = self.queue.pop() else {
                break;
            };
            let end = if p.to_b { &mut self.b } else { &mut self.a };
            if end.silent {
                continue;
            }
            self.delivered += 1;
            if self.t38 {
                match end.udptl.decode(&p.payload) {
                    Ok(list) => {
                        for r in list {
                            // spandsp refusing a packet is logged by it; go on.
                            let _ = end.session.handle_ifp(now, r.seq, &r.ifp);
                        }
                    }
                    Err(e) => tracing::debug!("pair: dropped datagram: {e}"),
                }
            } else {
                let _ = end.session.handle_audio(now, &p.payload);
            }
        }
        for side in [Side::A, Side::B] {
            self.service(side);
        }
        true
    }

    fn service(&mut self, side: Side) {
        let now = self.now;
        let elapsed = self.elapsed();
        let (end, cfg, rng, to_b) = match side {
            Side::A => (&mut self.a, &self.ab, &mut self.rng_ab, true),
            Side::B => (&mut self.b, &self.ba, &mut self.rng_ba, false),
        };
        if end.silent {
            return;
        }
        end.session.handle_timeout(now);
        while let Some(ev) = end.session.poll_event() {
            end.events.push((elapsed, ev));
        }
        while let Some(tx) = end.session.poll_transmit() {
            let (payload, copies) = match tx {
                Transmit::Ifp { data, copies } => match end.udptl.encode(&data) {
                    Ok(d) => (d, copies),
                    Err(e) => {
                        tracing::warn!("pair: cannot send IFP: {e}");
                        continue;
                    }
                },
                Transmit::Audio(a) => (a, 1),
            };
            for _ in 0..copies.max(1) {
                if cfg.loss > 0.0 && rng.f64() < cfg.loss {
                    self.lost += 1;
                    continue;
                }
                let jitter = if cfg.jitter.is_zero() { Duration::ZERO } else { cfg.jitter.mul_f64(rng.f64()) };
                self.order += 1;
                self.queue.push(Reverse(InFlight {
                    at: now + cfg.latency + jitter,
                    order: self.order,
                    to_b,
                    payload: payload.clone(),
                }));
            }
        }
    }

    /// Runs until both sessions finish or `limit` of simulated time passes.
    pub fn run(&mut self, limit: Duration) -> Result<Outcome, Error> {
        self.collect_events();
        while !self.done() {
            if self.elapsed() > limit || !self.step() {
                return Err(Error::Timeout(limit));
            }
        }
        Ok(self.outcome())
    }

    /// Moves events the sessions queued outside [`Pair::step`] (after a
    /// [`FaxSession::hang_up`], say) into the record.
    pub fn collect_events(&mut self) {
        let elapsed = self.elapsed();
        for end in [&mut self.a, &mut self.b] {
            while let Some(ev) = end.session.poll_event() {
                end.events.push((elapsed, ev));
            }
        }
    }

    /// What happened so far.
    pub fn outcome(&self) -> Outcome {
        Outcome {
            a: self.a.events.clone(),
            b: self.b.events.clone(),
            elapsed: self.elapsed(),
            lost: self.lost,
            delivered: self.delivered,
        }
    }
}
