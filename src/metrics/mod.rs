//! Metrics for Prometheus, and the health check.
//!
//! Events (faxes, pages, fallbacks, call durations, SMTP refusals) are
//! counted as they happen, in one process-wide registry ([`fax`],
//! [`smtp_refused`]); states (the queue, the outbox, the trunks' channels
//! and registration, the sweeper, the store's size) are read from their
//! owners when `/metrics` is asked for ([`Sources`]). [`http`] serves both
//! on `[metrics] listen`.

pub mod http;

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use http::{Health, Sources};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaxLabels {
    direction: &'static str,
    result: String,
    tenant: String,
    trunk: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PageLabels {
    direction: &'static str,
    tenant: String,
    trunk: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    direction: &'static str,
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrunkLabels {
    trunk: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabels {
    category: String,
}

fn durations() -> Histogram {
    Histogram::new([5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0])
}

/// The registry and every metric in it.
struct Metrics {
    registry: Registry,
    faxes: Family<FaxLabels, Counter>,
    pages: Family<PageLabels, Counter>,
    transport: Family<TransportLabels, Counter>,
    fallbacks: Family<TrunkLabels, Counter>,
    duration: Family<DirectionLabels, Histogram, fn() -> Histogram>,
    smtp_sessions: Counter,
    smtp_refusals: Family<ReasonLabels, Counter>,
    queue_jobs: Family<StateLabels, Gauge>,
    queue_oldest: Gauge,
    outbox: Family<StateLabels, Gauge>,
    channels_in_use: Family<TrunkLabels, Gauge>,
    channels_limit: Family<TrunkLabels, Gauge>,
    registered: Family<TrunkLabels, Gauge>,
    sweep_last: Gauge,
    overdue: Family<CategoryLabels, Gauge>,
    store_bytes: Gauge,
    up: Gauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut r = Registry::with_prefix("faxgate");
    let m = Metrics {
        faxes: Family::default(),
        pages: Family::default(),
        transport: Family::default(),
        fallbacks: Family::default(),
        duration: Family::new_with_constructor(durations as fn() -> Histogram),
        smtp_sessions: Counter::default(),
        smtp_refusals: Family::default(),
        queue_jobs: Family::default(),
        queue_oldest: Gauge::default(),
        outbox: Family::default(),
        channels_in_use: Family::default(),
        channels_limit: Family::default(),
        registered: Family::default(),
        sweep_last: Gauge::default(),
        overdue: Family::default(),
        store_bytes: Gauge::default(),
        up: Gauge::default(),
        registry: Registry::default(),
    };
    r.register("faxes", "Fax transmissions (attempts), by direction, result, tenant and trunk", m.faxes.clone());
    r.register("pages", "Fax pages transferred, by direction, tenant and trunk", m.pages.clone());
    r.register("fax_transport", "Faxes that ran, by direction and transport (t38, g711)", m.transport.clone());
    r.register("t38_fallbacks", "Calls that fell back from T.38 to G.711 audio, by trunk", m.fallbacks.clone());
    r.register("call_duration_seconds", "Duration of fax calls, by direction", m.duration.clone());
    r.register("smtp_sessions", "SMTP sessions served", m.smtp_sessions.clone());
    r.register("smtp_refusals", "SMTP connections and commands refused, by reason", m.smtp_refusals.clone());
    r.register("queue_jobs", "Fax jobs not yet final, by state", m.queue_jobs.clone());
    r.register("queue_oldest_age_seconds", "Age of the oldest fax job not yet final", m.queue_oldest.clone());
    r.register("outbox_messages", "Mails in the outbox, by state (waiting, failed)", m.outbox.clone());
    r.register("trunk_channels_in_use", "Calls in progress, by trunk", m.channels_in_use.clone());
    r.register("trunk_channels_limit", "Calls a trunk takes at once", m.channels_limit.clone());
    r.register("trunk_registered", "1 while a trunk's registration is in force", m.registered.clone());
    r.register(
        "sweeper_last_success_timestamp_seconds",
        "When the retention sweeper last finished a sweep (Unix time)",
        m.sweep_last.clone(),
    );
    r.register(
        "retention_overdue",
        "1 when a retention class has items past their deadline, by class",
        m.overdue.clone(),
    );
    r.register("store_size_bytes", "Size of the store on disk", m.store_bytes.clone());
    r.register("up", "1 while the daemon serves", m.up.clone());
    Metrics { registry: r, ..m }
});

/// Which way a fax went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Mail to fax.
    MailToFax,
    /// Fax to mail.
    FaxToMail,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::MailToFax => "mail_to_fax",
            Direction::FaxToMail => "fax_to_mail",
        }
    }
}

