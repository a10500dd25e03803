//! The injected clock, shared by the whole workspace.
//!
//! Directory, queue, CDR and retention code asks a [`Clock`] for the time;
//! the daemon passes [`SystemClock`], tests a [`FakeClock`] they move by hand.

use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<Mutex<Timestamp>>);

impl FakeClock {
    /// A clock standing at `t`.
    pub fn new(t: Timestamp) -> Self {
        FakeClock(Arc::new(Mutex::new(t)))
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: SignedDuration) {
        let mut t = self.0.lock().expect("clock poisoned");
        *t = t.checked_add(d).expect("fake clock out of range");
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        *self.0.lock().expect("clock poisoned") = t;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("clock poisoned")
    }
}
