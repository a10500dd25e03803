//! The configuration: `/etc/faxgate/faxgate.toml`, or `--config PATH`, or,
//! when neither exists, the embedded default (`embedded.toml` beside this
//! file: data under `./faxgate-data`, listeners on loopback).
//!
//! Unknown keys are refused; every key has a default given by a function;
//! `faxgate.example.toml` at the top of the repository documents each key
//! and a test parses it. [`Config::parse`] reports every problem it finds,
//! each with its key path and line, not only the first.

mod check;
pub mod preflight;

pub(crate) use check::toml_line;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// The default configuration path.
pub const DEFAULT_PATH: &str = "/etc/faxgate/faxgate.toml";

/// The embedded default configuration.
pub const EMBEDDED: &str = include_str!("embedded.toml");

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where faxgate keeps its data.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The admin API on a Unix socket.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// How long data is kept.
    #[serde(default)]
    pub retention: crate::retention::Policy,
    /// The SMTP listener (mail to fax).
    #[serde(default)]
    pub smtp: SmtpConfig,
    /// Outgoing mail (received faxes, reports).
    #[serde(default)]
    pub mail: MailConfig,
    /// The fax side of the gateway: T.30 settings, pages, retries.
    #[serde(default)]
    pub fax: FaxConfig,
    /// The SIP trunks faxes arrive on and leave through.
    #[serde(default)]
    pub trunk: Vec<faxgate_t38::trunk::TrunkConfig>,
    /// Prometheus metrics and the health check over HTTP.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The HTTPS API for resellers and their customers.
    #[serde(default)]
    pub api: crate::api::ApiConfig,
}

/// `[metrics]`
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where the HTTP listener serving `/metrics` (Prometheus) and `/health`
    /// listens. Unset: no listener. It has no authentication: keep it on
    /// loopback or a management network.
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
}

/// `[fax]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaxConfig {
    /// Our station id (TSI when sending, CSI when receiving): at most 20
    /// characters, digits, `+` and spaces by convention.
    #[serde(default = "default_ident")]
    pub ident: String,
    /// The page header of tenants that have none of their own: a template
    /// (see [`crate::document::header`]), or empty for no header.
    #[serde(default = "default_header")]
    pub header: String,
    /// Offer error correction mode.
    #[serde(default = "default_true")]
    pub ecm: bool,
    /// Resolution of pages rendered from mail.
    #[serde(default)]
    pub resolution: crate::document::Resolution,
    /// How grey and colour in mailed documents become black and white.
    #[serde(default)]
    pub dither: crate::document::Dither,
    /// Which engine renders PDF attachments.
    #[serde(default)]
    pub pdf_renderer: crate::document::PdfRenderer,
    /// Most pages in one fax; longer documents are refused with a report.
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// Seconds before each retry after a busy line, no answer or a failed
    /// transfer: `[60, 300, 900]` means four attempts in all.
    #[serde(default = "default_retry_delays")]
    pub retry_delays: Vec<u64>,
    /// Schedules of their own for some causes, in place of `retry_delays`.
    #[serde(default)]
    pub retry_by_cause: RetryByCause,
    /// Attach the original document to a failure report.
    #[serde(default = "default_true")]
    pub attach_original_on_failure: bool,
    /// Put a cover page in front of faxes from mail, unless the account's
    /// setting or the mail's `X-Fax-Cover` header says otherwise.
    #[serde(default)]
    pub cover_page: bool,
    /// Hold the queue: accept and keep mail as usual, but render and call
    /// nothing until the daemon runs without it (maintenance of a trunk, or
    /// measuring intake alone, as Postfix's hold queue does).
    #[serde(default)]
    pub hold: bool,
    /// Seconds a stop (SIGTERM) gives the calls under way to finish before
    /// it ends them with BYE (they are then retried at the next start
    /// without using up an attempt). Keep it under the unit's
    /// `TimeoutStopSec` (90 s in the shipped unit).
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: u64,
    /// Days a destination's needs are remembered per tenant: one that took
    /// audio (T.38 refused), ECM off or a rate below 14,400 bit/s is called
    /// that way from the start until then (`faxgate learned list`); 0 learns
    /// nothing and uses nothing learned.
    #[serde(default = "default_learn_days")]
    pub learn_days: u32,
    /// Where the pages of a call in progress are kept as a file for the fax
    /// engine, and removed when the call ends. Unset: `$RUNTIME_DIRECTORY`
    /// (a tmpfs under systemd), else `<data_dir>/work`.
    #[serde(default)]
    pub work_dir: Option<PathBuf>,
    /// Address the media (RTP, UDPTL) sockets bind to.
    #[serde(default = "default_media_ip")]
    pub media_ip: std::net::IpAddr,
    /// Address announced in SIP and SDP when behind NAT.
    #[serde(default)]
    pub advertise: Option<std::net::IpAddr>,
}

