//! The `faxgate` command line.
//!
//! `faxgate serve` runs the daemon. Every other command is an admin request:
//! while the daemon runs it goes through the admin socket; when no daemon
//! runs the CLI opens the store itself (sled allows one process, so the two
//! never write at once). Output is for people by default and JSON with
//! `--json`.

pub(crate) mod fax;
pub(crate) mod render;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use faxgate::admin::Request;
use faxgate::directory::{
    AccountChange, AttachmentFormat, Branding, DirectoryFile, EnvelopeFrom, Language, Paper, Patch, Route, SenderAuth,
    SenderChange, SenderPattern, Tenant, TenantChange,
};
use faxgate::types::{AccountId, Country, Domain, EmailAddress, JobId, TenantId};

/// `faxgate --version`: the version and the commit it was built from.
pub(crate) const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("FAXGATE_COMMIT"), ")");

/// faxgate: Fax-to-Mail / Mail-to-Fax gateway.
#[derive(Debug, Parser)]
#[command(name = "faxgate", version = VERSION, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Configuration file [default: /etc/faxgate/faxgate.toml, else the embedded default]
    #[arg(long, global = true, env = "FAXGATE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Act as a tenant's admin: see and change only that tenant's data.
    #[arg(long, global = true, value_name = "TENANT")]
    pub(crate) as_tenant: Option<TenantId>,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the daemon.
    Serve {
        /// Serve a store that verification finds damaged, to salvage what
        /// is readable; the retention sweeper does not run.
        #[arg(long)]
        allow_damaged: bool,
    },
    /// Check the configuration as `serve` would (files, certificate and key,
    /// directory modes, listen addresses, trunk hosts) and report every
    /// problem with its key and line.
    CheckConfig {
        /// The file to check [default: --config, else as `serve` finds it].
        file: Option<PathBuf>,
    },
    /// Show whether the daemon runs, and where its data is.
    Status,
    /// Tenants (resellers).
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Accounts (a reseller's customers).
    #[command(subcommand)]
    Account(AccountCmd),
    /// Fax numbers (DIDs) of accounts.
    #[command(subcommand)]
    Number(NumberCmd),
    /// Where faxes received on a number are mailed.
    #[command(subcommand)]
    Route(RouteCmd),
    /// Mail senders allowed to send faxes for an account.
    #[command(subcommand)]
    Sender(SenderCmd),
    /// The directory as a whole.
    #[command(subcommand)]
    Directory(DirectoryCmd),
    /// Call detail records.
    #[command(subcommand)]
    Cdr(CdrCmd),
    /// Retention: what is due when, the deletion audit, legal holds.
    #[command(subcommand)]
    Retention(RetentionCmd),
    /// Data subjects' requests (GDPR Articles 15 to 20).
    #[command(subcommand)]
    Gdpr(GdprCmd),
    /// Traffic data for a lawful request.
    #[command(subcommand)]
    Disclosure(DisclosureCmd),
    /// Faxes from mail: list the queue, show a job's attempts, and retry,
    /// cancel, hold or release a job.
    #[command(subcommand)]
    Queue(QueueCmd),
    /// Mail faxgate sends (received faxes, reports): what waits for the
    /// relay or was given up, and why; flush it, drop a message.
    #[command(subcommand)]
    Outbox(OutboxCmd),
    /// Received faxes whose mail is still kept: list, and save the document.
    #[command(subcommand)]
    Received(ReceivedCmd),
    /// What calls to a destination needed (audio, ECM off, a lower rate),
    /// learned per tenant and used from the start for `fax.learn_days`.
    #[command(subcommand)]
    Learned(LearnedCmd),
    /// Rating rules and the rated export of a tenant's month.
    #[command(subcommand)]
    Billing(BillingCmd),
    /// API tokens: made for a role in a tenant or an account, shown once,
    /// listed and revoked.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Webhooks: fax events POSTed, signed, to a tenant's or an account's URL.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// The audit of admin changes: who changed what, when, with what result.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// The fax engine on its own (no daemon, no SIP).
    #[command(subcommand)]
    Fax(FaxCmd),
    /// Render documents (PDF, TIFF, images, text) to fax pages: a multi-page G4 TIFF.
    Render(render::RenderArgs),
    /// Turn a received fax (TIFF) into a PDF, page data embedded unchanged.
    Topdf(render::TopdfArgs),
    /// Draw PDFs for the daemon, bounded (internal: takes requests on
    /// standard input, answers on standard output).
    #[command(hide = true)]
    RenderWorker,
    /// The log: the hash a log line shows for a number, address or name.
    #[command(subcommand)]
    Log(LogCmd),
    /// The store itself: verification.
    #[command(subcommand)]
    Store(StoreCmd),
    /// Copy the store and its keys, consistently, while the daemon runs (or
    /// not); the copy says until when it may be kept.
    Backup {
        /// A new (or empty) directory, writable by the daemon's user.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Restore a backup into the configured, empty data directory (the
    /// daemon stopped): verified first; one whose deadlines have passed is
    /// refused unless --erase-expired.
    Restore {
        /// The backup directory.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// Erase the data whose deadline has passed as the backup is restored.
        #[arg(long)]
        erase_expired: bool,
    },
    /// Write the man pages (faxgate.1 and one per subcommand) into a directory
    /// (for packaging).
    #[command(hide = true)]
    Manpages {
        /// The directory (created).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the completion script of a shell (for packaging).
    #[command(hide = true)]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the schema document of an export: subject-export, cdr,
    /// disclosure-jsonl, cdr-csv or directory-csv.
    Schema {
        /// Which schema.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(faxgate::gdpr::schemas::NAMES))]
        name: String,
    },
}

/// `faxgate log ...`
#[derive(Debug, Subcommand)]
pub(crate) enum LogCmd {
    /// Print the hash that log lines show for VALUE (`n:3fa9c2d1`), to find
    /// a number, address or name in the log without it being written there.
    Hash {
        /// The value: a number in E.164 (`+4533221100`), an address, a name.
        value: String,
        /// What the value is; by default a number when it parses as E.164,
        /// an address when it has an `@`, otherwise a name.
        #[arg(long, value_enum)]
        kind: Option<faxgate::admin::LogKind>,
    },
}

/// `faxgate fax ...`
#[derive(Debug, Subcommand)]
pub(crate) enum FaxCmd {
    /// Send a TIFF/F from one in-process fax session to another over simulated T.38 or G.711.
    Loopback(fax::FaxLoopbackArgs),
    /// Send a document as a fax through the running daemon, as mailing it
    /// to the numbers would (the report goes to --sender).
    Send {
        /// The document: PDF, TIFF, PNG, JPEG, text.
        file: PathBuf,
        /// A fax number (again for more).
        #[arg(long, required = true)]
        to: Vec<String>,
        /// The sender address of the account the fax is sent for.
        #[arg(long)]
        sender: EmailAddress,
        /// The subject; default the file name.
        #[arg(long)]
        subject: Option<String>,
        /// A text for the cover page.
        #[arg(long)]
        comment: Option<String>,
        /// The media type, when the file name does not tell it.
        #[arg(long)]
        content_type: Option<String>,
        /// The same key again within a day sends nothing twice.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
}

/// A data subject: a number or a mail address.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct SubjectArgs {
    /// A fax number (international form).
    #[arg(long)]
    pub(crate) number: Option<String>,
    /// A mail address.
    #[arg(long)]
    pub(crate) email: Option<EmailAddress>,
}

impl SubjectArgs {
    fn subject(&self) -> anyhow::Result<faxgate::gdpr::Subject> {
        use faxgate::gdpr::Subject;
        Ok(match (&self.number, &self.email) {
            (Some(n), _) => Subject::Number(faxgate::types::E164::parse(n, None)?),
            (_, Some(e)) => Subject::Email(e.clone()),
            _ => anyhow::bail!("give --number or --email"),
        })
    }
}

/// `faxgate gdpr ...`
#[derive(Debug, Subcommand)]
pub(crate) enum GdprCmd {
    /// Everything held about a subject: subject.json, cdrs.csv, directory.csv and schema.json in --out.
    Export {
        /// Whom.
        #[command(flatten)]
        subject: SubjectArgs,
        /// The directory to write to (created).
        #[arg(long)]
        out: PathBuf,
    },
    /// Replace a wrong mail address in routes and sender entries.
    Rectify {
        /// The wrong address.
        #[arg(long)]
        email: EmailAddress,
        /// The right one.
        #[arg(long)]
        to: EmailAddress,
    },
    /// Erase a subject's directory data now; CDRs stay until their legal deadline (listed).
    Erase {
        /// Whom.
        #[command(flatten)]
        subject: SubjectArgs,
    },
    /// Keep a subject's data but leave it out of everything except legal exports.
    Restrict {
        /// Whom.
        #[command(flatten)]
        subject: SubjectArgs,
        /// Lift the restriction.
        #[arg(long)]
        lift: bool,
    },
}

/// `faxgate disclosure ...`
#[derive(Debug, Subcommand)]
pub(crate) enum DisclosureCmd {
    /// Write the retained traffic data of a number for a period; recorded in the audit trail.
    Export {
        /// The number (international form).
        #[arg(long)]
        number: String,
        /// From (RFC 3339).
        #[arg(long)]
        since: jiff::Timestamp,
        /// Until (RFC 3339).
        #[arg(long)]
        until: jiff::Timestamp,
        /// The case reference.
        #[arg(long)]
        case: String,
        /// The authority that asked.
        #[arg(long)]
        authority: String,
        /// Format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `faxgate queue ...`
#[derive(Debug, Subcommand)]
pub(crate) enum QueueCmd {
    /// List fax jobs, oldest first, with their state and next attempt.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Only jobs in this state.
        #[arg(long, value_enum)]
        state: Option<faxgate::admin::StateFilter>,
    },
    /// Show a job: its attempts with their causes, the next attempt, its pages.
    Show {
        /// The job (job-...).
        id: JobId,
    },
    /// Call a waiting, retrying or held job now.
    Retry {
        /// The job.
        id: JobId,
    },
    /// Give a job up now; its sender gets the report ("cancelled").
    Cancel {
        /// The job.
        id: JobId,
    },
    /// Keep a job from being called until it is released.
    Hold {
        /// The job.
        id: JobId,
    },
    /// Put a held job back in the queue, due when it was due before.
    Release {
        /// The job.
        id: JobId,
    },
}

/// `faxgate learned ...`
#[derive(Debug, Subcommand)]
pub(crate) enum LearnedCmd {
    /// List the destinations whose calls start with what they needed before.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<TenantId>,
    },
    /// Forget a destination: its next call tries T.38, ECM and 14,400 bit/s again.
    Forget {
        /// The fax number.
        number: String,
        /// Only in this tenant [default: every tenant].
        #[arg(long)]
        tenant: Option<TenantId>,
    },
}

/// `faxgate token ...`
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCmd {
    /// Make a token; its secret is printed once and never kept.
    Create {
        /// The tenant it acts in [default: --as-tenant; none for an operator token].
        #[arg(long)]
        tenant: Option<TenantId>,
        /// The account it acts for (the account roles need one).
        #[arg(long)]
        account: Option<AccountId>,
        /// What it may do.
        #[arg(long, value_enum)]
        role: faxgate::admin::Role,
        /// When it stops working: a date (`2027-01-31`, midnight UTC) or a time.
        #[arg(long, value_parser = parse_when)]
        expires: Option<jiff::Timestamp>,
        /// A name to tell it by.
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Only this account's.
        #[arg(long)]
        account: Option<AccountId>,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's id (`token list`).
        id: String,
    },
}

/// `faxgate webhook ...`
#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCmd {
    /// Make a webhook; its signing secret is printed once and never shown again.
    Create {
        /// The tenant whose events it gets [default: --as-tenant].
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Only this account's events.
        #[arg(long)]
        account: Option<AccountId>,
        /// Where events are POSTed: https://…, or http:// to a loopback address.
        #[arg(long)]
        url: String,
        /// An event it gets (repeat for more).
        #[arg(long = "event", value_enum, required = true)]
        events: Vec<faxgate::directory::webhooks::Event>,
        /// Put numbers and mail addresses in the payloads (otherwise ids and results only).
        #[arg(long)]
        personal_data: bool,
        /// Mail the notice to this address if failures disable the webhook
        /// [default: the tenant's From address].
        #[arg(long, value_name = "ADDRESS")]
        notify: Option<EmailAddress>,
    },
    /// List webhooks (never their secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Only this account's.
        #[arg(long)]
        account: Option<AccountId>,
    },
    /// Remove a webhook; its pending deliveries are dropped.
    Remove {
        /// The webhook's id (`webhook list`).
        id: String,
    },
    /// Enable a webhook that failures disabled.
    Enable {
        /// The webhook's id.
        id: String,
    },
}

