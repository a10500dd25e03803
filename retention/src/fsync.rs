//! Group commit of directory fsyncs.
//!
//! A file created in a directory is durable only once the directory itself
//! is fsynced. When many sessions create files at once (a key and a spool
//! file for every accepted mail), one directory fsync that starts after a
//! file was linked makes that file's entry durable together with every other
//! linked before it: [`DirSync::sync`] waits for such an fsync, starting one
//! only when none that would cover the caller is already under way.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

/// Coalesces fsyncs of one directory.
#[derive(Debug)]
pub struct DirSync {
    dir: PathBuf,
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Callers so far; each takes the next number.
    requested: u64,
    /// Every caller up to this number is covered by a finished fsync.
    completed: u64,
    /// An fsync is under way.
    running: bool,
}

impl DirSync {
    /// For the directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), state: Mutex::new(State::default()), done: Condvar::new() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns once an fsync of the directory that began after this call
    /// has finished: whatever was linked into it before the call is durable.
    pub fn sync(&self) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.requested += 1;
        let mine = st.requested;
        loop {
            if st.completed >= mine {
                return Ok(());
            }
            if !st.running {
                // Covers every caller registered so far.
                st.running = true;
                let upto = st.requested;
                drop(st);
                let r = File::open(&self.dir).and_then(|d| d.sync_all());
                st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                st.running = false;
                if r.is_ok() {
                    st.completed = st.completed.max(upto);
                }
                self.done.notify_all();
                // On failure the caller sees its own error; waiters retry.
                r?;
                continue;
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_callers_all_return_after_a_covering_sync() {
        let dir = std::env::temp_dir().join(format!("faxgate-dirsync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Arc::new(DirSync::new(&dir));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let s = s.clone();
                let dir = dir.clone();
                std::thread::spawn(move || {
                    std::fs::write(dir.join(format!("f{i}")), b"x").unwrap();
                    s.sync().unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let st = s.state.lock().unwrap();
        assert_eq!((st.requested, st.completed, st.running), (16, 16, false));
        drop(st);
        assert!(DirSync::new(dir.join("missing")).sync().is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
