//! `faxgate serve`: the daemon's wiring.
//!
//! Opens the store, serves the admin socket, and follows systemd's notify
//! protocol: `READY=1` once it serves, `RELOADING=1` while it rereads its
//! configuration on SIGHUP, `STOPPING=1` and `STATUS=draining: N calls` on
//! SIGTERM or SIGINT (see [`stop`]), `WATCHDOG=1`
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
use crate::config::{SmtpConfig, SmtpMode};
use crate::directory::Directory;
use crate::mail::{MailPolicy, Spool, dmarc::Dmarc};
use crate::sockets::Inherited;
use crate::store::Store;
use faxgate_smtp::SessionConfig;
use faxgate_smtp::server::{Listener, Tls};

/// The way out for faxgate's own mail.
async fn outgoing(c: &Config) -> anyhow::Result<faxgate_smtp::outgoing::Outgoing> {
    use faxgate_smtp::outgoing::Outgoing;
    let d = crate::config::preflight::mail_destination(c).map_err(|p| anyhow::anyhow!("{p}"))?;
    Ok(tokio::task::spawn_blocking(move || Outgoing::new(&d)).await??)
}

/// The soft and hard limits on open files of this process.
fn fd_limits() -> (u64, u64) {
    use nix::sys::resource::{Resource, getrlimit};
    getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024))
}

/// Binds the SMTP listeners of the configuration, each with what it is
/// announced as (`smtp`, `submission`, `smtps`); `total` connections at
/// once in all.
async fn smtp_listeners(
    c: &SmtpConfig,
    origin: &Origin,
    total: usize,
    inherited: &Inherited,
) -> anyhow::Result<(Vec<(&'static str, Listener)>, Option<Arc<faxgate_smtp::tls::Certificate>>)> {
    let certificate = crate::config::preflight::tls_certificate(c, origin).map_err(|p| anyhow::anyhow!("{p}"))?;
    let acceptor = certificate.as_ref().map(|c| c.acceptor());
    let limits = c.limits();
    let mut out = Vec::new();
    for l in &c.listen {
        let socket = match inherited.take_tcp(l.address) {
            Some(s) => {
                s.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(s)?
            }
            None => tokio::net::TcpListener::bind(l.address)
                .await
                .with_context(|| format!("cannot listen for SMTP on {}", l.address))?,
        };
        let (what, tls) = match (l.mode, &acceptor) {
            (SmtpMode::Smtps, Some(a)) => ("smtps", Tls::Implicit(a.clone())),
            (SmtpMode::Submission, Some(a)) => ("submission", Tls::StartTls(a.clone())),
            (SmtpMode::Smtp, Some(a)) => ("smtp", Tls::StartTls(a.clone())),
            (SmtpMode::Smtp, None) => ("smtp", Tls::None),
            (mode, None) => anyhow::bail!("SMTP listener {} in mode {mode:?} needs a TLS certificate", l.address),
        };
        let config = SessionConfig {
            hostname: c.hostname.clone(),
            limits: limits.clone(),
            starttls: false,
            auth_required: l.mode != SmtpMode::Smtp,
        };
        let max_connections = l.max_connections.unwrap_or(total).min(total);
        out.push((what, Listener { socket, config, tls, max_connections }));
    }
    Ok((out, certificate))
}

/// On the embedded default: creates the configured certificate and key,
/// self-signed for localhost, when they do not exist yet.
fn demo_certificate(c: &SmtpConfig) -> anyhow::Result<()> {
    let (Some(cert), Some(key)) = (&c.certificate, &c.key) else { return Ok(()) };
    if cert.exists() && key.exists() {
        return Ok(());
    }
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .context("cannot make a self-signed certificate")?;
    for (path, pem, mode) in [(cert, made.cert.pem(), 0o644), (key, made.key_pair.serialize_pem(), 0o600)] {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        f.write_all(pem.as_bytes())?;
    }
    tracing::info!(certificate = %cert.display(), "made a self-signed certificate for the embedded default");
    Ok(())
}

/// Copies the trees' manifests beside the store every few seconds while
/// they change, so that writes lost by the store are found at the next start.
async fn witness(store: Store, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.write_witness()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot copy the store's manifests beside it"),
            Err(e) => tracing::error!(error = %e, "manifest task failed"),
        }
    }
}

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