/// Retry schedules by cause (`[fax.retry_by_cause]`), as HylaFAX keeps
/// one per condition: a busy line is worth calling again soon, a number
/// that does not answer less often. A cause with a schedule here counts its
/// own attempts: `busy = [120, 120, 300]` allows three retries after busy
/// lines, whatever else happened in between. A cause without one takes
/// `retry_delays`, indexed by the attempts made so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryByCause {
    /// After a busy line (SIP 486, 600).
    #[serde(default)]
    pub busy: Option<Vec<u64>>,
    /// After no answer (480, 408, or our CANCEL).
    #[serde(default)]
    pub no_answer: Option<Vec<u64>>,
    /// After a call that was answered but whose fax did not get through.
    #[serde(default)]
    pub transfer_failed: Option<Vec<u64>>,
    /// After a failure of the trunk or the network (503, timeouts).
    #[serde(default)]
    pub network: Option<Vec<u64>>,
}

impl RetryByCause {
    /// Every schedule set, with its key.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Vec<u64>)> {
        [
            ("busy", &self.busy),
            ("no_answer", &self.no_answer),
            ("transfer_failed", &self.transfer_failed),
            ("network", &self.network),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }

    /// The schedule of `cause` (a key above), if it has one.
    pub fn get(&self, cause: &str) -> Option<&[u64]> {
        self.iter().find(|(k, _)| *k == cause).map(|(_, v)| v.as_slice())
    }
}

fn default_ident() -> String {
    "faxgate".into()
}
fn default_header() -> String {
    crate::document::header::DEFAULT_TEMPLATE.into()
}
fn default_true() -> bool {
    true
}
fn default_drain_timeout() -> u64 {
    75
}
fn default_learn_days() -> u32 {
    30
}
fn default_max_pages() -> usize {
    50
}
fn default_retry_delays() -> Vec<u64> {
    vec![60, 300, 900]
}
fn default_media_ip() -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
}
impl FaxConfig {
    /// How a mail of `account` (of `tenant`) is made into pages: the
    /// account's paper, else the tenant's; everything else from `[fax]`.
    pub fn document_settings(
        &self,
        tenant: &crate::directory::Tenant,
        account: &crate::directory::Account,
    ) -> crate::document::Settings {
        let paper = match account.paper.unwrap_or(tenant.paper) {
            crate::directory::Paper::A4 => crate::document::Paper::A4,
            crate::directory::Paper::Letter => crate::document::Paper::Letter,
        };
        let mut s = crate::document::Settings {
            resolution: self.resolution,
            paper,
            dither: self.dither,
            pdf_renderer: self.pdf_renderer,
            ..Default::default()
        };
        s.limits.max_pages = self.max_pages;
        s
    }
}

impl Default for FaxConfig {
    fn default() -> Self {
        FaxConfig {
            ident: default_ident(),
            header: default_header(),
            ecm: true,
            resolution: Default::default(),
            dither: Default::default(),
            pdf_renderer: Default::default(),
            max_pages: default_max_pages(),
            retry_delays: default_retry_delays(),
            retry_by_cause: RetryByCause::default(),
            attach_original_on_failure: true,
            cover_page: false,
            hold: false,
            drain_timeout: default_drain_timeout(),
            learn_days: default_learn_days(),
            work_dir: None,
            media_ip: default_media_ip(),
            advertise: None,
        }
    }
}

/// How faxgate's own mail leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// Into a local Maildir.
    #[default]
    Maildir,
    /// Through an SMTP relay.
    Relay,
}

