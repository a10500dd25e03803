//! The `faxgate` binary: the daemon and its command line.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
mod cli;

use cli::{Cli, Command};
use faxgate::admin::{self, Envelope, Response, Status};
use faxgate::clock::SystemClock;
use faxgate::config::{Config, LogConfig, LogFormat, LogTarget, Origin};
use faxgate::daemon::{self, SetLogLevel};
use faxgate::directory::{Directory, Scope};
use faxgate::store::Store;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, reload};

/// jemalloc rather than glibc's malloc: it gives freed memory back to the
/// system, where glibc's per-thread arenas kept what each fax freed
/// (BENCHMARKS.md, "Memory over many faxes").
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("faxgate: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::CheckConfig { file } => check_config(file.as_deref().or(cli.config.as_deref())),
        Command::Serve { allow_damaged } => {
            let (config, origin) = Config::load(cli.config.as_deref())?;
            faxgate::document::worker::isolate_with(
                std::env::current_exe().context("cannot find faxgate's executable")?,
            );
            let set_level = init_logging(&config.log)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let options = daemon::ServeOptions { allow_damaged: *allow_damaged };
            runtime.block_on(daemon::serve(config, origin, cli.config.clone(), set_level, options))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Fax(cli::FaxCmd::Loopback(args)) => {
            cli::fax::run_loopback(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Render(args) => {
            faxgate::document::worker::isolate_with(
                std::env::current_exe().context("cannot find faxgate's executable")?,
            );
            cli::render::render(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Topdf(args) => {
            cli::render::topdf(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::RenderWorker => {
            faxgate::document::worker::serve()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { from, erase_expired } => restore(&cli, from, *erase_expired),
        Command::Manpages { out } => {
            let n = cli::manpages(out)?;
            println!("{n} man pages written to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            cli::completions(*shell);
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { name } => {
            let schema = faxgate::gdpr::schemas::schema(name).context("no such schema")?;
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(ExitCode::SUCCESS)
        }
        _ => admin_command(&cli),
    }
}

/// `faxgate restore`: the backup into the configured data directory, then
/// verified; with --erase-expired, swept before anything else uses it.
fn restore(cli: &Cli, from: &std::path::Path, erase_expired: bool) -> anyhow::Result<ExitCode> {
    let (config, _) = Config::load(cli.config.as_deref())?;
    let clock: std::sync::Arc<dyn faxgate::clock::Clock> = std::sync::Arc::new(SystemClock);
    let (data_dir, key_dir) = (&config.storage.data_dir, config.storage.key_dir());
    let backup = faxgate::store::backup::read_manifest(from)
        .with_context(|| format!("{} is not a faxgate backup", from.display()))?;
    // The backup is verified where it lies before anything is copied.
    {
        let store = Store::open_with(from, &from.join("keys"), faxgate::retention::key_names(&config.retention))?;
        let destroyed = faxgate::retention::destroyed_keys(&store)?;
        let r = faxgate::store::verify::verify(&store, &destroyed)?;
        if !r.ok {
            anyhow::bail!("the backup is damaged; nothing was restored:\n  {}", r.damage.join("\n  "));
        }
    }
    let report = faxgate::store::backup::restore(from, data_dir, &key_dir, clock.now(), erase_expired)?;
    let names = faxgate::retention::key_names(&config.retention);
    let store = Store::open_sized(data_dir, &key_dir, names, config.storage.cache_mib)?;
    let destroyed = faxgate::retention::destroyed_keys(&store)?;
    let verified = faxgate::store::verify::verify(&store, &destroyed)?;
    if !verified.ok {
        anyhow::bail!("the restored store does not verify:\n  {}", verified.damage.join("\n  "));
    }
    let mut erased = 0;
    if !report.expired.is_empty() {
        let directory = Directory::open(&store, clock.clone())?;
        let retention = faxgate::retention::Retention::new(&store, &directory, config.retention.clone(), clock)?;
        let entry = retention.sweeper(std::sync::Arc::new(SystemClock)).sweep()?;
        erased = entry.categories.iter().map(|c| c.keys_destroyed.len()).sum::<usize>();
    }
    store.write_witness()?;
    println!(
        "restored the backup of {} into {} ({} keys, {} files); {} key(s) past their deadline erased",
        backup.created,
        data_dir.display(),
        backup.keys.len(),
        backup.files,
        erased
    );
    Ok(ExitCode::SUCCESS)
}

/// As root, with the daemon stopped, the CLI does not open a data or key
/// directory that belongs to another user (the daemon's): what it wrote
/// there (a new key, a sled file) would be root's, and the daemon could
/// not read it afterwards. It says whose the directory is and how to run
/// the command as that user instead.
fn refuse_foreign_store(storage: &faxgate::config::StorageConfig) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    for dir in [storage.data_dir.clone(), storage.key_dir()] {
        let Ok(meta) = std::fs::metadata(&dir) else { continue };
        if meta.uid() != 0 {
            let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.uid()))
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| format!("uid {}", meta.uid()));
            anyhow::bail!(
                "the daemon is not running, and {} belongs to user {name}, not root: files this command \
                 made there would be root's, and the daemon could not read them; run it as {name} \
                 (sudo -u {name} faxgate ...), or start the daemon and run it again",
                dir.display()
            );
        }
    }
    Ok(())
}

/// `faxgate check-config`: the file parsed, then checked as `serve` checks
/// it before it starts ([`faxgate::config::preflight`]), and its trunk
/// hosts resolved; every problem printed with its line. Exit status 0 when
/// there are at most warnings.
fn check_config(path: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    use faxgate::config::preflight;
    let (text, origin) = Config::source(path)?;
    let (config, mut problems) = Config::check(&text);
    if let Some(c) = &config {
        problems.extend(preflight::preflight(c, &origin));
        problems.extend(preflight::trunk_warnings(c));
    }
    faxgate::config::locate(&mut problems, &text);
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    let (warnings, errors): (Vec<_>, Vec<_>) = problems.into_iter().partition(|p| p.warning);
    let lines = |ps: &[faxgate::config::Problem]| ps.iter().map(|p| format!("  {p}\n")).collect::<String>();
    if errors.is_empty() {
        match warnings.len() {
            0 => println!("{origin}: configuration is valid"),
            n => print!("{origin}: configuration is valid, with {n} warning(s):\n{}", lines(&warnings)),
        }
        Ok(ExitCode::SUCCESS)
    } else {
        print!("{origin}: configuration is not valid:\n{}{}", lines(&errors), lines(&warnings));
        Ok(ExitCode::FAILURE)
    }
}

fn init_logging(log: &LogConfig) -> anyhow::Result<SetLogLevel> {
    // The SIP library's dumps of every datagram stay off unless asked for by name.
    let filter = EnvFilter::builder().parse(faxgate_t38::sip::log_filter(&log.level)).context("log.level")?;
    let (filter, handle) = reload::Layer::new(filter);
    let journald = match log.target {
        LogTarget::Journald => true,
        LogTarget::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
        LogTarget::Stderr => false,
    };
    let output = match journald.then(tracing_journald::layer) {
        Some(Ok(layer)) => layer.with_syslog_identifier("faxgate".into()).boxed(),
        Some(Err(e)) if log.target == LogTarget::Journald => {
            anyhow::bail!("log.target = \"journald\" but the journal cannot be reached: {e}")
        }
        _ if log.format == LogFormat::Json => {
            tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(std::io::stderr).boxed()
        }
        _ => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
    };
    tracing_subscriber::registry().with(filter).with(output).try_init().context("cannot set up logging")?;
    Ok(Box::new(move |level: &str| {
        faxgate::config::check_log_filter(level).map_err(anyhow::Error::msg)?;
        let f = EnvFilter::builder().parse(faxgate_t38::sip::log_filter(level))?;
        handle.reload(f)?;
        Ok(())
    }))
}

fn admin_command(cli: &Cli) -> anyhow::Result<ExitCode> {
    let request = cli::request(cli)?.expect("local commands are handled before");
    let (config, origin) = Config::load(cli.config.as_deref())?;
    let scope = cli.as_tenant.clone().map(Scope::Tenant).unwrap_or(Scope::Operator);
    let envelope = Envelope { scope, request };
    let response = match admin::client::call(&config.admin.socket, &envelope) {
        Ok(r) => r,
        Err(admin::client::Unreachable::Failed(msg)) => anyhow::bail!(msg),
        Err(admin::client::Unreachable::NoDaemon) => {
            // No daemon: open the store ourselves.
            refuse_foreign_store(&config.storage)?;
            let names = faxgate::retention::key_names(&config.retention);
            let store =
                Store::open_sized(&config.storage.data_dir, &config.storage.key_dir(), names, config.storage.cache_mib)
                    .map_err(|e| match e {
                        faxgate::Error::InUse { pid, .. } => anyhow::anyhow!(
                            "a faxgate daemon{} holds the data directory {}, but its admin socket {} does not answer; \
                     is --config the daemon's configuration?",
                            pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                            config.storage.data_dir.display(),
                            config.admin.socket.display()
                        ),
                        e => e.into(),
                    })?;
            let clock: std::sync::Arc<dyn faxgate::clock::Clock> = std::sync::Arc::new(SystemClock);
            let directory = Directory::open(&store, clock.clone())?;
            let status = Status {
                version: concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("FAXGATE_COMMIT"), ")").into(),
                pid: std::process::id(),
                config: match &origin {
                    Origin::File(p) => p.display().to_string(),
                    Origin::Embedded => origin.to_string(),
                },
                data_dir: config.storage.data_dir.display().to_string(),
                daemon: false,
                started: None,
                // Erasing needs a store that verifies; other commands do not pay for it.
                damage: match envelope.request {
                    admin::Request::RetentionSweep => {
                        let destroyed = faxgate::retention::destroyed_keys(&store)?;
                        faxgate::store::verify::verify(&store, &destroyed)?.damage
                    }
                    _ => Vec::new(),
                },
                key_faults: Vec::new(),
                restart_needed: Vec::new(),
                clock_suspended: None,
            };
            let retention =
                faxgate::retention::Retention::new(&store, &directory, config.retention.clone(), clock.clone())?;
            let sweeper = retention.sweeper(clock);
            let ctx = admin::Context::new(&store, directory, retention, sweeper, status)?;
            // The store's files are open to this user: it acts as the
            // operator, narrowed to the tenant it asked for.
            let principal = admin::access::narrow(&admin::Principal::Operator, &envelope.scope)?;
            let caller = admin::Caller::user(principal, nix::unistd::geteuid().as_raw());
            Response::from_result(admin::handle(&ctx, &caller, envelope.request))
        }
    };
    match response {
        Response::Ok(v) => Ok(if cli::print(cli, v)? { ExitCode::SUCCESS } else { ExitCode::FAILURE }),
        Response::Error { kind, message } => {
            if cli.json {
                println!("{}", serde_json::json!({ "error": { "kind": kind, "message": message } }));
            }
            eprintln!("faxgate: error: {message}");
            Ok(ExitCode::FAILURE)
        }
    }
}