/// How `faxgate serve` was asked to run.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Serve a store that verification found damaged (for salvage): the
    /// retention sweeper does not run.
    pub allow_damaged: bool,
}

/// Opens the store of `config` and verifies it (`faxgate store verify`):
/// the store, and what verification found.
pub fn open_verified(config: &Config) -> anyhow::Result<(Store, crate::store::verify::VerifyReport)> {
    let storage = &config.storage;
    let store = Store::open_sized(
        &storage.data_dir,
        &storage.key_dir(),
        crate::retention::key_names(&config.retention),
        storage.cache_mib,
    )?;
    let destroyed = crate::retention::destroyed_keys(&store)?;
    let report = crate::store::verify::verify_to(&store, &destroyed, crate::store::verify::Depth::Start)?;
    Ok((store, report))
}

/// Says so when numbers, addresses and names are written in clear.
fn warn_personal_data(log: &crate::config::LogConfig) {
    if log.personal_data {
        tracing::warn!(
            "log.personal_data = true: fax numbers, mail addresses and names are written to the log in clear"
        );
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn serve(
    config: Config,
    origin: Origin,
    config_path: Option<PathBuf>,
    set_log_level: SetLogLevel,
    options: ServeOptions,
) -> anyhow::Result<()> {
    let started = jiff::Timestamp::now();
    let inherited = Arc::new(Inherited::from_env().context("cannot take the sockets the service manager passed")?);
    for w in config.retention.check()? {
        tracing::warn!("{w}");
    }
    // What check-config checks beyond the file, all reported at once.
    let mut problems = crate::config::preflight::preflight(&config, &origin);
    if !problems.is_empty() {
        if let Ok((text, _)) = Config::source(config_path.as_deref()) {
            crate::config::locate(&mut problems, &text);
        }
        return Err(crate::config::report(&origin, &problems).into());
    }
    let (store, verified) = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || open_verified(&config)).await??
    };
    faxgate_retention::logid::install(crate::store::layout::log_key(&store), config.log.personal_data);
    warn_personal_data(&config.log);
    for fault in &verified.key_faults {
        tracing::error!(fault = %fault, "a key is damaged: its owner's data cannot be opened until it is restored");
    }
    if !verified.ok {
        for d in &verified.damage {
            tracing::error!(damage = %d, "the store is damaged");
        }
        if !options.allow_damaged {
            anyhow::bail!(
                "the store in {} is damaged; faxgate does not run on it (nothing was changed):\n  {}\n\
                 Restore it from a backup (faxgate restore), or start with --allow-damaged to salvage what is \
                 readable (the retention sweeper does not run then).",
                config.storage.data_dir.display(),
                verified.damage.join("\n  ")
            );
        }
        tracing::error!("serving a damaged store (--allow-damaged): the retention sweeper does not run");
    }
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(SystemClock);
    let directory = Directory::open(&store, clock.clone())?;
    let socket_path = config.admin.socket.clone();
    let listener = admin::server::bind(&socket_path, config.admin.group.as_deref()).map_err(|e| match e {
        crate::Error::InUse { .. } => anyhow::anyhow!(
            "another faxgate daemon answers on the admin socket {}; stop it first",
            socket_path.display()
        ),
        e => e.into(),
    })?;
    let status = Status {
        version: concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("FAXGATE_COMMIT"), ")").into(),
        pid: std::process::id(),
        config: origin.to_string(),
        data_dir: config.storage.data_dir.display().to_string(),
        daemon: true,
        started: Some(started),
        damage: verified.damage.clone(),
        key_faults: verified.key_faults.clone(),
        clock_suspended: None,
        restart_needed: Vec::new(),
    };
    let retention = crate::retention::Retention::new(&store, &directory, config.retention.clone(), clock.clone())?;
    if let Some(s) = retention.clock_watch().check()? {
        tracing::error!(since = %s.since, reason = %s.reason, "erasure of CDRs and accounts is suspended until the time is confirmed (faxgate retention confirm-clock)");
    }
    let sweeper = retention.sweeper(clock.clone());
    let mut ctx = admin::Context::new(&store, directory.clone(), retention, sweeper, status)?;
    ctx.dns_servers = config.smtp.dns_servers.clone();
    ctx.operator_tokens = config.api.operator_tokens;

    let shutdown = CancellationToken::new();
    // Cancelled when a stop begins: no more mail is taken (see `stop`).
    let drain = shutdown.child_token();
    let mut tasks = tokio::task::JoinSet::new();
    if verified.ok {
        tasks.spawn(ctx.sweeper.clone().run(ctx.wake.clone(), shutdown.clone()));
    }
    tasks.spawn(witness(store.clone(), shutdown.clone()));
    let sweep = ctx.wake.clone();
    if origin == Origin::Embedded {
        demo_certificate(&config.smtp)?;
    }
    let (fd_soft, fd_hard) = fd_limits();
    let smtp_total = config.smtp.max_connections_for(fd_soft);
    tracing::info!(
        soft = fd_soft,
        hard = fd_hard,
        smtp_connections = smtp_total,
        "open files at most {fd_soft} (hard limit {fd_hard}); SMTP connections at most {smtp_total} at once"
    );
    if config.smtp.max_connections.is_some() && smtp_total > SmtpConfig::default().max_connections_for(fd_soft) {
        tracing::warn!(
            "smtp.max_connections = {smtp_total} is more than {fd_soft} open files allow; \
             connections beyond them wait until others close"
        );
    }
    let (smtp, certificate) = smtp_listeners(&config.smtp, &origin, smtp_total, &inherited).await?;
    let smtp_addresses: Vec<String> = smtp
        .iter()
        .map(|(what, l)| format!("{what} {}", l.socket.local_addr().map(|a| a.to_string()).unwrap_or_default()))
        .collect();
    let outgoing = outgoing(&config).await?;
    let outbox = crate::mail::outbox::Outbox::open_with(&store, clock.clone(), config.mail.retry_delays.clone())?;
    tasks.spawn(outbox.clone().run(outgoing, shutdown.clone()));
    let outbox_handle = outbox.clone();
    let hostname = &config.smtp.hostname;
    let policy = Arc::new(MailPolicy::new(directory.clone()));
    let dmarc = Dmarc::new(&config.smtp.dns_servers, hostname)?;
    let spool = Spool::open(&store, policy.clone(), dmarc, clock.clone(), hostname)?;
    let smtp_stats = Arc::new(faxgate_smtp::server::Stats::default());
    let guards = faxgate_smtp::server::Guards {
        stats: smtp_stats.clone(),
        connections: faxgate_smtp::server::ConnectionLimit::new(config.smtp.max_connections_per_address, smtp_total),
        auth: faxgate_smtp::AuthThrottle::new(config.smtp.auth_limits()),
        limits: faxgate_smtp::server::SessionLimits::new(config.smtp.limits()),
    };
    let smtp_guards = guards.clone();
    if !smtp.is_empty() {
        let listeners = smtp.into_iter().map(|(_, l)| l).collect();
        tasks.spawn(faxgate_smtp::server::run(
            listeners,
            policy,
            Arc::new(spool.clone()),
            guards,
            drain.clone(),
            shutdown.clone(),
        ));
    }
    let work_dir = config
        .fax
        .work_dir
        .clone()
        .or_else(|| std::env::var_os("RUNTIME_DIRECTORY").map(|d| PathBuf::from(d).join("work")))
        .unwrap_or_else(|| config.storage.data_dir.join("work"));
    let webhooks = crate::webhook::Webhooks::open(
        &store,
        directory.clone(),
        clock.clone(),
        config.webhooks.clone(),
        outbox.clone(),
    )?;
    tasks.spawn(webhooks.clone().run(shutdown.clone()));
    let parts = crate::gateway::Parts {
        webhooks: webhooks.clone(),
        store: store.clone(),
        directory: directory.clone(),
        spool: spool.clone(),
        outbox,
        clock: clock.clone(),
        media_clock: media_clock()?,
        config: config.fax.clone(),
        trunks: config.trunk.clone(),
        work_dir,
        sweep,
        inherited: inherited.clone(),
    };
    let (gateway, sip_addresses) = crate::gateway::Gateway::start(parts, shutdown.clone()).await?;
    for s in inherited.unused() {
        tracing::warn!("the service manager passed a socket ({s}) that no listener or trunk is configured for");
    }
    // The admin socket answers once the queue it steers runs (requests
    // made before wait in the socket's backlog).
    let health = crate::metrics::Health::default();
    let mut metrics_address = None;
    if let Some(addr) = config.metrics.listen {
        let listener = crate::metrics::http::bind(addr).await?;
        metrics_address = Some(listener.local_addr()?);
        let sources = crate::metrics::Sources::new(
            store.clone(),
            gateway.clone(),
            outbox_handle.clone(),
            ctx.retention.clone(),
            smtp_stats,
            clock.clone(),
            health.clone(),
        );
        tasks.spawn(crate::metrics::http::run(listener, sources, shutdown.clone()));
    }
    let gw = gateway.clone();
    let reloader = Reloader {
        gateway: gateway.clone(),
        certificate,
        smtp: smtp_guards,
        fd_soft,
        store: store.clone(),
        set_log_level,
        restart_needed: ctx.restart_needed.clone(),
    };
    ctx.queue = Some(crate::gateway::Queue::Running(gateway));
    ctx.webhooks = Some(webhooks);
    ctx.spool = Some(spool);
    ctx.outbox = Some(outbox_handle);
    let access = Arc::new(admin::access::Access::from_config(&config.admin)?);
    let ctx = Arc::new(ctx);
    let mut api_address = None;
    if let Some(addr) = config.api.listen {
        // Its own certificate, or the SMTP listeners' (renewed with theirs on reload).
        let own = crate::config::preflight::api_certificate(&config).map_err(|p| anyhow::anyhow!("{p}"))?;
        let cert = own.or_else(|| reloader.certificate.clone());
        let cert = cert.context("api.listen: the API is served over TLS only, and no certificate is set")?;
        let listener = crate::api::bind(addr).await?;
        api_address = Some(listener.local_addr()?);
        let app = crate::api::app(Arc::new(crate::api::Api::new(ctx.clone(), &config.api)), &config.api);
        tasks.spawn(crate::api::run(listener, cert.acceptor(), app, config.api.clone(), shutdown.clone()));
    }
    tasks.spawn(admin::server::run(listener, socket_path.clone(), ctx, access, shutdown.clone()));

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
    for a in smtp_addresses.iter().chain(&sip_addresses) {
        announce(a);
    }
    if let Some(a) = metrics_address {
        announce(&format!("metrics {a}"));
    }
    if let Some(a) = api_address {
        announce(&format!("api https://{a}"));
    }
    health.set_ready(true);
    announce("ready");
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("serving")]);

    let mut config = config;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading, sd_notify::NotifyState::monotonic_usec_now()
                    .unwrap_or(sd_notify::NotifyState::Status("reloading"))]);
                match Config::load(config_path.as_deref()) {
                    Ok((new, _)) => reload(&reloader, &mut config, new).await,
                    Err(e) => tracing::error!(error = %e, "configuration not reloaded; the old one stays in force"),
                }
                notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("serving")]);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = watchdog_tick.tick(), if watchdog => notify(&[sd_notify::NotifyState::Watchdog]),
        }
    }

    stop(Stop { gateway: gw, drain, shutdown, tasks, health, term, int, drain_timeout: config.fax.drain_timeout })
        .await;
    tokio::task::spawn_blocking(move || -> Result<(), crate::Error> {
        store.flush()?;
        store.write_witness()
    })
    .await??;
    tracing::info!("stopped");
    Ok(())
}