/// `faxgate audit ...`
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCmd {
    /// List the audit's entries, oldest first.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Only entries at or after this date (`2026-12-01`, midnight UTC) or time.
        #[arg(long, value_parser = parse_when)]
        since: Option<jiff::Timestamp>,
    },
}

/// A date (midnight UTC) or a time.
fn parse_when(s: &str) -> Result<jiff::Timestamp, String> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    s.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| format!("{s:?} is neither a date (2027-01-31) nor a time (2027-01-31T12:00:00Z)"))
}

/// `faxgate outbox ...`
#[derive(Debug, Subcommand)]
pub(crate) enum OutboxCmd {
    /// List the messages waiting for the relay or given up, oldest first.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<TenantId>,
    },
    /// Show a message: why it waits, or why it was given up.
    Show {
        /// The message (job-...).
        id: JobId,
    },
    /// Hand every waiting message to the relay now.
    Flush,
    /// Remove a message, waiting or given up, for good.
    Drop {
        /// The message.
        id: JobId,
    },
}

/// `faxgate received ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ReceivedCmd {
    /// List the received faxes whose mail is still kept (not yet taken by
    /// the mail server, or given up), with when each is erased.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Only this account's.
        #[arg(long)]
        account: Option<AccountId>,
    },
    /// Save a received fax's document (its PDF, else its TIFF) while kept.
    Get {
        /// The received fax (job-...).
        id: JobId,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `faxgate store ...`
#[derive(Debug, Subcommand)]
pub(crate) enum StoreCmd {
    /// Find damage: trees against their manifests, records that do not open,
    /// keys missing or damaged, index entries without records and records
    /// without index entries. Exits non-zero on damage. Works with the
    /// daemon running (through it) or stopped (on the store itself).
    Verify,
}

/// `faxgate retention ...`
#[derive(Debug, Subcommand)]
pub(crate) enum RetentionCmd {
    /// What is kept, and when it is due for erasure.
    Status,
    /// Check that nothing is kept past its period and that destroyed keys are gone; non-zero exit otherwise.
    Audit,
    /// Erase what is due now (the daemon also does this at every deadline).
    Sweep,
    /// Confirm that the clock is right after a jump: erasure of CDRs and accounts resumes.
    ConfirmClock,
    /// Legal holds: data kept past its period for a case.
    #[command(subcommand)]
    Hold(HoldCmd),
}

/// `faxgate retention hold ...`
#[derive(Debug, Subcommand)]
pub(crate) enum HoldCmd {
    /// Place a hold on a number or an account.
    Add {
        /// The number (international form).
        #[arg(long, conflicts_with = "account", required_unless_present = "account")]
        number: Option<String>,
        /// The account.
        #[arg(long)]
        account: Option<AccountId>,
        /// The case reference.
        #[arg(long)]
        case: String,
        /// When the hold ends (RFC 3339).
        #[arg(long)]
        until: jiff::Timestamp,
    },
    /// List holds.
    List,
    /// Lift a hold.
    Remove {
        /// The hold's id.
        id: String,
    },
}

/// Which CDRs.
#[derive(Debug, Args)]
pub(crate) struct CdrSelect {
    /// Only this tenant's.
    #[arg(long)]
    pub(crate) tenant: Option<TenantId>,
    /// Only those with this calling or called number (international form).
    #[arg(long)]
    pub(crate) number: Option<faxgate::types::E164>,
    /// Started at or after (RFC 3339).
    #[arg(long)]
    pub(crate) since: Option<jiff::Timestamp>,
    /// Started before (RFC 3339).
    #[arg(long)]
    pub(crate) until: Option<jiff::Timestamp>,
    /// One calendar month (UTC), e.g. 2026-03: for billing.
    #[arg(long, value_parser = parse_month, conflicts_with_all = ["since", "until"])]
    pub(crate) month: Option<(jiff::Timestamp, jiff::Timestamp)>,
}

fn parse_month(s: &str) -> Result<(jiff::Timestamp, jiff::Timestamp), String> {
    let bad = || format!("{s:?} is not a month: write YYYY-MM");
    let (y, m) = s.split_once('-').ok_or_else(bad)?;
    let (y, m): (i16, i8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let start = jiff::civil::Date::new(y, m, 1).map_err(|_| bad())?;
    let utc = |d: jiff::civil::Date| d.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).map_err(|_| bad());
    Ok((utc(start)?, utc(start.checked_add(jiff::ToSpan::month(1)).map_err(|_| bad())?)?))
}

/// `faxgate billing ...`
#[derive(Debug, Subcommand)]
pub(crate) enum BillingCmd {
    /// Rating rules of a tenant.
    #[command(subcommand)]
    Rules(RulesCmd),
    /// The billable transmissions of a tenant's month, rated, with a summary per account.
    Export {
        /// The tenant [default: --as-tenant].
        #[arg(long)]
        tenant: Option<TenantId>,
        /// The month, YYYY-MM (UTC).
        #[arg(long)]
        month: String,
        /// Whose bill: the operator's to the reseller, or the reseller's to its customers.
        #[arg(long, value_enum, default_value = "retail")]
        level: faxgate::billing::Level,
        /// Output format.
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// Write to this file (and its schema beside it) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Close a month: its export stays as it is; its CDRs written later are
    /// adjustment rows of the next month closed.
    Close {
        /// The tenant [default: --as-tenant].
        #[arg(long)]
        tenant: Option<TenantId>,
        /// The month, YYYY-MM (ended).
        #[arg(long)]
        month: String,
        /// Whose bill (wholesale: the operator only).
        #[arg(long, value_enum, default_value = "retail")]
        level: faxgate::billing::Level,
    },
    /// The export's totals against the month's CDRs; exits non-zero on a difference.
    Check {
        /// The tenant [default: --as-tenant].
        #[arg(long)]
        tenant: Option<TenantId>,
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// Whose bill.
        #[arg(long, value_enum, default_value = "retail")]
        level: faxgate::billing::Level,
    },
}

/// `faxgate billing rules ...`
#[derive(Debug, Subcommand)]
pub(crate) enum RulesCmd {
    /// Set a tenant's rating rules from a TOML file (README: Billing).
    Set {
        /// The tenant [default: --as-tenant].
        #[arg(long)]
        tenant: Option<TenantId>,
        /// The rules.
        file: PathBuf,
    },
    /// Show a tenant's rating rules.
    Show {
        /// The tenant [default: --as-tenant].
        #[arg(long)]
        tenant: Option<TenantId>,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// CSV with a header line (RFC 4180).
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// `faxgate cdr ...`
#[derive(Debug, Subcommand)]
pub(crate) enum CdrCmd {
    /// List CDRs, oldest first.
    List(CdrSelect),
    /// Export CDRs for billing or analysis.
    Export {
        /// Which.
        #[command(flatten)]
        select: CdrSelect,
        /// Format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `faxgate tenant ...`
#[derive(Debug, Subcommand)]
pub(crate) enum TenantCmd {
    /// Add a tenant.
    Add(TenantAdd),
    /// List tenants.
    List,
    /// Show a tenant.
    Show {
        /// Tenant id.
        id: TenantId,
    },
    /// Change a tenant.
    Change(TenantChangeArgs),
    /// Remove a tenant that has no accounts.
    Remove {
        /// Tenant id.
        id: TenantId,
    },
    /// Check a pending fax domain or From: address: its TXT record
    /// `_faxgate-challenge.<domain>` must hold `faxgate-verify=<token>`
    /// (`tenant show` lists both); then it takes effect.
    Verify {
        /// Tenant id.
        id: TenantId,
        /// The pending fax domain or From: address.
        claim: String,
    },
    /// Let a pending fax domain or From: address take effect without its
    /// TXT record (the operator only).
    Approve {
        /// Tenant id.
        id: TenantId,
        /// The pending fax domain or From: address.
        claim: String,
    },
}

/// `faxgate tenant add`
#[derive(Debug, Args)]
pub(crate) struct TenantAdd {
    /// Tenant id: a-z, 0-9 and '-', starting with a letter.
    pub(crate) id: TenantId,
    /// The reseller's name.
    #[arg(long)]
    pub(crate) name: String,
    /// Display name of the mails sent on its behalf [default: the name]
    #[arg(long)]
    pub(crate) display_name: Option<String>,
    /// From: address of the mails sent on its behalf.
    #[arg(long)]
    pub(crate) from_address: EmailAddress,
    /// Language of those mails.
    #[arg(long, value_enum, default_value_t = Language::En)]
    pub(crate) language: Language,
    /// Country whose national numbers its customers write (DK, DE, US...).
    #[arg(long)]
    pub(crate) country: Country,
    /// A mail domain its customers send faxes to (repeatable).
    #[arg(long = "domain")]
    pub(crate) domains: Vec<Domain>,
    /// Paper size of its faxes.
    #[arg(long, value_enum, default_value_t = Paper::A4)]
    pub(crate) paper: Paper,
    /// Time zone (IANA name, e.g. Europe/Copenhagen) of its page headers and mails [default: UTC]
    #[arg(long)]
    pub(crate) time_zone: Option<String>,
    /// Page header of its faxes, with placeholders such as {date} {time} {station} {to} {page} {pages}
    /// ("" or "off": no header) [default: `[fax] header`]
    #[arg(long)]
    pub(crate) header_template: Option<String>,
    /// Station id of its faxes: at most 20 digits, '+' and spaces [default: `[fax] ident`]
    #[arg(long)]
    pub(crate) station_id: Option<String>,
}

/// `faxgate tenant change`
#[derive(Debug, Args)]
pub(crate) struct TenantChangeArgs {
    /// Tenant id.
    pub(crate) id: TenantId,
    /// New name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// New display name.
    #[arg(long)]
    pub(crate) display_name: Option<String>,
    /// New From: address (a tenant admin's is pending until verified: `tenant verify`).
    #[arg(long)]
    pub(crate) from_address: Option<EmailAddress>,
    /// New language.
    #[arg(long, value_enum)]
    pub(crate) language: Option<Language>,
    /// New default country.
    #[arg(long)]
    pub(crate) country: Option<Country>,
    /// New paper size.
    #[arg(long, value_enum)]
    pub(crate) paper: Option<Paper>,
    /// New time zone (IANA name; "none": UTC).
    #[arg(long)]
    pub(crate) time_zone: Option<String>,
    /// New page header template ("" or "off": no header; "default": `[fax] header`).
    #[arg(long)]
    pub(crate) header_template: Option<String>,
    /// New station id ("none": `[fax] ident`).
    #[arg(long)]
    pub(crate) station_id: Option<String>,
    /// Add a fax domain (repeatable; a tenant admin's is pending until verified: `tenant verify`).
    #[arg(long)]
    pub(crate) add_domain: Vec<Domain>,
    /// Remove a fax domain (repeatable).
    #[arg(long)]
    pub(crate) remove_domain: Vec<Domain>,
}

/// An account's cover page setting on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CoverChoice {
    /// A cover page in front of every fax from mail.
    Yes,
    /// No cover page.
    No,
    /// As `[fax] cover_page` says.
    Inherit,
}

impl CoverChoice {
    /// The account's setting: `None` inherits.
    pub(crate) fn setting(self) -> Option<bool> {
        match self {
            CoverChoice::Yes => Some(true),
            CoverChoice::No => Some(false),
            CoverChoice::Inherit => None,
        }
    }

    /// The change to an account's setting.
    fn patch(self) -> Patch<bool> {
        self.setting().map_or(Patch::Clear, Patch::Set)
    }
}

/// `faxgate account ...`
#[derive(Debug, Subcommand)]
pub(crate) enum AccountCmd {
    /// Add an account to a tenant; prints its id.
    Add {
        /// The tenant [default: the one of --as-tenant]
        #[arg(long)]
        tenant: Option<TenantId>,
        /// The customer's name.
        #[arg(long)]
        name: String,
        /// The reseller's own reference (customer number).
        #[arg(long)]
        reference: Option<String>,
        /// Paper size, overriding the tenant's.
        #[arg(long, value_enum)]
        paper: Option<Paper>,
        /// A cover page on its faxes from mail, or none [default: inherit, as `[fax] cover_page` says]
        #[arg(long, value_enum)]
        cover_page: Option<CoverChoice>,
        /// Station id of its faxes: at most 20 digits, '+' and spaces [default: the tenant's]
        #[arg(long)]
        station_id: Option<String>,
    },
    /// List accounts.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<TenantId>,
    },
    /// Show an account with its numbers and senders.
    Show {
        /// Account id.
        id: AccountId,
    },
    /// Change an account.
    Change {
        /// Account id.
        id: AccountId,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New reference ("none" clears it).
        #[arg(long)]
        reference: Option<String>,
        /// New paper size.
        #[arg(long, value_enum)]
        paper: Option<Paper>,
        /// Allow (true) or forbid (false) faxes abroad.
        #[arg(long)]
        allow_international: Option<bool>,
        /// Allow (true) or forbid (false) premium-rate numbers.
        #[arg(long)]
        allow_premium: Option<bool>,
        /// A cover page on its faxes from mail (yes), none (no), or as `[fax] cover_page` says (inherit).
        #[arg(long, value_enum)]
        cover_page: Option<CoverChoice>,
        /// New station id ("none": the tenant's).
        #[arg(long)]
        station_id: Option<String>,
    },
    /// Terminate an account (now, or at --at); its data is erased after the retention period.
    Terminate {
        /// Account id.
        id: AccountId,
        /// When (RFC 3339, e.g. 2026-12-31T23:59:59Z) [default: now]
        #[arg(long)]
        at: Option<jiff::Timestamp>,
    },
    /// Undo a termination.
    Reactivate {
        /// Account id.
        id: AccountId,
    },
    /// Erase an account now, with its numbers and senders, and destroy its key.
    Remove {
        /// Account id.
        id: AccountId,
    },
}

/// `faxgate number ...`
#[derive(Debug, Subcommand)]
pub(crate) enum NumberCmd {
    /// Give an account a fax number (national numbers read with the tenant's country).
    Add {
        /// The number.
        number: String,
        /// The account.
        #[arg(long)]
        account: AccountId,
        /// Mail received faxes to this address (repeatable).
        #[arg(long = "route")]
        routes: Vec<EmailAddress>,
        /// Attachment format of those routes.
        #[arg(long, value_enum, default_value_t = AttachmentFormat::Pdf)]
        format: AttachmentFormat,
    },
    /// List numbers.
    List {
        /// Only this account's.
        #[arg(long)]
        account: Option<AccountId>,
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<TenantId>,
    },
    /// Show a number and its routes.
    Show {
        /// The number.
        number: String,
    },
    /// Move a number, with its routes, to another account.
    Change {
        /// The number.
        number: String,
        /// The account it moves to.
        #[arg(long)]
        account: AccountId,
    },
    /// Remove a number.
    Remove {
        /// The number.
        number: String,
    },
}

/// `faxgate route ...`
#[derive(Debug, Subcommand)]
pub(crate) enum RouteCmd {
    /// Mail faxes received on NUMBER to EMAIL.
    Add {
        /// The number.
        number: String,
        /// The mailbox.
        email: EmailAddress,
        /// Attachment format.
        #[arg(long, value_enum, default_value_t = AttachmentFormat::Pdf)]
        format: AttachmentFormat,
    },
    /// Change the attachment format of a route.
    Change {
        /// The number.
        number: String,
        /// The mailbox.
        email: EmailAddress,
        /// Attachment format.
        #[arg(long, value_enum)]
        format: AttachmentFormat,
    },
    /// List the routes of a number.
    List {
        /// The number.
        number: String,
    },
    /// Stop mailing faxes received on NUMBER to EMAIL.
    Remove {
        /// The number.
        number: String,
        /// The mailbox.
        email: EmailAddress,
    },
}

/// `faxgate sender ...`
#[derive(Debug, Subcommand)]
pub(crate) enum SenderCmd {
    /// Allow an address (user@domain) or a whole domain (@domain) to send faxes for an account.
    Add {
        /// user@domain or @domain.
        sender: SenderPattern,
        /// The account.
        #[arg(long)]
        account: AccountId,
        /// The caller number its faxes go out with.
        #[arg(long)]
        caller_number: Option<String>,
        /// How it must authenticate.
        #[arg(long, value_enum)]
        auth: SenderAuth,
        /// Which envelope senders (MAIL FROM) it may use once logged in:
        /// its own address, or any its account's senders allow.
        #[arg(long, value_enum, default_value = "own")]
        envelope_from: EnvelopeFrom,
    },
    /// List senders.
    List {
        /// Only this account's.
        #[arg(long)]
        account: Option<AccountId>,
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<TenantId>,
    },
    /// Show a sender.
    Show {
        /// user@domain or @domain.
        sender: SenderPattern,
    },
    /// Change a sender.
    Change {
        /// user@domain or @domain.
        sender: SenderPattern,
        /// New caller number ("none" clears it).
        #[arg(long)]
        caller_number: Option<String>,
        /// New authentication rule.
        #[arg(long, value_enum)]
        auth: Option<SenderAuth>,
        /// New rule for the envelope sender (MAIL FROM) once logged in.
        #[arg(long, value_enum)]
        envelope_from: Option<EnvelopeFrom>,
        /// Set the SMTP AUTH password (of an address with --auth smtp-auth)
        /// from the first line of this file ("-": standard input).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Remove a sender.
    Remove {
        /// user@domain or @domain.
        sender: SenderPattern,
    },
}

/// The first line of `path` ("-": standard input), without its line end.
fn read_password(path: &Path) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the password from standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    Ok(text.lines().next().unwrap_or("").to_owned())
}

/// `faxgate directory ...`
#[derive(Debug, Subcommand)]
pub(crate) enum DirectoryCmd {
    /// Make the directory hold what FILE says (idempotent; all or nothing on errors).
    Apply {
        /// A TOML directory file (see directory.example.toml).
        file: PathBuf,
        /// Also remove numbers and senders, and terminate accounts, that FILE does not list.
        #[arg(long)]
        prune: bool,
        /// Only show what would change.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Writes the schema `name` beside the export at `path`, as
/// `<path>.schema.json`; returns where.
fn write_schema_beside(path: &Path, name: &str) -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    let mut p = path.as_os_str().to_owned();
    p.push(".schema.json");
    let p = PathBuf::from(p);
    let schema = faxgate::gdpr::schemas::schema(name).context("no such schema")?;
    std::fs::write(&p, serde_json::to_string_pretty(&schema)?)
        .with_context(|| format!("cannot write {}", p.display()))?;
    Ok(p)
}

/// A header template from the command line: "off" is the empty template (no header).
fn header_template(t: &str) -> String {
    if t == "off" { String::new() } else { t.to_owned() }
}

/// A change of an optional setting from the command line: `clear` unsets it.
fn none_clears(v: &Option<String>, clear: &str) -> Patch<String> {
    match v.as_deref() {
        Some(x) if x == clear => Patch::Clear,
        x => Patch::set_if(x.map(str::to_owned)),
    }
}

/// Turns an admin command into its request; `None` for `serve` and `check-config`.
pub(crate) fn request(cli: &Cli) -> anyhow::Result<Option<Request>> {
    use anyhow::Context;
    let own_tenant = || cli.as_tenant.clone().context("--tenant is required (or act --as-tenant)");
    Ok(Some(match &cli.command {
        Command::Serve { .. }
        | Command::CheckConfig { .. }
        | Command::Fax(FaxCmd::Loopback(_))
        | Command::Render(_)
        | Command::Topdf(_)
        | Command::RenderWorker
        | Command::Restore { .. }
        | Command::Schema { .. }
        | Command::Manpages { .. }
        | Command::Completions { .. } => {
            return Ok(None);
        }
        Command::Status => Request::Status,
        Command::Queue(q) => {
            use faxgate::gateway::Steer;
            match q {
                QueueCmd::List { tenant, state } => {
                    Request::QueueList { tenant: tenant.clone(), account: None, state: *state }
                }
                QueueCmd::Show { id } => Request::QueueShow { id: *id },
                QueueCmd::Retry { id } => Request::QueueSteer { id: *id, action: Steer::Retry },
                QueueCmd::Cancel { id } => Request::QueueSteer { id: *id, action: Steer::Cancel },
                QueueCmd::Hold { id } => Request::QueueSteer { id: *id, action: Steer::Hold },
                QueueCmd::Release { id } => Request::QueueSteer { id: *id, action: Steer::Release },
            }
        }
        Command::Fax(FaxCmd::Send { file, to, sender, subject, comment, content_type, idempotency_key }) => {
            let data = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let filename =
                file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "document".into());
            let content_type =
                content_type.clone().unwrap_or_else(|| faxgate::admin::send::media_type_of(&filename).to_owned());
            Request::FaxSend {
                sender: sender.clone(),
                to: to.clone(),
                subject: subject.clone(),
                comment: comment.clone(),
                document: faxgate::admin::send::Upload { filename, content_type, data },
                idempotency_key: idempotency_key.clone(),
            }
        }
        Command::Learned(l) => match l {
            LearnedCmd::List { tenant } => Request::LearnedList { tenant: tenant.clone() },
            LearnedCmd::Forget { number, tenant } => {
                Request::LearnedForget { number: number.clone(), tenant: tenant.clone() }
            }
        },
        Command::Token(t) => match t {
            TokenCmd::Create { tenant, account, role, expires, name } => Request::TokenCreate {
                tenant: match (tenant, role) {
                    (Some(t), _) => Some(t.clone()),
                    (None, faxgate::admin::Role::Operator) => None,
                    (None, _) => Some(own_tenant()?),
                },
                account: *account,
                role: *role,
                name: name.clone(),
                expires: *expires,
            },
            TokenCmd::List { tenant, account } => Request::TokenList { tenant: tenant.clone(), account: *account },
            TokenCmd::Revoke { id } => Request::TokenRevoke { id: id.clone() },
        },
        Command::Webhook(w) => match w {
            WebhookCmd::Create { tenant, account, url, events, personal_data, notify } => Request::WebhookCreate {
                tenant: match tenant {
                    Some(t) => t.clone(),
                    None => own_tenant()?,
                },
                account: *account,
                url: url.clone(),
                events: events.clone(),
                personal_data: *personal_data,
                notify: notify.clone(),
            },
            WebhookCmd::List { tenant, account } => Request::WebhookList { tenant: tenant.clone(), account: *account },
            WebhookCmd::Remove { id } => Request::WebhookRemove { id: id.clone() },
            WebhookCmd::Enable { id } => Request::WebhookEnable { id: id.clone() },
        },
        Command::Audit(AuditCmd::List { tenant, since }) => {
            Request::AuditList { tenant: tenant.clone(), since: *since }
        }
        Command::Outbox(o) => match o {
            OutboxCmd::List { tenant } => Request::OutboxList { tenant: tenant.clone() },
            OutboxCmd::Show { id } => Request::OutboxShow { id: *id },
            OutboxCmd::Flush => Request::OutboxFlush,
            OutboxCmd::Drop { id } => Request::OutboxDrop { id: *id },
        },
        Command::Billing(b) => {
            let tenant = |t: &Option<TenantId>| -> anyhow::Result<TenantId> {
                match t {
                    Some(t) => Ok(t.clone()),
                    None => own_tenant(),
                }
            };
            match b {
                BillingCmd::Rules(RulesCmd::Set { tenant: t, file }) => Request::RatingSet {
                    tenant: tenant(t)?,
                    rules: std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?,
                },
                BillingCmd::Rules(RulesCmd::Show { tenant: t }) => Request::RatingShow { tenant: tenant(t)? },
                BillingCmd::Export { tenant: t, month, level, .. } => {
                    Request::BillingExport { tenant: tenant(t)?, month: month.clone(), level: *level }
                }
                BillingCmd::Check { tenant: t, month, level } => {
                    Request::BillingCheck { tenant: tenant(t)?, month: month.clone(), level: *level }
                }
                BillingCmd::Close { tenant: t, month, level } => {
                    Request::BillingClose { tenant: tenant(t)?, month: month.clone(), level: *level }
                }
            }
        }
        Command::Received(r) => match r {
            ReceivedCmd::List { tenant, account } => {
                Request::ReceivedList { tenant: tenant.clone(), account: *account }
            }
            ReceivedCmd::Get { id, .. } => Request::ReceivedGet { id: *id },
        },
        Command::Store(StoreCmd::Verify) => Request::StoreVerify,
        Command::Log(LogCmd::Hash { value, kind }) => Request::LogHash { value: value.clone(), kind: *kind },
        Command::Backup { out } => Request::Backup { out: std::path::absolute(out)? },
        Command::Tenant(t) => match t {
            TenantCmd::Add(a) => Request::TenantAdd {
                tenant: Tenant {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    branding: Branding {
                        display_name: a.display_name.clone().unwrap_or_else(|| a.name.clone()),
                        from_address: a.from_address.clone(),
                        language: a.language,
                    },
                    default_country: a.country,
                    fax_domains: a.domains.clone(),
                    paper: a.paper,
                    time_zone: a.time_zone.clone(),
                    header_template: a.header_template.as_deref().map(header_template),
                    station_id: a.station_id.clone(),
                },
            },
            TenantCmd::List => Request::TenantList,
            TenantCmd::Show { id } => Request::TenantShow { id: id.clone() },
            TenantCmd::Change(c) => Request::TenantChange {
                id: c.id.clone(),
                change: TenantChange {
                    name: c.name.clone(),
                    display_name: c.display_name.clone(),
                    from_address: c.from_address.clone(),
                    language: c.language,
                    default_country: c.country,
                    paper: c.paper,
                    time_zone: none_clears(&c.time_zone, "none"),
                    header_template: match c.header_template.as_deref() {
                        Some("default") => Patch::Clear,
                        t => Patch::set_if(t.map(header_template)),
                    },
                    station_id: none_clears(&c.station_id, "none"),
                    add_domains: c.add_domain.clone(),
                    remove_domains: c.remove_domain.clone(),
                },
            },
            TenantCmd::Remove { id } => Request::TenantRemove { id: id.clone() },
            TenantCmd::Verify { id, claim } => Request::ClaimVerify { tenant: id.clone(), claim: claim.clone() },
            TenantCmd::Approve { id, claim } => Request::ClaimApprove { tenant: id.clone(), claim: claim.clone() },
        },
        Command::Account(a) => match a {
            AccountCmd::Add { tenant, name, reference, paper, cover_page, station_id } => Request::AccountAdd {
                tenant: match tenant {
                    Some(t) => t.clone(),
                    None => own_tenant()?,
                },
                name: name.clone(),
                reference: reference.clone(),
                paper: *paper,
                cover: cover_page.and_then(CoverChoice::setting),
                station_id: station_id.clone(),
            },
            AccountCmd::List { tenant } => Request::AccountList { tenant: tenant.clone() },
            AccountCmd::Show { id } => Request::AccountShow { id: *id },
            AccountCmd::Change {
                id,
                name,
                reference,
                paper,
                allow_international,
                allow_premium,
                cover_page,
                station_id,
            } => Request::AccountChange {
                id: *id,
                change: AccountChange {
                    name: name.clone(),
                    reference: match reference.as_deref() {
                        Some("none") => Patch::Clear,
                        r => Patch::set_if(r.map(String::from)),
                    },
                    paper: Patch::set_if(*paper),
                    allow_international: *allow_international,
                    allow_premium: *allow_premium,
                    cover_page: cover_page.map_or(Patch::Keep, CoverChoice::patch),
                    station_id: none_clears(station_id, "none"),
                },
            },
            AccountCmd::Terminate { id, at } => Request::AccountTerminate { id: *id, at: *at },
            AccountCmd::Reactivate { id } => Request::AccountReactivate { id: *id },
            AccountCmd::Remove { id } => Request::AccountRemove { id: *id },
        },
        Command::Number(n) => match n {
            NumberCmd::Add { number, account, routes, format } => Request::NumberAdd {
                account: *account,
                number: number.clone(),
                routes: routes.iter().map(|e| Route { email: e.clone(), format: *format }).collect(),
            },
            NumberCmd::List { account, tenant } => Request::NumberList { account: *account, tenant: tenant.clone() },
            NumberCmd::Show { number } => Request::NumberShow { number: number.clone() },
            NumberCmd::Change { number, account } => Request::NumberMove { number: number.clone(), account: *account },
            NumberCmd::Remove { number } => Request::NumberRemove { number: number.clone() },
        },
        Command::Route(r) => match r {
            RouteCmd::Add { number, email, format } | RouteCmd::Change { number, email, format } => {
                Request::RouteSet { number: number.clone(), email: email.clone(), format: *format }
            }
            RouteCmd::List { number } => Request::NumberShow { number: number.clone() },
            RouteCmd::Remove { number, email } => Request::RouteRemove { number: number.clone(), email: email.clone() },
        },
        Command::Sender(s) => match s {
            SenderCmd::Add { sender, account, caller_number, auth, envelope_from } => Request::SenderAdd {
                account: *account,
                sender: sender.clone(),
                caller_number: caller_number.clone(),
                auth: *auth,
                envelope_from: *envelope_from,
            },
            SenderCmd::List { account, tenant } => Request::SenderList { account: *account, tenant: tenant.clone() },
            SenderCmd::Show { sender } => Request::SenderShow { sender: sender.clone() },
            SenderCmd::Change { sender, caller_number, auth, envelope_from, password_file } => Request::SenderChange {
                sender: sender.clone(),
                change: SenderChange {
                    caller_number: match caller_number.as_deref() {
                        Some("none") => Patch::Clear,
                        c => Patch::set_if(c.map(String::from)),
                    },
                    auth: *auth,
                    envelope_from: *envelope_from,
                    password: password_file.as_deref().map(read_password).transpose()?,
                },
            },
            SenderCmd::Remove { sender } => Request::SenderRemove { sender: sender.clone() },
        },
        Command::Cdr(CdrCmd::List(sel) | CdrCmd::Export { select: sel, .. }) => Request::CdrList {
            filter: faxgate::cdr::CdrFilter {
                tenant: sel.tenant.clone(),
                account: None,
                number: sel.number.clone(),
                since: sel.month.map(|m| m.0).or(sel.since),
                until: sel.month.map(|m| m.1).or(sel.until),
            },
            page: None,
        },
        Command::Gdpr(g) => match g {
            GdprCmd::Export { subject, .. } => Request::GdprExport { subject: subject.subject()? },
            GdprCmd::Rectify { email, to } => Request::GdprRectify { email: email.clone(), to: to.clone() },
            GdprCmd::Erase { subject } => Request::GdprErase { subject: subject.subject()? },
            GdprCmd::Restrict { subject, lift } => Request::GdprRestrict { subject: subject.subject()?, lift: *lift },
        },
        Command::Disclosure(DisclosureCmd::Export { number, since, until, case, authority, .. }) => {
            Request::Disclosure {
                number: number.clone(),
                since: *since,
                until: *until,
                case: case.clone(),
                authority: authority.clone(),
            }
        }
        Command::Retention(r) => match r {
            RetentionCmd::Status => Request::RetentionStatus,
            RetentionCmd::Audit => Request::RetentionAudit,
            RetentionCmd::Sweep => Request::RetentionSweep,
            RetentionCmd::ConfirmClock => Request::RetentionConfirmClock,
            RetentionCmd::Hold(HoldCmd::Add { number, account, case, until }) => {
                Request::HoldAdd { number: number.clone(), account: *account, case: case.clone(), until: *until }
            }
            RetentionCmd::Hold(HoldCmd::List) => Request::HoldList,
            RetentionCmd::Hold(HoldCmd::Remove { id }) => Request::HoldRemove { id: id.clone() },
        },
        Command::Directory(DirectoryCmd::Apply { file, prune, dry_run }) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            let parsed: DirectoryFile = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.to_string().trim_end()))?;
            Request::DirectoryApply { file: parsed, prune: *prune, dry_run: *dry_run, source: Some(text) }
        }
    }))
}

/// Renders an answer for people: nested `key: value` lines, lists as items.
pub(crate) fn human(value: &serde_json::Value) -> String {
    use serde_json::Value;
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::Null => Some("-".into()),
            Value::Bool(b) => Some(if *b { "yes" } else { "no" }.into()),
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            Value::Array(a) if a.is_empty() => Some("(none)".into()),
            Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
                Some(a.iter().filter_map(scalar).collect::<Vec<_>>().join(", "))
            }
            _ => None,
        }
    }
    fn walk(v: &Value, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let k = k.replace('_', " ");
                    match scalar(v) {
                        Some(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
                        None => {
                            out.push_str(&format!("{pad}{k}:\n"));
                            walk(v, indent + 2, out);
                        }
                    }
                }
            }
            Value::Array(a) => {
                for item in a {
                    match scalar(item) {
                        Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                        None => {
                            let mut inner = String::new();
                            walk(item, 0, &mut inner);
                            for (i, line) in inner.lines().enumerate() {
                                let bullet = if i == 0 { "- " } else { "  " };
                                out.push_str(&format!("{pad}{bullet}{line}\n"));
                            }
                        }
                    }
                }
            }
            other => out.push_str(&format!("{pad}{}\n", scalar(other).unwrap_or_default())),
        }
    }
    let mut out = String::new();
    match value {
        Value::Array(a) if a.is_empty() => out.push_str("(none)\n"),
        Value::Array(a) => {
            // Top-level lists: one block per item, separated by blank lines.
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                walk(item, 0, &mut out);
            }
        }
        v => walk(v, 0, &mut out),
    }
    out
}

