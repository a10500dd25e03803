//! What every accept loop needs, whatever it serves: a pause after a failed
//! `accept` and log lines that cannot flood the log.
//!
//! A listener whose `accept` fails (out of file descriptors: `EMFILE`,
//! `ENFILE`; out of memory) stays readable, so a loop that retries at once
//! spins and logs as fast as it can. [`AcceptErrors`] says how long to
//! wait (10 ms, doubled up to 1 s while the failures go on) and logs one
//! WARN line per [`INTERVAL`] with the count. [`Tally`] does the counting
//! for any event an attacker can repeat at will, such as refused
//! connections. Both take `now`.

use std::time::{Duration, Instant};

/// At most one log line per event kind in this time.
pub const INTERVAL: Duration = Duration::from_secs(10);

const FIRST_DELAY: Duration = Duration::from_millis(10);
const MAX_DELAY: Duration = Duration::from_secs(1);

/// Counts events and says when to log them: the first at once, then at
/// most one line per [`INTERVAL`] with the count since the last line.
#[derive(Debug, Default)]
pub struct Tally {
    last_line: Option<Instant>,
    pending: u64,
}

impl Tally {
    /// One more event at `now`: `Some(n)` when a line is due now, for the
    /// `n` events since the last one.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.pending += 1;
        match self.last_line {
            Some(t) if now.saturating_duration_since(t) < INTERVAL => None,
            _ => {
                self.last_line = Some(now);
                Some(std::mem::take(&mut self.pending))
            }
        }
    }

    /// The events not yet logged, forgotten.
    pub fn take(&mut self) -> u64 {
        std::mem::take(&mut self.pending)
    }
}

/// The failures of one accept loop.
#[derive(Debug)]
pub struct AcceptErrors {
    what: String,
    tally: Tally,
    delay: Duration,
    in_a_row: u64,
}

impl AcceptErrors {
    /// For the listener called `what` in the log ("smtp 0.0.0.0:25").
    pub fn new(what: impl Into<String>) -> Self {
        AcceptErrors { what: what.into(), tally: Tally::default(), delay: FIRST_DELAY, in_a_row: 0 }
    }

    /// An accept failed at `now` with `error`: logs when a line is due and
    /// returns how long to wait before accepting again.
    pub fn failed(&mut self, error: &std::io::Error, now: Instant) -> Duration {
        self.in_a_row += 1;
        let delay = self.delay;
        if let Some(n) = self.tally.note(now) {
            tracing::warn!(
                listener = %self.what,
                failures = n,
                "accept failed: {error}; {n} failure(s) since the last report, pausing {} ms",
                delay.as_millis()
            );
        }
        self.delay = (self.delay * 2).min(MAX_DELAY);
        delay
    }

    /// An accept succeeded: the pause starts small again.
    pub fn succeeded(&mut self) {
        if self.in_a_row > 0 {
            let unreported = self.tally.take();
            tracing::info!(
                listener = %self.what,
                "accepting again after {} failed accept(s) ({unreported} not reported before)",
                self.in_a_row
            );
            self.in_a_row = 0;
            self.delay = FIRST_DELAY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_at_once_then_one_per_interval_with_the_count() {
        let mut t = Tally::default();
        let t0 = Instant::now();
        assert_eq!(t.note(t0), Some(1));
        for i in 1..1000 {
            assert_eq!(t.note(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.note(t0 + INTERVAL), Some(1000));
        assert_eq!(t.note(t0 + INTERVAL + Duration::from_secs(1)), None);
        assert_eq!(t.take(), 1);
    }

    #[test]
    fn the_pause_doubles_to_a_second_and_starts_over_after_a_success() {
        let mut e = AcceptErrors::new("test");
        let err = std::io::Error::from_raw_os_error(24);
        let t0 = Instant::now();
        let pauses: Vec<_> = (0..9).map(|_| e.failed(&err, t0).as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        e.succeeded();
        assert_eq!(e.failed(&err, t0), FIRST_DELAY);
    }
}
