//! The `faxgate` command line.
//!
//! `faxgate serve` runs the daemon. Every other command is an admin request:
//! while the daemon runs it goes through the admin socket; when no daemon
//! runs the CLI opens the store itself (sled allows one process, so the two
//! never write at once). Output is for people by default and JSON with
//! `--json`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::admin::Request;
use crate::directory::{
    AccountChange, AttachmentFormat, Branding, DirectoryFile, Language, Paper, Patch, Route, SenderAuth, SenderChange,
    SenderPattern, Tenant, TenantChange,
};
use crate::types::{AccountId, Country, Domain, EmailAddress, TenantId};

/// faxgate: Fax-to-Mail / Mail-to-Fax gateway.
#[derive(Debug, Parser)]
#[command(name = "faxgate", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file [default: /etc/faxgate/faxgate.toml, else the embedded default]
    #[arg(long, global = true, env = "FAXGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Act as a tenant's admin: see and change only that tenant's data.
    #[arg(long, global = true, value_name = "TENANT")]
    pub as_tenant: Option<TenantId>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve,
    /// Check the configuration and report every problem with its key and line.
    CheckConfig,
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
}

/// `faxgate tenant ...`
#[derive(Debug, Subcommand)]
pub enum TenantCmd {
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
}

/// `faxgate tenant add`
#[derive(Debug, Args)]
pub struct TenantAdd {
    /// Tenant id: a-z, 0-9 and '-', starting with a letter.
    pub id: TenantId,
    /// The reseller's name.
    #[arg(long)]
    pub name: String,
    /// Display name of the mails sent on its behalf [default: the name]
    #[arg(long)]
    pub display_name: Option<String>,
    /// From: address of the mails sent on its behalf.
    #[arg(long)]
    pub from_address: EmailAddress,
    /// Language of those mails.
    #[arg(long, value_enum, default_value_t = Language::En)]
    pub language: Language,
    /// Country whose national numbers its customers write (DK, DE, US...).
    #[arg(long)]
    pub country: Country,
    /// A mail domain its customers send faxes to (repeatable).
    #[arg(long = "domain")]
    pub domains: Vec<Domain>,
    /// Paper size of its faxes.
    #[arg(long, value_enum, default_value_t = Paper::A4)]
    pub paper: Paper,
}

/// `faxgate tenant change`
#[derive(Debug, Args)]
pub struct TenantChangeArgs {
    /// Tenant id.
    pub id: TenantId,
    /// New name.
    #[arg(long)]
    pub name: Option<String>,
    /// New display name.
    #[arg(long)]
    pub display_name: Option<String>,
    /// New From: address.
    #[arg(long)]
    pub from_address: Option<EmailAddress>,
    /// New language.
    #[arg(long, value_enum)]
    pub language: Option<Language>,
    /// New default country.
    #[arg(long)]
    pub country: Option<Country>,
    /// New paper size.
    #[arg(long, value_enum)]
    pub paper: Option<Paper>,
    /// Add a fax domain (repeatable).
    #[arg(long)]
    pub add_domain: Vec<Domain>,
    /// Remove a fax domain (repeatable).
    #[arg(long)]
    pub remove_domain: Vec<Domain>,
}

/// `faxgate account ...`
#[derive(Debug, Subcommand)]
pub enum AccountCmd {
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
pub enum NumberCmd {
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
    /// Remove a number.
    Remove {
        /// The number.
        number: String,
    },
}

/// `faxgate route ...`
#[derive(Debug, Subcommand)]
pub enum RouteCmd {
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
pub enum SenderCmd {
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
fn read_password(path: &std::path::Path) -> anyhow::Result<String> {
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
pub enum DirectoryCmd {
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

/// Turns an admin command into its request; `None` for `serve` and `check-config`.
pub fn request(cli: &Cli) -> anyhow::Result<Option<Request>> {
    use anyhow::Context;
    let own_tenant = || cli.as_tenant.clone().context("--tenant is required (or act --as-tenant)");
    Ok(Some(match &cli.command {
        Command::Serve | Command::CheckConfig => return Ok(None),
        Command::Status => Request::Status,
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
                    add_domains: c.add_domain.clone(),
                    remove_domains: c.remove_domain.clone(),
                },
            },
            TenantCmd::Remove { id } => Request::TenantRemove { id: id.clone() },
        },
        Command::Account(a) => match a {
            AccountCmd::Add { tenant, name, reference, paper } => Request::AccountAdd {
                tenant: match tenant {
                    Some(t) => t.clone(),
                    None => own_tenant()?,
                },
                name: name.clone(),
                reference: reference.clone(),
                paper: *paper,
            },
            AccountCmd::List { tenant } => Request::AccountList { tenant: tenant.clone() },
            AccountCmd::Show { id } => Request::AccountShow { id: *id },
            AccountCmd::Change { id, name, reference, paper } => Request::AccountChange {
                id: *id,
                change: AccountChange {
                    name: name.clone(),
                    reference: match reference.as_deref() {
                        Some("none") => Patch::Clear,
                        r => Patch::set_if(r.map(String::from)),
                    },
                    paper: Patch::set_if(*paper),
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
            SenderCmd::Add { sender, account, caller_number, auth } => Request::SenderAdd {
                account: *account,
                sender: sender.clone(),
                caller_number: caller_number.clone(),
                auth: *auth,
            },
            SenderCmd::List { account, tenant } => Request::SenderList { account: *account, tenant: tenant.clone() },
            SenderCmd::Show { sender } => Request::SenderShow { sender: sender.clone() },
            SenderCmd::Change { sender, caller_number, auth, password_file } => Request::SenderChange {
                sender: sender.clone(),
                change: SenderChange {
                    caller_number: match caller_number.as_deref() {
                        Some("none") => Patch::Clear,
                        c => Patch::set_if(c.map(String::from)),
                    },
                    auth: *auth,
                    password: password_file.as_deref().map(read_password).transpose()?,
                },
            },
            SenderCmd::Remove { sender } => Request::SenderRemove { sender: sender.clone() },
        },
        Command::Directory(DirectoryCmd::Apply { file, prune, dry_run }) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            let parsed: DirectoryFile = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.to_string().trim_end()))?;
            Request::DirectoryApply { file: parsed, prune: *prune, dry_run: *dry_run }
        }
    }))
}

/// Renders an answer for people: nested `key: value` lines, lists as items.
pub fn human(value: &serde_json::Value) -> String {
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
