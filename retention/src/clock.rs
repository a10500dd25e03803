//! The injected clock, shared by the whole workspace.
//!
//! Directory, queue, CDR and retention code asks a [`Clock`] for the time;
//! the daemon passes [`SystemClock`], tests a [`FakeClock`] they move by hand.

use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, by the wall clock (which an operator or NTP can set).
    fn now(&self) -> Timestamp;
    /// Time elapsed since some fixed point, by a clock nobody sets: what
    /// the wall clock's moves are checked against.
    fn elapsed(&self) -> std::time::Duration;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn elapsed(&self) -> std::time::Duration {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        ORIGIN.get_or_init(std::time::Instant::now).elapsed()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<Mutex<(Timestamp, std::time::Duration)>>);

impl FakeClock {
    /// A clock standing at `t`.
    pub fn new(t: Timestamp) -> Self {
        FakeClock(Arc::new(Mutex::new((t, std::time::Duration::ZERO))))
    }

    /// Moves the clock forward by `d`: time passes.
    pub fn advance(&self, d: SignedDuration) {
        let mut t = self.0.lock().expect("clock poisoned");
        t.0 = t.0.checked_add(d).expect("fake clock out of range");
        t.1 += std::time::Duration::try_from(d).unwrap_or_default();
    }

    /// Sets the clock to `t`: time passes up to `t` (none passes going back).
    pub fn set(&self, t: Timestamp) {
        let mut c = self.0.lock().expect("clock poisoned");
        let passed = std::time::Duration::try_from(t.duration_since(c.0)).unwrap_or_default();
        c.1 += passed;
        c.0 = t;
    }

    /// Sets the wall clock by `d` with no time passing, as an operator or a
    /// broken time source does.
    pub fn jump(&self, d: SignedDuration) {
        let mut t = self.0.lock().expect("clock poisoned");
        t.0 = t.0.checked_add(d).expect("fake clock out of range");
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        self.0.lock().expect("clock poisoned").0
    }

    fn elapsed(&self) -> std::time::Duration {
        self.0.lock().expect("clock poisoned").1
    }
}