/// TLS to the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RelayTlsMode {
    /// STARTTLS, required.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// Plaintext: a relay on the same host only.
    None,
}

/// `[mail]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// "maildir" or "relay".
    #[serde(default)]
    pub transport: MailTransport,
    /// The Maildir; `<data_dir>/maildir` when not set.
    #[serde(default)]
    pub maildir: Option<PathBuf>,
    /// The relay's host name.
    #[serde(default)]
    pub relay_host: Option<String>,
    /// The relay's port.
    #[serde(default = "default_relay_port")]
    pub relay_port: u16,
    /// TLS to the relay.
    #[serde(default)]
    pub relay_tls: RelayTlsMode,
    /// AUTH user name at the relay.
    #[serde(default)]
    pub relay_user: Option<String>,
    /// A file holding the AUTH password (first line).
    #[serde(default)]
    pub relay_password_file: Option<PathBuf>,
    /// An extra trusted root certificate (PEM) for the relay.
    #[serde(default)]
    pub relay_ca: Option<PathBuf>,
    /// Seconds to wait for the relay.
    #[serde(default = "default_relay_timeout")]
    pub relay_timeout: u64,
    /// Seconds before each new attempt while the relay is down or answers
    /// 4xx; every 2 hours after the last; given up after 5 days.
    #[serde(default = "default_mail_retry_delays")]
    pub retry_delays: Vec<u64>,
}

fn default_mail_retry_delays() -> Vec<u64> {
    crate::mail::outbox::DEFAULT_RETRY_DELAYS.to_vec()
}

fn default_relay_port() -> u16 {
    587
}
fn default_relay_timeout() -> u64 {
    30
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            transport: MailTransport::Maildir,
            maildir: None,
            relay_host: None,
            relay_port: default_relay_port(),
            relay_tls: RelayTlsMode::Starttls,
            relay_user: None,
            relay_password_file: None,
            relay_ca: None,
            relay_timeout: default_relay_timeout(),
            retry_delays: default_mail_retry_delays(),
        }
    }
}

/// `[smtp]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// The name in the greeting, the EHLO reply and Received headers.
    #[serde(default = "default_smtp_hostname")]
    pub hostname: String,
    /// The TLS certificate chain (PEM) for STARTTLS and implicit TLS.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The largest message accepted, in octets.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: u64,
    /// Fax recipients per message.
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Refusals after which a session is closed.
    #[serde(default = "default_max_errors")]
    pub max_errors: u32,
    /// Seconds without input after which a session is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: u64,
    /// Header lines per message.
    #[serde(default = "default_max_header_lines")]
    pub max_header_lines: usize,
    /// Connections at once from one client address.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Connections at once on all listeners together. Unset: sized from
    /// the file-descriptor limit ([`SmtpConfig::max_connections_for`]).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Seconds the TLS handshake may take (implicit TLS, or after STARTTLS).
    #[serde(default = "default_tls_handshake_timeout")]
    pub tls_handshake_timeout: u64,
    /// Bytes per second a client must send while a command line, an AUTH
    /// response or a message is under way; 0: no minimum.
    #[serde(default = "default_min_rate")]
    pub min_rate: u32,
    /// Seconds of such time over which the rate is measured.
    #[serde(default = "default_rate_window")]
    pub rate_window: u64,
    /// Seconds before a failed AUTH is answered; doubled for each further
    /// failure from the address or for the user name.
    #[serde(default = "default_auth_delay")]
    pub auth_delay: f64,
    /// The longest such delay, in seconds.
    #[serde(default = "default_auth_max_delay")]
    pub auth_max_delay: f64,
    /// Failed logins from one client address that lock it out.
    #[serde(default = "default_auth_max_failures_per_address")]
    pub auth_max_failures_per_address: u32,
    /// Failed logins for one user name, from anywhere, that lock it out.
    #[serde(default = "default_auth_max_failures_per_user")]
    pub auth_max_failures_per_user: u32,
    /// Seconds a lockout lasts; failures are also forgotten after this long
    /// without one.
    #[serde(default = "default_auth_lockout")]
    pub auth_lockout: u64,
    /// DNS servers for DMARC, SPF and DKIM (`"127.0.0.1:53"`); empty: the system's.
    #[serde(default)]
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// The listeners.
    #[serde(default)]
    pub listen: Vec<SmtpListen>,
}

