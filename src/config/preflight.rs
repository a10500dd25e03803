//! What a configuration needs of the machine before `serve` can run on it:
//! files present and readable, a certificate that matches its key, a data
//! and a key directory the daemon may use. `faxgate serve` runs
//! [`preflight`] before it opens anything and `faxgate check-config` runs it
//! after parsing, and each check is the function serve uses when it sets the
//! part up, so that the two cannot drift. [`trunk_warnings`] (DNS) is for
//! check-config only: serve resolves trunk hosts in the background.

use super::{Config, MailConfig, Origin, Problem, SmtpConfig};

fn problem(path: &str, message: impl std::fmt::Display) -> Problem {
    Problem { path: path.into(), line: None, message: message.to_string(), warning: false }
}

/// Every problem found, without lines ([`super::locate`] adds them).
pub fn preflight(c: &Config, origin: &Origin) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Err(p) = tls_certificate(&c.smtp, origin) {
        problems.push(p);
    }
    if let Err(p) = api_certificate(c) {
        problems.push(p);
    }
    if let Err(e) = crate::store::Store::check_data_dir(&c.storage.data_dir) {
        problems.push(problem("storage.data_dir", e));
    }
    if let Err(e) = faxgate_retention::vault::check_key_dir(&c.storage.key_dir()) {
        let key = if c.storage.key_dir.is_some() { "storage.key_dir" } else { "storage.data_dir" };
        problems.push(problem(key, e));
    }
    match mail_destination(c) {
        Ok(d @ faxgate_smtp::outgoing::Destination::Relay { .. }) => {
            // Builds the relay transport (reads `relay_ca`); connects to nothing.
            if let Err(e) = faxgate_smtp::outgoing::Outgoing::new(&d) {
                let key = if c.mail.relay_ca.is_some() { "mail.relay_ca" } else { "mail.relay_host" };
                problems.push(problem(key, e));
            }
        }
        Ok(_) => {}
        Err(p) => problems.push(p),
    }
    // The users and groups of `[admin.operators]` and `[admin.tenants]` exist.
    if let Err(e) = crate::admin::access::Access::from_config(&c.admin) {
        let message = e.to_string();
        let key = message.split(':').next().unwrap_or("admin").to_owned();
        problems.push(problem(&key, message.split_once(": ").map_or(message.as_str(), |(_, m)| m)));
    }
    problems
}

/// The TLS certificate of the SMTP listeners, when one is set: both files
/// readable, and the certificate the key's. With the embedded
/// default, a pair that is not all there yet is no problem: `serve` makes
/// a self-signed one at start (`demo_certificate` in the daemon).
pub fn tls_certificate(
    c: &SmtpConfig,
    origin: &Origin,
) -> Result<Option<std::sync::Arc<faxgate_smtp::tls::Certificate>>, Problem> {
    let (Some(cert), Some(key)) = (&c.certificate, &c.key) else { return Ok(None) };
    if *origin == Origin::Embedded && !(cert.exists() && key.exists()) {
        return Ok(None);
    }
    faxgate_smtp::tls::Certificate::load(cert, key).map(Some).map_err(|e| {
        let key_path = match &e {
            faxgate_smtp::Error::Tls { what: "certificate", .. } => "smtp.certificate",
            _ => "smtp.key",
        };
        problem(key_path, e)
    })
}

/// The API's own certificate, when the API is on and has one: both files
/// readable, and the certificate the key's. The daemon loads it with this.
pub fn api_certificate(c: &Config) -> Result<Option<std::sync::Arc<faxgate_smtp::tls::Certificate>>, Problem> {
    let (Some(_), Some(cert), Some(key)) = (&c.api.listen, &c.api.certificate, &c.api.key) else { return Ok(None) };
    faxgate_smtp::tls::Certificate::load(cert, key).map(Some).map_err(|e| {
        let key_path = match &e {
            faxgate_smtp::Error::Tls { what: "certificate", .. } => "api.certificate",
            _ => "api.key",
        };
        problem(key_path, e)
    })
}

/// The relay password: the first line of `mail.relay_password_file`.
pub fn relay_password(m: &MailConfig) -> Result<Option<String>, Problem> {
    let Some(p) = &m.relay_password_file else { return Ok(None) };
    let text = std::fs::read_to_string(p)
        .map_err(|e| problem("mail.relay_password_file", format!("cannot read {}: {e}", p.display())))?;
    Ok(Some(text.lines().next().unwrap_or("").to_owned()))
}

/// Where faxgate's own mail goes: the Maildir, or the relay with its
/// credentials read.
pub fn mail_destination(c: &Config) -> Result<faxgate_smtp::outgoing::Destination, Problem> {
    use super::{MailTransport, RelayTlsMode};
    use faxgate_smtp::outgoing::{Destination, RelayTls};
    let m = &c.mail;
    Ok(match m.transport {
        MailTransport::Maildir => {
            Destination::Maildir(m.maildir.clone().unwrap_or_else(|| c.storage.data_dir.join("maildir")))
        }
        MailTransport::Relay => Destination::Relay {
            host: m.relay_host.clone().ok_or_else(|| problem("mail.relay_host", "is not set"))?,
            port: m.relay_port,
            tls: match m.relay_tls {
                RelayTlsMode::Starttls => RelayTls::StartTls,
                RelayTlsMode::Tls => RelayTls::Implicit,
                RelayTlsMode::None => RelayTls::None,
            },
            credentials: m.relay_user.clone().zip(relay_password(m)?),
            ca: m.relay_ca.clone(),
            timeout: std::time::Duration::from_secs(m.relay_timeout),
        },
    })
}

/// A warning for each trunk whose host does not resolve now (all looked up
/// at once, for at most [`LOOKUP_LIMIT`]). `serve` starts anyway and keeps
/// resolving it in the background; calls through it fail as a network
/// failure until it does.
pub fn trunk_warnings(c: &Config) -> Vec<Problem> {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return Vec::new() };
    let results = rt.block_on(async {
        let mut lookups = tokio::task::JoinSet::new();
        for (i, t) in c.trunk.iter().cloned().enumerate() {
            lookups.spawn(async move { (i, tokio::time::timeout(LOOKUP_LIMIT, t.resolve()).await) });
        }
        let mut results = lookups.join_all().await;
        results.sort_by_key(|(i, _)| *i);
        results
    });
    results
        .into_iter()
        .filter_map(|(i, resolved)| {
            let t = &c.trunk[i];
            let why = match resolved {
                Ok(Ok(_)) => return None,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no DNS answer in {} s", LOOKUP_LIMIT.as_secs()),
            };
            Some(Problem {
                path: format!("trunk.{i}.address"),
                line: None,
                message: format!(
                    "{:?} does not resolve ({why}); the daemon starts anyway, keeps trying, and calls through \
                     trunk {:?} fail until it resolves",
                    t.address, t.name
                ),
                warning: true,
            })
        })
        .collect()
}

/// How long check-config waits for the trunks' hosts to resolve.
const LOOKUP_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
