//! Who may send a fax by mail, and to which recipients: deny by default.
//!
//! A sender is either an SMTP AUTH user (a sender entry for one address
//! with `auth = smtp-auth` and a password) or a sender entry (address or
//! domain) with `auth = dmarc`, whose message must then pass DMARC-aligned
//! SPF or DKIM (checked by the spool once the message is in). A logged-in
//! sender's envelope sender is its own address, or with `envelope_from =
//! account` one its account's sender entries allow: reports (with the
//! original mail on failure) go only to a sender so verified. Recipients
//! must be fax numbers in a fax domain of the sender's own tenant; any
//! other domain is relaying, refused.

use faxgate_smtp::{Context, Enhanced, MailParams, Policy, Reply, Transaction};

use super::address::{self, RecipientError};
use crate::directory::{AccountStatus, Directory, EnvelopeFrom, Scope, Sender, SenderAuth, SenderPattern};
use crate::types::{E164, EmailAddress};

/// The mail leg's decisions against the directory.
#[derive(Debug, Clone)]
pub struct MailPolicy {
    directory: Directory,
}

fn refuse(code: u16, e: Enhanced, text: impl Into<String>) -> Reply {
    Reply::new(code, e, text)
}

fn internal(e: &crate::Error) -> Reply {
    tracing::error!(error = %e, "mail policy: directory error");
    refuse(451, Enhanced(4, 3, 0), "temporary failure, try again later")
}

/// Who sends, once MAIL FROM is accepted.
#[derive(Debug, Clone)]
pub struct Authorised {
    /// The sender entry that allows it.
    pub sender: Sender,
    /// Its message must still pass DMARC.
    pub needs_dmarc: bool,
}

impl MailPolicy {
    /// The policy over `directory`.
    pub fn new(directory: Directory) -> Self {
        MailPolicy { directory }
    }

    /// The directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The sender entry allowing this client and reverse path to send, or
    /// the refusal.
    pub fn authorise(&self, context: &Context, from: &str) -> Result<Authorised, Reply> {
        let sender = if let Some(user) = &context.auth_user {
            let addr: EmailAddress =
                user.parse().map_err(|_| refuse(550, Enhanced(5, 7, 1), "authenticated user has no sender entry"))?;
            let sender = match self.directory.sender_get(&Scope::Operator, &SenderPattern::Address(addr)) {
                Ok(s) if s.auth == SenderAuth::SmtpAuth => s,
                Ok(_) | Err(crate::Error::NotFound(_)) => {
                    return Err(refuse(550, Enhanced(5, 7, 1), "authenticated user may not send faxes"));
                }
                Err(e) => return Err(internal(&e)),
            };
            self.envelope_sender(&sender, from)?;
            sender
        } else {
            if from.is_empty() {
                return Err(refuse(550, Enhanced(5, 7, 1), "the null sender may not send faxes"));
            }
            let addr: EmailAddress = from.parse().map_err(|e: crate::types::AddressError| {
                refuse(553, Enhanced(5, 1, 7), format!("bad sender address: {e}"))
            })?;
            match self.directory.lookup_sender(&addr) {
                Ok(Some(s)) if s.auth == SenderAuth::SmtpAuth => {
                    return Err(refuse(
                        530,
                        Enhanced(5, 7, 0),
                        format!("authentication required for {from}: use STARTTLS and AUTH"),
                    ));
                }
                Ok(Some(s)) => s,
                Ok(None) => {
                    return Err(refuse(550, Enhanced(5, 7, 1), format!("sender {from} is not allowed to send faxes")));
                }
                Err(e) => return Err(internal(&e)),
            }
        };
        match self.directory.account_get(&Scope::Operator, &sender.account) {
            Ok(a) if a.status(self.directory.now()) == AccountStatus::Active => {}
            Ok(_) | Err(crate::Error::NotFound(_)) => {
                return Err(refuse(550, Enhanced(5, 7, 1), "the sender's account is not active"));
            }
            Err(e) => return Err(internal(&e)),
        }
        let needs_dmarc = sender.auth == SenderAuth::Dmarc && context.auth_user.is_none();
        Ok(Authorised { sender, needs_dmarc })
    }