/// Prints an answer the way the command wants it; false when the answer is a failure
/// (an audit that found problems).
pub(crate) fn print(cli: &Cli, value: serde_json::Value) -> anyhow::Result<bool> {
    use anyhow::Context;
    let mut success = true;
    match &cli.command {
        Command::Directory(DirectoryCmd::Apply { file, .. }) if !cli.json => {
            let r: faxgate::directory::ApplyReport = serde_json::from_value(value)?;
            success = r.problems.is_empty();
            if !r.problems.is_empty() {
                println!("{}: nothing was changed; the file has {} problem(s):", file.display(), r.problems.len());
                for p in &r.problems {
                    match p.line {
                        Some(l) => println!("  line {l} ({}): {}", p.path, p.message),
                        None => println!("  {}: {}", p.path, p.message),
                    }
                }
            } else if r.changes.is_empty() {
                println!("{}: the directory already holds what the file says", file.display());
            } else {
                let verb = if r.dry_run { "would change" } else { "changed" };
                println!("{}: {verb} {} thing(s):", file.display(), r.changes.len());
                for c in &r.changes {
                    println!("  {c}");
                }
            }
        }
        Command::Log(LogCmd::Hash { .. }) if !cli.json => println!("{}", value.as_str().unwrap_or_default()),
        Command::Store(StoreCmd::Verify) => {
            let r: faxgate::store::verify::VerifyReport = serde_json::from_value(value.clone())?;
            success = r.ok;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!(
                    "store: {} ({} sealed records opened in {} trees{})",
                    if r.ok { "OK, no damage found" } else { "DAMAGED" },
                    r.records,
                    r.trees.len(),
                    match r.erased_not_removed {
                        0 => String::new(),
                        n => format!("; {n} erased records awaiting removal"),
                    }
                );
                for d in &r.damage {
                    println!("  damage: {d}");
                }
                for f in &r.key_faults {
                    println!("  key fault: {f}");
                }
                for k in &r.unused_keys {
                    println!("  key {k} seals no record here");
                }
            }
        }
        Command::Retention(RetentionCmd::Audit) => {
            let r: faxgate::retention::AuditReport = serde_json::from_value(value.clone())?;
            success = r.ok;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!(
                    "audit at {}: {} ({} CDRs, {} accounts, {} finished mails, {} outbox records, {} keys, \
                     {} sweeps in the trail; last sweep {})",
                    r.at,
                    if r.ok { "OK, nothing is kept past its period" } else { "PROBLEMS" },
                    r.checked.cdrs,
                    r.checked.accounts,
                    r.checked.documents,
                    r.checked.outbox,
                    r.checked.keys,
                    r.checked.sweeps,
                    r.last_sweep.map(|t| t.to_string()).unwrap_or_else(|| "never".into())
                );
                for p in &r.problems {
                    println!("  - {p}");
                }
                for i in r.interrupted_sweeps.iter().filter(|i| i.finished_by.is_some()) {
                    let by = i.finished_by.map(|t| t.to_string()).unwrap_or_default();
                    println!("  the sweep begun at {} was cut short; the sweep at {by} finished its work", i.begun);
                }
            }
        }
        Command::Cdr(CdrCmd::Export { format, out, .. }) => {
            let cdrs: Vec<faxgate::cdr::Cdr> = serde_json::from_value(value)?;
            let text = match format {
                ExportFormat::Csv => faxgate::cdr::to_csv(&cdrs)?,
                ExportFormat::Jsonl => {
                    let mut s = String::new();
                    for c in &cdrs {
                        s.push_str(&serde_json::to_string(c)?);
                        s.push('\n');
                    }
                    s
                }
            };
            match out {
                Some(p) => {
                    std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
                    let schema = write_schema_beside(p, if *format == ExportFormat::Csv { "cdr-csv" } else { "cdr" })?;
                    eprintln!("{} CDR(s) written to {} (schema: {})", cdrs.len(), p.display(), schema.display());
                }
                None => print!("{text}"),
            }
        }
        Command::Billing(BillingCmd::Export { format, out, .. }) => {
            let e: faxgate::billing::Export = serde_json::from_value(value)?;
            let text = match format {
                ExportFormat::Csv => e.to_csv()?,
                ExportFormat::Jsonl => e.to_jsonl()?,
            };
            match out {
                Some(p) => {
                    std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
                    let name = if *format == ExportFormat::Csv { "billing-csv" } else { "billing-jsonl" };
                    let schema = write_schema_beside(p, name)?;
                    let mut beside = format!(" (schema: {})", schema.display());
                    if *format == ExportFormat::Csv {
                        let mut summary = p.as_os_str().to_owned();
                        summary.push(".summary.json");
                        let summary = PathBuf::from(summary);
                        std::fs::write(&summary, serde_json::to_string_pretty(&e.summary())?)
                            .with_context(|| format!("cannot write {}", summary.display()))?;
                        beside = format!(" (schema: {}, summary: {})", schema.display(), summary.display());
                    }
                    eprintln!("{}; written to {}{beside}", e.summary_line(), p.display());
                }
                None => {
                    print!("{text}");
                    eprintln!("{}", e.summary_line());
                }
            }
        }
        Command::Billing(BillingCmd::Check { .. }) => {
            let differences = value["differences"].as_array().map_or(0, Vec::len);
            println!("{}", serde_json::to_string_pretty(&value)?);
            success = differences == 0;
        }
        Command::Received(ReceivedCmd::Get { out, .. }) => {
            use base64::Engine;
            let doc = &value["document"];
            let data = base64::engine::general_purpose::STANDARD
                .decode(doc["data"].as_str().unwrap_or_default())
                .context("the daemon's answer holds no document")?;
            std::fs::write(out, &data).with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "{} ({}, {} bytes) written to {}",
                doc["filename"].as_str().unwrap_or_default(),
                doc["content_type"].as_str().unwrap_or_default(),
                data.len(),
                out.display()
            );
        }
        Command::Gdpr(GdprCmd::Export { out, .. }) => {
            let export: faxgate::gdpr::SubjectExport = serde_json::from_value(value.clone())?;
            std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
            let write = |name: &str, text: String| {
                let p = out.join(name);
                std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))
            };
            write("subject.json", serde_json::to_string_pretty(&value)?)?;
            write("schema.json", faxgate::gdpr::SCHEMA.to_owned())?;
            write("cdrs.csv", faxgate::cdr::to_csv(&export.cdrs)?)?;
            write("directory.csv", faxgate::gdpr::directory_csv(&export)?)?;
            for (file, name) in [("cdrs.schema.json", "cdr-csv"), ("directory.schema.json", "directory-csv")] {
                let schema = faxgate::gdpr::schemas::schema(name).expect("a known schema");
                write(file, serde_json::to_string_pretty(&schema)?)?;
            }
            println!(
                "{}: {} account(s), {} number(s), {} sender(s), {} CDR(s){} written to {}",
                match &export.subject {
                    faxgate::gdpr::Subject::Number(n) => n.to_string(),
                    faxgate::gdpr::Subject::Email(e) => e.to_string(),
                },
                export.accounts.len(),
                export.numbers.len(),
                export.senders.len(),
                export.cdrs.len(),
                if export.restricted { " (restricted)" } else { "" },
                out.display()
            );
        }
        Command::Disclosure(DisclosureCmd::Export { format, out, .. }) => {
            let d: faxgate::gdpr::Disclosure = serde_json::from_value(value.clone())?;
            let text = match format {
                ExportFormat::Csv => faxgate::cdr::to_csv(&d.cdrs)?,
                ExportFormat::Jsonl => {
                    let mut s = serde_json::to_string(&serde_json::json!({
                        "case": d.case, "authority": d.authority, "number": d.number,
                        "since": d.since, "until": d.until, "generated_at": d.generated_at, "records": d.cdrs.len(),
                    }))?;
                    s.push('\n');
                    for c in &d.cdrs {
                        s.push_str(&serde_json::to_string(c)?);
                        s.push('\n');
                    }
                    s
                }
            };
            match out {
                Some(p) => {
                    std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
                    let schema = write_schema_beside(
                        p,
                        if *format == ExportFormat::Csv { "cdr-csv" } else { "disclosure-jsonl" },
                    )?;
                    eprintln!(
                        "{} record(s) for case {} written to {} (schema: {}); recorded in the audit trail",
                        d.cdrs.len(),
                        d.case,
                        p.display(),
                        schema.display()
                    );
                }
                None => print!("{text}"),
            }
        }
        _ if cli.json => println!("{}", serde_json::to_string_pretty(&value)?),
        Command::Queue(QueueCmd::List { .. }) => {
            let rows = value.as_array().cloned().unwrap_or_default();
            if rows.is_empty() {
                println!("(none)");
            }
            let text = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_else(|| "-".into());
            for r in rows {
                println!(
                    "{}  {:<8}  {}  pages {}/{}  attempts {}  next {}  last {}  {}",
                    text(&r["id"]),
                    text(&r["state"]),
                    text(&r["to"]),
                    r["pages_sent"],
                    r["pages"],
                    r["attempts"],
                    text(&r["next_attempt"]),
                    text(&r["last_outcome"]),
                    text(&r["tenant"]),
                );
            }
        }
        Command::Webhook(WebhookCmd::Create { .. }) if !cli.json => {
            println!("{}", value["secret"].as_str().unwrap_or_default());
            eprintln!(
                "webhook {} made; keep its signing secret now: it is shown only this once",
                value["record"]["id"].as_str().unwrap_or_default()
            );
        }
        Command::Token(TokenCmd::Create { .. }) if !cli.json => {
            println!("{}", value["token"].as_str().unwrap_or_default());
            eprintln!(
                "token {} made; keep it now: it is shown only this once",
                value["record"]["id"].as_str().unwrap_or_default()
            );
        }
        Command::Audit(AuditCmd::List { .. }) if !cli.json => {
            let rows: Vec<faxgate::admin::AuditEntry> = serde_json::from_value(value)?;
            if rows.is_empty() {
                println!("(none)");
            }
            for e in rows {
                let op = serde_json::to_value(e.op)?;
                println!(
                    "{}  {}  {}  {}  {}  {}  {}",
                    e.seq,
                    e.at,
                    e.by,
                    e.principal,
                    op.as_str().unwrap_or_default(),
                    if e.objects.is_empty() { "-".to_owned() } else { e.objects.join(",") },
                    e.result
                );
            }
        }
        Command::Learned(LearnedCmd::List { .. }) => {
            let rows: Vec<faxgate::learned::Learned> = serde_json::from_value(value)?;
            if rows.is_empty() {
                println!("(none)");
            }
            for l in rows {
                println!("{}  {}  {}  learned {}  until {}", l.tenant, l.number, l.note(), l.learned, l.expires);
            }
        }
        Command::Outbox(OutboxCmd::List { .. }) => {
            let rows = value.as_array().cloned().unwrap_or_default();
            if rows.is_empty() {
                println!("(none)");
            }
            let text = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_else(|| "-".into());
            for r in rows {
                let to: Vec<String> = r["to"].as_array().into_iter().flatten().map(text).collect();
                println!(
                    "{}  {:<7}  to {}  attempts {}  next {}  {}  {}",
                    text(&r["id"]),
                    text(&r["state"]),
                    to.join(", "),
                    r["attempts"],
                    text(&r["next_attempt"]),
                    text(&r["tenant"]),
                    text(&r["last_error"]),
                );
            }
        }
        Command::Cdr(CdrCmd::List(_)) => {
            let cdrs: Vec<faxgate::cdr::Cdr> = serde_json::from_value(value)?;
            if cdrs.is_empty() {
                println!("(none)");
            }
            for c in cdrs {
                let num =
                    |n: &Option<faxgate::types::E164>| n.as_ref().map(|n| n.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "{}  {}  {:<11} {} -> {}  pages {}/{}  {}  {}  attempt {}  {}{}",
                    c.start,
                    c.id,
                    format!("{:?}", c.direction).to_lowercase(),
                    num(&c.calling),
                    num(&c.called),
                    c.pages,
                    c.pages_total.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
                    c.t30_text.as_deref().unwrap_or("-"),
                    c.transport.map(|t| format!("{t:?}")).unwrap_or_else(|| "-".into()),
                    c.attempt,
                    c.tenant,
                    c.learned.map(|l| format!("  learned: {l}")).unwrap_or_default(),
                );
            }
        }
        _ => print!("{}", human(&value)),
    }
    Ok(success)
}

/// `faxgate manpages --out DIR`: faxgate.1, and faxgate-queue.1,
/// faxgate-queue-list.1... for every visible subcommand.
pub(crate) fn manpages(out: &Path) -> anyhow::Result<usize> {
    use anyhow::Context;
    use clap::CommandFactory;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    fn write(cmd: clap::Command, name: String, out: &Path) -> anyhow::Result<usize> {
        let cmd = cmd.name(name.clone());
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
        let file = out.join(format!("{name}.1"));
        std::fs::write(&file, page).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
        let mut n = 1;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
            n += write(sub.clone(), format!("{name}-{}", sub.get_name()), out)?;
        }
        Ok(n)
    }
    let mut cmd = Cli::command();
    cmd.build();
    write(cmd, "faxgate".into(), out)
}

/// `faxgate completions SHELL`.
pub(crate) fn completions(shell: clap_complete::Shell) {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "faxgate", &mut std::io::stdout());
}
