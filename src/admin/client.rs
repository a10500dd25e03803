//! The CLI's side of the admin socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::{Envelope, Response};

/// Why the daemon could not be asked.
#[derive(Debug)]
pub enum Unreachable {
    /// Nothing listens there (no daemon running).
    NoDaemon,
    /// The socket exists but may not be used (permissions), or broke.
    Failed(String),
}

/// Sends one request to the daemon at `socket`.
pub fn call(socket: &Path, env: &Envelope) -> Result<Response, Unreachable> {
    let mut s = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Err(Unreachable::NoDaemon);
        }
        Err(e) => return Err(Unreachable::Failed(format!("cannot use admin socket {}: {e}", socket.display()))),
    };
    let fail = |e: std::io::Error| Unreachable::Failed(format!("admin socket {}: {e}", socket.display()));
    let mut line = serde_json::to_vec(env).map_err(|e| Unreachable::Failed(e.to_string()))?;
    line.push(b'\n');
    s.write_all(&line).map_err(fail)?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).map_err(fail)?;
    serde_json::from_str(&answer)
        .map_err(|e| Unreachable::Failed(format!("admin socket {}: unreadable answer: {e}", socket.display())))
}