/// One fax transmission as counted.
#[derive(Debug)]
pub struct Fax<'a> {
    /// Which way.
    pub direction: Direction,
    /// How it ended (`sent`, `busy`, `received`, `refused`...).
    pub result: &'a str,
    /// The tenant.
    pub tenant: &'a str,
    /// The trunk.
    pub trunk: &'a str,
    /// Pages transferred.
    pub pages: u32,
    /// `Some(true)` for T.38, `Some(false)` for G.711, `None` when no fax ran.
    pub t38: Option<bool>,
    /// It fell back from T.38 to audio.
    pub fallback: bool,
    /// Seconds from the call's start to its end.
    pub seconds: f64,
}

/// Counts a fax transmission.
pub fn fax(f: Fax<'_>) {
    let m = &*METRICS;
    let d = f.direction.label();
    m.faxes
        .get_or_create(&FaxLabels {
            direction: d,
            result: f.result.to_owned(),
            tenant: f.tenant.to_owned(),
            trunk: f.trunk.to_owned(),
        })
        .inc();
    m.pages
        .get_or_create(&PageLabels { direction: d, tenant: f.tenant.to_owned(), trunk: f.trunk.to_owned() })
        .inc_by(u64::from(f.pages));
    if let Some(t38) = f.t38 {
        m.transport.get_or_create(&TransportLabels { direction: d, transport: if t38 { "t38" } else { "g711" } }).inc();
    }
    if f.fallback {
        m.fallbacks.get_or_create(&TrunkLabels { trunk: f.trunk.to_owned() }).inc();
    }
    m.duration.get_or_create(&DirectionLabels { direction: d }).observe(f.seconds.max(0.0));
}

/// Counts a refusal during an SMTP session: `auth`, `sender`, `recipient`, `message`.
pub fn smtp_refused(reason: &'static str) {
    METRICS.smtp_refusals.get_or_create(&ReasonLabels { reason }).inc();
}

/// Brings a counter kept elsewhere (an atomic of the SMTP listener) up to `now`.
fn catch_up(c: &Counter, now: u64) {
    let seen = c.get();
    if now > seen {
        c.inc_by(now - seen);
    }
}

fn load(a: &AtomicU64) -> u64 {
    a.load(std::sync::atomic::Ordering::Relaxed)
}

/// The exposition of every metric: OpenMetrics, or (`openmetrics` false)
/// Prometheus's classic text format 0.0.4, for scrapers and tools that do
/// not ask for OpenMetrics (`promtool check metrics` reads only this).
fn encode(openmetrics: bool) -> String {
    let mut out = String::new();
    // Writing into a String does not fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &METRICS.registry);
    if openmetrics { out } else { classic(&out) }
}

/// OpenMetrics text as the classic format: a counter's HELP and TYPE name
/// its samples (`_total`), and no `# UNIT` or `# EOF` lines.
fn classic(om: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        om.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "].into_iter().find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) { "_total" } else { "" };
                out.push_str(&format!("{p}{name}{suffix} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_classic_format_names_counters_by_their_samples() {
        let om = "# HELP faxgate_faxes Faxes.\n# TYPE faxgate_faxes counter\nfaxgate_faxes_total{a=\"b\"} 1\n\
                  # HELP faxgate_up Up.\n# TYPE faxgate_up gauge\nfaxgate_up 1\n# EOF\n";
        assert_eq!(
            super::classic(om),
            "# HELP faxgate_faxes_total Faxes.\n# TYPE faxgate_faxes_total counter\nfaxgate_faxes_total{a=\"b\"} 1\n\
             # HELP faxgate_up Up.\n# TYPE faxgate_up gauge\nfaxgate_up 1\n"
        );
    }
}
