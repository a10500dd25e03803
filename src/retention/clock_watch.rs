//! The clock is checked before anything is erased.
//!
//! faxgate keeps the latest wall-clock time it has seen in
//! `<data_dir>/clock-watch.json` (written durably at every check). A jump
//! forward beyond `retention.max_clock_jump` (default one day) since the
//! last run, or between two checks beyond what the monotonic clock says
//! passed, suspends the erasure of CDRs and accounts (documents and the
//! outbox go on) until an operator confirms the time (`faxgate retention
//! confirm-clock`); the suspension is logged at ERROR and shown by `faxgate
//! status`, `retention status` and the audit. A jump backwards is logged at
//! WARN: nothing is erased early by it, only late.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::clock::Clock;

const FILE: &str = "clock-watch.json";

/// Why erasure is suspended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    /// When the jump was seen (by the clock that jumped).
    pub since: Timestamp,
    /// What was seen.
    pub reason: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct WatchFile {
    /// The latest wall-clock time seen while the clock was trusted.
    latest: Option<Timestamp>,
    /// The latest wall-clock time seen at all (trusted or not): a clock
    /// behind it went back.
    #[serde(default)]
    latest_seen: Option<Timestamp>,
    /// Set while erasure is suspended.
    suspended: Option<Suspension>,
}

#[derive(Debug)]
struct State {
    file: WatchFile,
    /// The previous check in this process: wall clock and monotonic clock.
    last: Option<(Timestamp, Duration)>,
}

/// The clock watch of one data directory.
#[derive(Clone, Debug)]
pub struct ClockWatch {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    max_jump: SignedDuration,
    state: Arc<Mutex<State>>,
}

impl ClockWatch {
    /// The watch of `data_dir`, allowing jumps up to `max_jump`.
    pub fn open(data_dir: &Path, clock: Arc<dyn Clock>, max_jump: SignedDuration) -> Result<Self, Error> {
        let path = data_dir.join(FILE);
        let file = match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| Error::Codec { what: FILE.into(), source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => WatchFile::default(),
            Err(e) => return Err(Error::io("cannot read", path)(e)),
        };
        Ok(ClockWatch { path, clock, max_jump, state: Arc::new(Mutex::new(State { file, last: None })) })
    }

