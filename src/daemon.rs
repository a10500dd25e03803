//! `faxgate serve`: the daemon's wiring.
//!
//! Opens the store, serves the admin socket, and follows systemd's notify
//! protocol: `READY=1` once it serves, `RELOADING=1` while it rereads its
//! configuration on SIGHUP, `STOPPING=1` on SIGTERM or SIGINT, `WATCHDOG=1`
//! at half the watchdog interval when the unit sets one. It prints
//! `faxgate: <what> <where>` for each listener and `faxgate: ready` on
//! standard output, which tests and scripts wait for.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Status};
use crate::clock::SystemClock;
use crate::config::{Config, Origin};
use crate::directory::Directory;
use crate::store::Store;

/// Changes the log filter of the running daemon.
pub type SetLogLevel = Box<dyn Fn(&str) -> anyhow::Result<()> + Send + Sync>;

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd NOTIFY_SOCKET is unset and this does nothing.
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "faxgate: {line}");
    let _ = out.flush();
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn serve(
    config: Config,
    origin: Origin,
    config_path: Option<PathBuf>,
    set_log_level: SetLogLevel,
) -> anyhow::Result<()> {
    let started = jiff::Timestamp::now();
    let store = {
        let storage = config.storage.clone();
        tokio::task::spawn_blocking(move || Store::open(&storage.data_dir, &storage.key_dir())).await??
    };
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(SystemClock);
    let directory = Directory::open(&store, clock.clone())?;
    for w in config.retention.check()? {
        tracing::warn!("{w}");
    }
    let socket_path = config.admin.socket.clone();
    let listener = admin::server::bind(&socket_path, config.admin.group.as_deref()).map_err(|e| match e {
        crate::Error::InUse { .. } => anyhow::anyhow!(
            "another faxgate daemon answers on the admin socket {}; stop it first",
            socket_path.display()
        ),
        e => e.into(),
    })?;
    let status = Status {
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        config: origin.to_string(),
        data_dir: config.storage.data_dir.display().to_string(),
        daemon: true,
        started: Some(started),
    };
    let ctx = Arc::new(admin::Context::new(&store, directory.clone(), config.retention.clone(), clock, status)?);

    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(ctx.sweeper.clone().run(ctx.wake.clone(), shutdown.clone()));
    tasks.spawn(admin::server::run(listener, socket_path.clone(), ctx, shutdown.clone()));

    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;

    let mut watchdog_usec = 0u64;
    let watchdog = sd_notify::watchdog_enabled(false, &mut watchdog_usec);
    let mut watchdog_tick = tokio::time::interval(std::time::Duration::from_micros(if watchdog {
        (watchdog_usec / 2).max(1)
    } else {
        3_600_000_000
    }));

    tracing::info!(config = %origin, data_dir = %config.storage.data_dir.display(), "faxgate started");
    announce(&format!("admin {}", socket_path.display()));
    announce(&format!("data {}", config.storage.data_dir.display()));
    announce("ready");
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("serving")]);

    let mut config = config;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading, sd_notify::NotifyState::monotonic_usec_now()
                    .unwrap_or(sd_notify::NotifyState::Status("reloading"))]);
                match Config::load(config_path.as_deref()) {
                    Ok((new, _)) => {
                        for what in config.restart_needed_for(&new) {
                            tracing::warn!(setting = what, "changed in the configuration; takes effect on restart");
                        }
                        if new.log.level != config.log.level {
                            match set_log_level(&new.log.level) {
                                Ok(()) => tracing::info!(level = %new.log.level, "log level changed"),
                                Err(e) => tracing::error!(error = %e, "cannot change log level"),
                            }
                        }
                        config = new;
                        tracing::info!("configuration reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "configuration not reloaded; the old one stays in force"),
                }
                notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("serving")]);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = watchdog_tick.tick(), if watchdog => notify(&[sd_notify::NotifyState::Watchdog]),
        }
    }

    tracing::info!("stopping");
    notify(&[sd_notify::NotifyState::Stopping]);
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    tokio::task::spawn_blocking(move || store.flush()).await??;
    tracing::info!("stopped");
    Ok(())
}
