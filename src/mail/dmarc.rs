//! DMARC for senders that do not log in: the message must pass SPF or DKIM
//! aligned with its From: domain (RFC 7489), and that domain must be the
//! envelope sender's. Checked with the `mail-auth` crate against the DNS
//! resolvers configured ([`crate::dns`]).

use std::net::SocketAddr;
use std::sync::Arc;

use faxgate_smtp::{Context, Enhanced, Reply};
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DmarcResult, MessageAuthenticator};

use crate::Error;

/// The DMARC checker.
#[derive(Clone)]
pub struct Dmarc {
    authenticator: Arc<MessageAuthenticator>,
    hostname: String,
}

impl std::fmt::Debug for Dmarc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dmarc").field("hostname", &self.hostname).finish_non_exhaustive()
    }
}

fn refused(why: impl std::fmt::Display) -> Reply {
    Reply::new(550, Enhanced(5, 7, 26), format!("message refused: {why}"))
}

impl Dmarc {
    /// A checker asking `servers` (UDP and TCP), or the system's resolvers when empty.
    pub fn new(servers: &[SocketAddr], hostname: &str) -> Result<Dmarc, Error> {
        let (config, opts) = crate::dns::resolver_config(servers)?;
        let authenticator = MessageAuthenticator::new(config, opts)
            .map_err(|e| Error::Invalid(format!("DNS resolver for DMARC: {e}")))?;
        Ok(Dmarc { authenticator: Arc::new(authenticator), hostname: hostname.to_owned() })
    }

    /// `Ok` when the message passes DMARC for the envelope sender's domain;
    /// otherwise the refusal, saying why.
    pub async fn check(&self, context: &Context, mail_from: &str, data: &[u8]) -> Result<(), Reply> {
        let Some((_, from_domain)) = mail_from.rsplit_once('@') else {
            return Err(refused("the sender has no domain"));
        };
        let message = AuthenticatedMessage::parse(data).ok_or_else(|| refused("the message cannot be parsed"))?;
        let a = &self.authenticator;
        let dkim = a.verify_dkim(&message).await;
        let spf =
            a.verify_spf(SpfParameters::verify_mail_from(context.peer, &context.helo, &self.hostname, mail_from)).await;
        let dmarc = a
            .verify_dmarc(
                DmarcParameters::new(&message, &dkim, from_domain, &spf)
                    .with_domain_suffix_fn(|d| psl::domain_str(d).unwrap_or(d)),
            )
            .await;
        if !dmarc.domain().eq_ignore_ascii_case(from_domain) {
            return Err(refused(format!(
                "the From: domain {} is not the sender's domain {from_domain}",
                dmarc.domain()
            )));
        }
        match (dmarc.spf_result(), dmarc.dkim_result()) {
            (DmarcResult::Pass, _) | (_, DmarcResult::Pass) => Ok(()),
            (DmarcResult::TempError(e), _) | (_, DmarcResult::TempError(e)) => {
                Err(Reply::new(451, Enhanced(4, 7, 26), format!("DMARC check failed for now ({e}); try again later")))
            }
            (DmarcResult::None, DmarcResult::None) if dmarc.dmarc_record().is_none() => {
                Err(refused(format!("{from_domain} publishes no DMARC record, and this sender must pass DMARC")))
            }
            _ => Err(refused(format!(
                "DMARC failed for {from_domain}: neither SPF nor DKIM passed aligned with the From: domain"
            ))),
        }
    }
}