/// `[[smtp.listen]]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpListen {
    /// Address and port.
    pub address: std::net::SocketAddr,
    /// What kind of port it is.
    #[serde(default)]
    pub mode: SmtpMode,
    /// Connections at once on this listener. Unset: as many as on all.
    #[serde(default)]
    pub max_connections: Option<usize>,
}

/// The kind of an SMTP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpMode {
    /// Mail servers and clients (port 25): STARTTLS when a certificate is
    /// configured; AUTH under TLS; DMARC senders without AUTH.
    #[default]
    Smtp,
    /// Submission (port 587): STARTTLS, and AUTH required before MAIL.
    Submission,
    /// Submission over implicit TLS (port 465, RFC 8314): AUTH required.
    Smtps,
}

fn default_smtp_hostname() -> String {
    "localhost".into()
}
fn default_max_message_size() -> u64 {
    20 * 1024 * 1024
}
fn default_max_recipients() -> usize {
    10
}
fn default_max_errors() -> u32 {
    10
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_max_header_lines() -> usize {
    500
}
fn default_max_connections_per_address() -> usize {
    20
}
fn default_tls_handshake_timeout() -> u64 {
    10
}
fn default_min_rate() -> u32 {
    500
}
fn default_rate_window() -> u64 {
    30
}
fn default_auth_delay() -> f64 {
    1.0
}
fn default_auth_max_delay() -> f64 {
    15.0
}
fn default_auth_max_failures_per_address() -> u32 {
    10
}
fn default_auth_max_failures_per_user() -> u32 {
    30
}
fn default_auth_lockout() -> u64 {
    600
}

impl SmtpConfig {
    /// Connections at once on all listeners: `max_connections`, or what
    /// `fd_limit` file descriptors allow (each connection holds one, and
    /// one more for a moment while its message is stored or its sender
    /// checked in DNS) after a reserve for the store, the SIP side and the
    /// admin socket: a quarter of the limit, at least 32 and at most 256.
    pub fn max_connections_for(&self, fd_limit: u64) -> usize {
        self.max_connections.unwrap_or_else(|| {
            let limit = fd_limit.min(1 << 24);
            let reserve = (limit / 4).clamp(32, 256);
            (limit.saturating_sub(reserve) / 2).max(1) as usize
        })
    }

    /// The session limits.
    pub fn limits(&self) -> faxgate_smtp::Limits {
        use std::time::Duration;
        faxgate_smtp::Limits {
            max_message_size: self.max_message_size,
            max_recipients: self.max_recipients,
            max_errors: self.max_errors,
            idle_timeout: Duration::from_secs(self.idle_timeout),
            tls_handshake_timeout: Duration::from_secs(self.tls_handshake_timeout),
            min_rate: self.min_rate,
            rate_window: Duration::from_secs(self.rate_window),
            max_header_lines: self.max_header_lines,
            ..faxgate_smtp::Limits::default()
        }
    }

    /// How failed logins are slowed down and locked out (the delays
    /// checked to be finite and in range).
    pub fn auth_limits(&self) -> faxgate_smtp::AuthLimits {
        use std::time::Duration;
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO);
        faxgate_smtp::AuthLimits {
            delay: secs(self.auth_delay),
            max_delay: secs(self.auth_max_delay),
            max_failures_per_address: self.auth_max_failures_per_address,
            max_failures_per_user: self.auth_max_failures_per_user,
            lockout: Duration::from_secs(self.auth_lockout),
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            hostname: default_smtp_hostname(),
            certificate: None,
            key: None,
            max_message_size: default_max_message_size(),
            max_recipients: default_max_recipients(),
            max_errors: default_max_errors(),
            idle_timeout: default_idle_timeout(),
            max_header_lines: default_max_header_lines(),
            max_connections_per_address: default_max_connections_per_address(),
            max_connections: None,
            tls_handshake_timeout: default_tls_handshake_timeout(),
            min_rate: default_min_rate(),
            rate_window: default_rate_window(),
            auth_delay: default_auth_delay(),
            auth_max_delay: default_auth_max_delay(),
            auth_max_failures_per_address: default_auth_max_failures_per_address(),
            auth_max_failures_per_user: default_auth_max_failures_per_user(),
            auth_lockout: default_auth_lockout(),
            dns_servers: Vec::new(),
            listen: Vec::new(),
        }
    }
}