/// What a reload (SIGHUP) changes in the running daemon.
struct Reloader {
    gateway: crate::gateway::Gateway,
    /// The TLS certificate of the SMTP listeners, when they have one.
    certificate: Option<Arc<faxgate_smtp::tls::Certificate>>,
    /// The SMTP listeners' limits.
    smtp: faxgate_smtp::server::Guards,
    /// Open files allowed (the SMTP connections are capped by them).
    fd_soft: u64,
    store: Store,
    set_log_level: SetLogLevel,
    /// What `faxgate status` names as waiting for a restart.
    restart_needed: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Applies a reloaded configuration: the log level and personal data
/// setting, the TLS certificate (read again from its files, for new
/// sessions), `[fax]` (hold, retry schedules, documents, the drain; see
/// [`crate::gateway::Gateway::reload`]) and the trunks (added, removed,
/// changed; see `gateway::trunks`). Everything else that changed is named
/// at WARN and in `faxgate status` until a restart. `running` becomes what
/// now runs: the settings that wait for a restart keep their old values
/// there, so that a later reload still names them.
async fn reload(r: &Reloader, running: &mut Config, new: Config) {
    let mut restart: Vec<String> = running.restart_needed_for(&new).into_iter().map(str::to_owned).collect();
    if new.log.personal_data != running.log.personal_data {
        faxgate_retention::logid::install(crate::store::layout::log_key(&r.store), new.log.personal_data);
        warn_personal_data(&new.log);
        running.log.personal_data = new.log.personal_data;
    }
    if new.log.level != running.log.level {
        match (r.set_log_level)(&new.log.level) {
            Ok(()) => {
                tracing::info!(level = %new.log.level, "log level changed");
                running.log.level = new.log.level.clone();
            }
            Err(e) => tracing::error!(error = %e, "cannot change log level"),
        }
    }
    match (&r.certificate, &new.smtp.certificate, &new.smtp.key) {
        (Some(c), Some(cert), Some(key)) => match c.reload(cert, key) {
            Ok(()) => {
                tracing::info!(certificate = %cert.display(), "TLS certificate read again: new sessions get it");
                running.smtp.certificate = new.smtp.certificate.clone();
                running.smtp.key = new.smtp.key.clone();
            }
            Err(e) => tracing::error!(error = %e, "TLS certificate not reloaded; the one in use stays"),
        },
        (None, None, None) => {}
        _ => restart.push("smtp.certificate".into()),
    }
    let (o, n) = (&running.smtp, &new.smtp);
    if (o.limits(), o.auth_limits(), o.max_connections_per_address, o.max_connections)
        != (n.limits(), n.auth_limits(), n.max_connections_per_address, n.max_connections)
    {
        r.smtp.limits.set(n.limits());
        r.smtp.auth.set_limits(n.auth_limits());
        let total = n.max_connections_for(r.fd_soft);
        r.smtp.connections.set(n.max_connections_per_address, total);
        tracing::info!(
            connections = total,
            per_address = n.max_connections_per_address,
            "SMTP limits changed: new sessions and connections get them"
        );
        running.smtp = SmtpConfig {
            hostname: o.hostname.clone(),
            certificate: running.smtp.certificate.clone(),
            key: running.smtp.key.clone(),
            dns_servers: o.dns_servers.clone(),
            listen: o.listen.clone(),
            ..n.clone()
        };
    }
    restart.extend(r.gateway.reload(new.fax.clone()).into_iter().map(str::to_owned));
    running.fax = (*r.gateway.fax_config()).clone();
    for line in r.gateway.reload_trunks(new.trunk.clone()).await {
        tracing::info!("{line}");
    }
    running.trunk = new.trunk;
    for what in &restart {
        tracing::warn!(setting = %what, "changed in the configuration; takes effect on restart");
    }
    *r.restart_needed.lock().unwrap_or_else(|p| p.into_inner()) = restart;
    tracing::info!("configuration reloaded");
}

/// What [`stop`] ends.
struct Stop {
    gateway: crate::gateway::Gateway,
    drain: CancellationToken,
    shutdown: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
    health: crate::metrics::Health,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    drain_timeout: u64,
}

/// How long the listeners, the sweeper and the outbox are given to end
/// once the drain is over.
const TASKS_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A stop: no new work (SMTP answers 421, INVITEs 503 with Retry-After,
/// queued faxes wait), the calls under way get `fax.drain_timeout` to
/// finish (a second SIGTERM or SIGINT ends the wait), the rest are ended
/// with BYE ([`crate::gateway::stop`]); then everything else stops.
/// `STATUS=` says how many calls are left, and the service manager's
/// watchdog is kept fed meanwhile.
async fn stop(s: Stop) {
    let Stop { gateway, drain, shutdown, mut tasks, health, mut term, mut int, drain_timeout } = s;
    health.set_ready(false);
    let calls = gateway.calls_in_progress();
    tracing::info!(
        calls,
        drain_timeout,
        "stopping: no new mail or calls are taken; calls under way have {drain_timeout} s to finish"
    );
    notify(&[sd_notify::NotifyState::Stopping, sd_notify::NotifyState::Status(&format!("draining: {calls} calls"))]);
    drain.cancel();
    let mut watchdog_usec = 0u64;
    let feeder = sd_notify::watchdog_enabled(false, &mut watchdog_usec).then(|| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_micros((watchdog_usec / 2).max(1)));
            loop {
                tick.tick().await;
                notify(&[sd_notify::NotifyState::Watchdog]);
            }
        })
    });
    let drained = gateway
        .drain(
            std::time::Duration::from_secs(drain_timeout),
            |n| {
                notify(&[sd_notify::NotifyState::Status(&format!("draining: {n} calls"))]);
                tracing::info!(calls = n, "draining: {n} calls under way");
            },
            async {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                tracing::warn!("asked to stop again: calls under way are ended now");
            },
        )
        .await;
    tracing::info!(
        calls = drained.calls_at_start,
        ended_by_stop = drained.hung_up,
        "drain over: {} of {} calls ended by the stop",
        drained.hung_up,
        drained.calls_at_start
    );
    notify(&[sd_notify::NotifyState::Status("stopping")]);
    shutdown.cancel();
    if tokio::time::timeout(TASKS_GRACE, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!("some connections did not end within {} s of the stop; they are closed", TASKS_GRACE.as_secs());
        tasks.abort_all();
    }
    if let Some(f) = feeder {
        f.abort();
    }
}

/// The clock the fax leg's calls run on: real time. A build with the
/// `test-clock` feature (only `cargo test` makes one; see Cargo.toml) runs it
/// `FAXGATE_TEST_CLOCK_RATE` times faster, so that the integration tests fax
/// between two trunks of one daemon faster than real time.
fn media_clock() -> anyhow::Result<faxgate_t38::media::MediaClock> {
    use faxgate_t38::media::MediaClock;
    #[cfg(feature = "test-clock")]
    if let Some(rate) = std::env::var_os("FAXGATE_TEST_CLOCK_RATE") {
        let rate: f64 = rate.to_str().and_then(|r| r.parse().ok()).context("FAXGATE_TEST_CLOCK_RATE: not a number")?;
        tracing::warn!(rate, "test build: the fax media clock runs faster than real time");
        return Ok(MediaClock::scaled(rate)?);
    }
    Ok(MediaClock::real_time())
}