    fn save(&self, file: &WatchFile) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(file).map_err(|source| Error::Codec { what: FILE.into(), source })?;
        let tmp = self.path.with_extension("json.tmp");
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o640).open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            match self.path.parent() {
                Some(dir) => File::open(dir)?.sync_all(),
                None => Ok(()),
            }
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("cannot write", self.path.clone())(e));
        }
        Ok(())
    }

    /// Looks at the clock: returns the suspension in force, starting one if
    /// the clock jumped forward too far; records the time seen.
    pub fn check(&self) -> Result<Option<Suspension>, Error> {
        let now = self.clock.now();
        let mono = self.clock.elapsed();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let last = st.last.replace((now, mono));
        let mut file = st.file.clone();
        if last.is_none()
            && let Some(seen) = file.latest_seen
            && now.duration_since(seen) < -SignedDuration::from_secs(1)
        {
            tracing::warn!(
                last_seen = %seen,
                "the wall clock is behind the latest time seen before; nothing is erased early by it"
            );
        }
        if file.latest_seen.is_none_or(|l| now > l) {
            file.latest_seen = Some(now);
            self.save(&file)?;
            st.file.latest_seen = file.latest_seen;
        }
        if let Some(s) = &st.file.suspended {
            return Ok(Some(s.clone()));
        }
        let jump = match (last, file.latest) {
            // Between two checks of this process: the wall clock against the monotonic one.
            (Some((t0, m0)), _) => {
                let wall = now.duration_since(t0);
                let passed = SignedDuration::try_from(mono.saturating_sub(m0)).unwrap_or(SignedDuration::MAX);
                if wall < -SignedDuration::from_secs(1) {
                    tracing::warn!(by = %format!("{:#}", -wall), "the wall clock went back; nothing is erased early by it");
                }
                (wall > passed + self.max_jump).then(|| {
                    format!(
                        "the wall clock moved {:#} ahead while {:#} passed",
                        wall.round(jiff::Unit::Second).unwrap_or(wall),
                        passed.round(jiff::Unit::Second).unwrap_or(passed)
                    )
                })
            }
            // The first check of a run: against the latest trusted time seen before.
            (None, Some(latest)) => {
                let gap = now.duration_since(latest);
                (gap > self.max_jump).then(|| {
                    format!(
                        "the wall clock is {:#} ahead of the latest time seen before ({latest})",
                        gap.round(jiff::Unit::Second).unwrap_or(gap)
                    )
                })
            }
            (None, None) => None,
        };
        if let Some(reason) = jump {
            let s = Suspension { since: now, reason };
            tracing::error!(
                reason = %s.reason,
                "erasure of CDRs and accounts is suspended until the time is confirmed (faxgate retention confirm-clock)"
            );
            file.suspended = Some(s.clone());
            self.save(&file)?;
            st.file = file;
            return Ok(Some(s));
        }
        if file.latest.is_none_or(|l| now > l) {
            file.latest = Some(now);
            self.save(&file)?;
            st.file = file;
        }
        Ok(None)
    }

    /// The suspension in force, without looking at the clock.
    pub fn suspended(&self) -> Option<Suspension> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).file.suspended.clone()
    }

    /// An operator confirms that the clock is right: erasure resumes, and
    /// now is the latest time seen.
    pub fn confirm(&self) -> Result<Option<Suspension>, Error> {
        let now = self.clock.now();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let was = st.file.suspended.take();
        st.file.latest = Some(now);
        st.file.latest_seen = Some(now);
        st.last = Some((now, self.clock.elapsed()));
        let file = st.file.clone();
        self.save(&file)?;
        tracing::warn!(time = %now, was_suspended = was.is_some(), "the clock was confirmed by an operator");
        Ok(was)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;

    #[test]
    fn jumps_suspend_until_confirmed() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = FakeClock::new("2026-03-01T10:00:00Z".parse().unwrap());
        let day = SignedDuration::from_hours(24);
        let w = ClockWatch::open(tmp.path(), Arc::new(clock.clone()), day).unwrap();
        assert_eq!(w.check().unwrap(), None);
        // Time passing is no jump, however long.
        clock.advance(day * 3);
        assert_eq!(w.check().unwrap(), None);
        // The wall clock set 30 days back: no suspension (nothing erased early).
        clock.jump(-day * 30);
        assert_eq!(w.check().unwrap(), None);
        // Set 400 days ahead between checks: suspended, and it stays so.
        clock.jump(day * 430);
        let s = w.check().unwrap().expect("suspended");
        assert!(s.reason.contains("ahead while"), "{s:?}");
        assert_eq!(w.check().unwrap(), Some(s.clone()));
        // A new run reads the suspension back.
        let again = ClockWatch::open(tmp.path(), Arc::new(clock.clone()), day).unwrap();
        assert_eq!(again.suspended(), Some(s));
        again.confirm().unwrap();
        assert_eq!(again.check().unwrap(), None);
    }

    #[test]
    fn a_run_starting_far_ahead_of_the_last_is_suspended() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = FakeClock::new("2026-03-01T10:00:00Z".parse().unwrap());
        let day = SignedDuration::from_hours(24);
        ClockWatch::open(tmp.path(), Arc::new(clock.clone()), day).unwrap().check().unwrap();
        clock.jump(day * 400);
        let w = ClockWatch::open(tmp.path(), Arc::new(clock.clone()), day).unwrap();
        let s = w.check().unwrap().expect("suspended");
        assert!(s.reason.contains("ahead of the latest time seen before"), "{s:?}");
    }
}
