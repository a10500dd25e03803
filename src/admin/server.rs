//! The admin socket in the daemon.
//!
//! A Unix socket, mode 0660 with the configured group (0600 without one),
//! so file permissions decide who may administer faxgate. Each connection
//! may send many requests, one JSON line each; a line over 16 MiB or one
//! that is not a request gets an error answer and the connection goes on.
//! Directory work runs on the blocking pool, never on the async runtime. A
//! failed `accept` (out of file descriptors) pauses the loop and is logged
//! once per interval with its count, as on the SMTP listeners.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::access::{Access, Peer, narrow};
use super::{Caller, Context, Envelope, Response, handle};
use crate::Error;

const MAX_LINE: u64 = 16 << 20;

/// Binds the admin socket at `path`: refuses when a live daemon answers
/// there, replaces a stale socket file, sets mode and group.
pub fn bind(path: &Path, group: Option<&str>) -> Result<UnixListener, Error> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::InUse { dir: path.to_owned(), pid: None });
        }
        std::fs::remove_file(path).map_err(Error::io("cannot remove stale admin socket", path.to_owned()))?;
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(Error::io("cannot create directory for admin socket", parent.to_owned()))?;
    }
    let listener = UnixListener::bind(path).map_err(Error::io("cannot bind admin socket", path.to_owned()))?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(Error::io("cannot set mode of admin socket", path.to_owned()))?;
    if let Some(g) = group {
        let gid = nix::unistd::Group::from_name(g)
            .ok()
            .flatten()
            .ok_or_else(|| Error::Invalid(format!("admin.group: group {g:?} does not exist")))?
            .gid;
        std::os::unix::fs::chown(path, None, Some(gid.as_raw()))
            .map_err(Error::io("cannot give the admin socket its group", path.to_owned()))?;
    }
    Ok(listener)
}

/// Serves the admin socket until `shutdown`; requests under way finish
/// first. Each connection acts for the principal its peer's credentials
/// map to ([`super::access`]).
pub async fn run(
    listener: UnixListener,
    path: PathBuf,
    ctx: Arc<Context>,
    access: Arc<Access>,
    shutdown: CancellationToken,
) {
    let mut conns = JoinSet::new();
    let mut errors = faxgate_smtp::listen::AcceptErrors::new(format!("admin socket {}", path.display()));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    errors.succeeded();
                    conns.spawn(connection(stream, ctx.clone(), access.clone(), shutdown.clone()));
                }
                Err(e) => {
                    let pause = errors.failed(&e, std::time::Instant::now());
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    while conns.join_next().await.is_some() {}
    let _ = std::fs::remove_file(&path);
}

async fn connection(stream: UnixStream, ctx: Arc<Context>, access: Arc<Access>, shutdown: CancellationToken) {
    let (principal, uid) = match stream.peer_cred() {
        Ok(c) => {
            let peer = Peer { uid: c.uid(), gid: c.gid(), pid: c.pid() };
            let p = tokio::task::spawn_blocking(move || access.principal(&peer))
                .await
                .unwrap_or_else(|e| Err(Error::Invalid(format!("cannot tell who is asking: {e}"))));
            (p, c.uid())
        }
        Err(e) => (Err(Error::Forbidden(format!("cannot tell who is asking (no peer credentials: {e})"))), 0),
    };
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    loop {
        let mut line = Vec::new();
        let mut limited = (&mut reader).take(MAX_LINE + 1);
        let n = tokio::select! {
            _ = shutdown.cancelled() => return,
            n = limited.read_until(b'\n', &mut line) => n,
        };
        match n {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "admin socket: read failed");
                return;
            }
        }
        let response = if line.len() as u64 > MAX_LINE {
            let r = Response::Error { kind: "invalid".into(), message: "request longer than 16 MiB".into() };
            let _ = write(&mut w, &r).await;
            return;
        } else {
            match serde_json::from_slice::<Envelope>(&line) {
                Err(e) => Response::Error { kind: "invalid".into(), message: format!("not an admin request: {e}") },
                Ok(env) => match principal
                    .as_ref()
                    .map_err(|e| Error::Forbidden(e.to_string()))
                    .and_then(|p| narrow(p, &env.scope))
                {
                    Err(e) => {
                        tracing::warn!(error = %e, "admin request refused");
                        let _ = write(&mut w, &Response::from_result(Err(e))).await;
                        if principal.is_err() {
                            return;
                        }
                        continue;
                    }
                    Ok(principal) => {
                        let ctx = ctx.clone();
                        let op = env.request.op();
                        tracing::debug!(principal = %principal, ?op, "admin request");
                        // The user's name is looked up (NSS) off the runtime too.
                        let run = move || handle(&ctx, &Caller::user(principal, uid), env.request);
                        match tokio::task::spawn_blocking(run).await {
                            Ok(r) => Response::from_result(r),
                            Err(e) => {
                                Response::Error { kind: "internal".into(), message: format!("request failed: {e}") }
                            }
                        }
                    }
                },
            }
        };
        if write(&mut w, &response).await.is_err() {
            return;
        }
    }
}

async fn write(w: &mut tokio::net::unix::OwnedWriteHalf, r: &Response) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    out.push(b'\n');
    w.write_all(&out).await
}