/// `[storage]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The data directory (the store, the spool).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The key directory; `<data_dir>/keys` when not set.
    #[serde(default)]
    pub key_dir: Option<PathBuf>,
    /// MiB of the store's pages kept in memory (sled's page cache).
    #[serde(default = "default_cache_mib")]
    pub cache_mib: u64,
}

fn default_cache_mib() -> u64 {
    crate::store::DEFAULT_CACHE_MIB
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/faxgate")
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { data_dir: default_data_dir(), key_dir: None, cache_mib: default_cache_mib() }
    }
}

impl StorageConfig {
    /// The key directory in effect.
    pub fn key_dir(&self) -> PathBuf {
        self.key_dir.clone().unwrap_or_else(|| self.data_dir.join("keys"))
    }
}

/// `[admin]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// The admin socket.
    #[serde(default = "default_admin_socket")]
    pub socket: PathBuf,
    /// The group whose members may use the admin socket (mode 0660).
    /// Unset: only the daemon's own user.
    #[serde(default)]
    pub group: Option<String>,
    /// Users and groups that act as the operator over the socket, besides
    /// root and the daemon's own user.
    #[serde(default)]
    pub operators: Principals,
    /// Per tenant id: the users and groups that act as that tenant's admin
    /// over the socket (see [`crate::admin::access`]).
    #[serde(default)]
    pub tenants: std::collections::BTreeMap<String, Principals>,
}

/// Users and groups, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Principals {
    /// User names.
    #[serde(default)]
    pub users: Vec<String>,
    /// Group names.
    #[serde(default)]
    pub groups: Vec<String>,
}

fn default_admin_socket() -> PathBuf {
    PathBuf::from("/run/faxgate/admin.sock")
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            socket: default_admin_socket(),
            group: None,
            operators: Principals::default(),
            tenants: Default::default(),
        }
    }
}

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    /// The journal when started by systemd, standard error otherwise.
    #[default]
    Auto,
    /// The systemd journal.
    Journald,
    /// Standard error.
    Stderr,
}

/// How log lines on standard error are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event: time, level, module, message, fields.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `[log]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Level filter, as for `RUST_LOG` (`info`, `faxgate=debug,info`), with
    /// a level in every directive ([`check_log_filter`]).
    #[serde(default = "default_log_level")]
    pub level: String,
    /// Where log lines go.
    #[serde(default)]
    pub target: LogTarget,
    /// How lines on standard error are written (the journal keeps fields
    /// of its own).
    #[serde(default)]
    pub format: LogFormat,
    /// Write fax numbers, mail addresses and names in clear. Off: each is
    /// written as a keyed hash of it (`n:3fa9c2d1`; `faxgate log hash`).
    /// On is logged at WARN at every start and reload.
    #[serde(default)]
    pub personal_data: bool,
}

/// Checks a log filter: it must parse as for `RUST_LOG`, and each of its
/// comma-separated directives must name a level, alone (`info`) or after
/// a target (`faxgate=debug`). `RUST_LOG` reads a word that is not a
/// level as a target with every level on, so that a misspelt level
/// (`debgu`) would turn all other logging off; it is refused instead.
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: &str = "trace, debug, info, warn, error or off";
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.is_empty() => level,
            Some(_) => return Err(format!("{directive:?} has no target before its '='")),
            None => directive,
        };
        if level.is_empty() || level.parse::<tracing_subscriber::filter::LevelFilter>().is_err() {
            return Err(if directive.contains('=') {
                format!("{level:?} in {directive:?} is not a level ({LEVELS})")
            } else {
                format!(
                    "{directive:?} is not a level ({LEVELS}); a target needs its level, as in \"{directive}=debug\""
                )
            });
        }
    }
    tracing_subscriber::EnvFilter::builder().parse(filter).map(drop).map_err(|e| e.to_string())
}