    /// Whether `sender`, logged in, may use `from` as its envelope sender.
    fn envelope_sender(&self, sender: &Sender, from: &str) -> Result<(), Reply> {
        let own = sender.pattern.to_string();
        let rule = match sender.envelope_from {
            EnvelopeFrom::Own => "envelope_from = own",
            EnvelopeFrom::Account => "envelope_from = account",
        };
        let refused = |why: String| {
            tracing::info!("mail refused: a logged-in sender's envelope sender is not allowed ({rule})");
            refuse(550, Enhanced(5, 7, 1), why)
        };
        let Ok(addr) = from.parse::<EmailAddress>() else {
            return Err(refused(format!("a logged-in sender sends as {own}, not as <{from}> (sender rule: {rule})")));
        };
        let as_pattern = SenderPattern::Address(addr.clone());
        if as_pattern.canonical() == sender.pattern.canonical() {
            return Ok(());
        }
        match sender.envelope_from {
            EnvelopeFrom::Own => {
                Err(refused(format!("a logged-in sender sends as {own}, not as {from} (sender rule: {rule})")))
            }
            EnvelopeFrom::Account => match self.directory.lookup_sender(&addr) {
                Ok(Some(s)) if s.account == sender.account => Ok(()),
                Ok(_) => Err(refused(format!(
                    "{from} is not among the senders of the account of {own} (sender rule: {rule})"
                ))),
                Err(e) => Err(internal(&e)),
            },
        }
    }

    /// The fax number a recipient names, if the sender may fax to it.
    pub fn recipient(&self, sender: &Sender, to: &str) -> Result<E164, Reply> {
        let (local, domain) = address::split(to).map_err(|e| match e {
            RecipientError::Malformed(m) | RecipientError::BadNumber(m) => refuse(550, Enhanced(5, 1, 3), m),
        })?;
        let tenant = match self.directory.tenant_for_domain(&domain) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Err(refuse(
                    550,
                    Enhanced(5, 7, 1),
                    format!("relaying denied: {domain} is not a fax domain here"),
                ));
            }
            Err(e) => return Err(internal(&e)),
        };
        if tenant.id != sender.tenant {
            return Err(refuse(
                550,
                Enhanced(5, 7, 1),
                format!("relaying denied: this sender may not fax through {domain}"),
            ));
        }
        let number = address::number(&local, tenant.default_country).map_err(|e| match e {
            RecipientError::Malformed(m) | RecipientError::BadNumber(m) => refuse(550, Enhanced(5, 1, 3), m),
        })?;
        let account = self.directory.account_get(&Scope::Operator, &sender.account).map_err(|e| internal(&e))?;
        crate::gateway::policy::check(&account, tenant.default_country, &number)
            .map_err(|why| refuse(550, Enhanced(5, 7, 1), why))?;
        Ok(number)
    }
}

impl Policy for MailPolicy {
    async fn auth(&self, _context: &Context, user: &str, password: &str) -> Reply {
        let failed = || refuse(535, Enhanced(5, 7, 8), "authentication credentials invalid");
        let Ok(addr) = user.parse::<EmailAddress>() else { return failed() };
        let hash = match self.directory.sender_get(&Scope::Operator, &SenderPattern::Address(addr)) {
            Ok(s) if s.auth == SenderAuth::SmtpAuth => s.password_hash,
            Ok(_) | Err(crate::Error::NotFound(_)) => None,
            Err(e) => return internal(&e),
        };
        // Verify against a hash even for an unknown user, so that the time
        // taken does not tell which users exist.
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || super::password::verify(&hash, &password)).await.unwrap_or(false);
        if ok && known {
            Reply::new(235, Enhanced(2, 7, 0), "authenticated")
        } else {
            crate::metrics::smtp_refused("auth");
            failed()
        }
    }

    async fn mail_from(&self, context: &Context, from: &str, _params: &MailParams) -> Reply {
        match self.authorise(context, from) {
            Ok(a) if a.needs_dmarc => Reply::new(250, Enhanced(2, 1, 0), "sender ok; the message must pass DMARC"),
            Ok(_) => Reply::new(250, Enhanced(2, 1, 0), "sender ok"),
            Err(r) => {
                crate::metrics::smtp_refused("sender");
                r
            }
        }
    }

    async fn rcpt_to(&self, context: &Context, transaction: &Transaction, to: &str) -> Reply {
        let a = match self.authorise(context, &transaction.from) {
            Ok(a) => a,
            Err(r) => return r,
        };
        match self.recipient(&a.sender, to) {
            Ok(n) => Reply::new(250, Enhanced(2, 1, 5), format!("fax to {n} ok")),
            Err(r) => {
                crate::metrics::smtp_refused("recipient");
                r
            }
        }
    }
}

/// An argon2id hash of a random password nobody knows, verified in place of
/// a missing one.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    super::password::hash(&uuid::Uuid::new_v4().to_string()).expect("a uuid is long enough")
});