fn default_log_level() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: default_log_level(), target: LogTarget::Auto, format: LogFormat::Text, personal_data: false }
    }
}

/// Where a configuration came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A file.
    File(PathBuf),
    /// The embedded default.
    Embedded,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Embedded => f.write_str("(embedded default)"),
        }
    }
}

/// One problem in a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key path (`admin.socket`), empty for the whole file.
    pub path: String,
    /// The 1-based line, where known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// Only a warning: `serve` runs on it (a trunk host that does not
    /// resolve yet).
    pub warning: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.warning {
            f.write_str("warning: ")?;
        }
        match (self.line, self.path.is_empty()) {
            (Some(l), false) => write!(f, "line {l}: {}: {}", self.path, self.message),
            (Some(l), true) => write!(f, "line {l}: {}", self.message),
            (None, false) => write!(f, "{}: {}", self.path, self.message),
            (None, true) => f.write_str(&self.message),
        }
    }
}

impl Config {
    /// Parses and checks a configuration, reporting every problem found.
    pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
        check::parse(text)
    }

    /// Parses and checks a configuration as far as it goes: the
    /// configuration with the keys in error left out (their defaults in
    /// their place), unless even that does not parse, and every problem.
    pub fn check(text: &str) -> (Option<Config>, Vec<Problem>) {
        check::check(text)
    }

    /// The text of the configuration `load` reads, and where it is.
    pub fn source(path: Option<&Path>) -> Result<(String, Origin), Error> {
        Ok(match path {
            Some(p) => (read(p)?, Origin::File(p.to_owned())),
            None if Path::new(DEFAULT_PATH).exists() => {
                (read(Path::new(DEFAULT_PATH))?, Origin::File(DEFAULT_PATH.into()))
            }
            None => (EMBEDDED.to_owned(), Origin::Embedded),
        })
    }

    /// Loads the configuration: `path` if given; else the default path if it
    /// exists; else the embedded default.
    pub fn load(path: Option<&Path>) -> Result<(Config, Origin), Error> {
        let (text, origin) = Config::source(path)?;
        let config = Config::parse(&text).map_err(|problems| report(&origin, &problems))?;
        Ok((config, origin))
    }

    /// Sections that only take effect on restart, and differ between
    /// `self` and `new`. A reload applies the rest: `log.level`,
    /// `log.personal_data`, the TLS certificate files, `[fax]` (but for the
    /// settings [`crate::gateway::Gateway::reload`] names) and the trunks.
    pub fn restart_needed_for(&self, new: &Config) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.storage != new.storage {
            v.push("storage");
        }
        if self.admin != new.admin {
            v.push("admin");
        }
        if self.log.target != new.log.target {
            v.push("log.target");
        }
        if self.log.format != new.log.format {
            v.push("log.format");
        }
        if self.retention != new.retention {
            v.push("retention");
        }
        // The certificate and the limits are reloaded; the listeners, the
        // name and the DNS servers are not.
        let fixed = |s: &SmtpConfig| (s.hostname.clone(), s.dns_servers.clone(), s.listen.clone());
        if fixed(&self.smtp) != fixed(&new.smtp) {
            v.push("smtp");
        }
        if self.mail != new.mail {
            v.push("mail");
        }
        if self.metrics != new.metrics {
            v.push("metrics");
        }
        if self.api != new.api {
            v.push("api");
        }
        v
    }
}

/// Each problem its line in `text` (the configuration's TOML), by its key path.
pub fn locate(problems: &mut [Problem], text: &str) {
    for p in problems.iter_mut().filter(|p| p.line.is_none() && !p.path.is_empty()) {
        let segs: Vec<String> = p.path.split('.').map(str::to_owned).collect();
        p.line = toml_line(text, &segs);
    }
}

/// The error of a configuration with `problems`, one line each.
pub fn report(origin: &Origin, problems: &[Problem]) -> Error {
    Error::Config {
        path: origin.to_string(),
        report: problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"),
    }
}

fn read(p: &Path) -> Result<String, Error> {
    std::fs::read_to_string(p).map_err(Error::io("cannot read configuration", p.to_owned()))
}

#[cfg(test)]
mod tests;
