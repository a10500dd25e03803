//! Outgoing mail through lettre: building a message (MIME, encoded
//! non-ASCII headers, a Message-ID) and handing it to a relay (plain,
//! STARTTLS or implicit TLS, with AUTH) or into a local Maildir.
//!
//! A failed hand-over says whether trying again may help
//! ([`SendError::is_transient`]): a 4xx reply or no connection at all is
//! transient; a 5xx reply is permanent.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::Error;

/// How a relay connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayTls {
    /// Plaintext (a trusted relay on the same host only).
    None,
    /// STARTTLS, required (RFC 3207).
    StartTls,
    /// TLS from the first byte (RFC 8314).
    Implicit,
}

/// Where outgoing mail goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A relay.
    Relay {
        /// Its host name (also the name its certificate must carry).
        host: String,
        /// Its port.
        port: u16,
        /// TLS.
        tls: RelayTls,
        /// User name and password for AUTH.
        credentials: Option<(String, String)>,
        /// An extra trusted root certificate (PEM), e.g. a private CA.
        ca: Option<PathBuf>,
        /// Connection and command timeout.
        timeout: Duration,
    },
    /// A local Maildir (`tmp/`, `new/`, `cur/`), written with fsync.
    Maildir(PathBuf),
}

/// Why a message was not handed over.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct SendError {
    permanent: bool,
    reason: String,
}

impl SendError {
    /// Trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        !self.permanent
    }

    /// Trying again will not succeed.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}

/// An attachment of an outgoing message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutAttachment {
    /// File name.
    pub filename: String,
    /// MIME type (`application/pdf`).
    pub content_type: String,
    /// Content.
    pub data: Vec<u8>,
}

/// What an outgoing message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutMessage {
    /// Display name of the sender (the tenant's brand).
    pub from_name: String,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject (any Unicode; encoded per RFC 2047).
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// Attachments.
    pub attachments: Vec<OutAttachment>,
    /// The domain of the Message-ID.
    pub message_id_domain: String,
}

fn parse_address(a: &str) -> Result<Address, Error> {
    a.parse().map_err(|e| Error::Message(format!("address {a:?}: {e}")))
}

static MESSAGE_COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!(
        "{}.{:09}.{}.{}",
        nanos.as_secs(),
        nanos.subsec_nanos(),
        std::process::id(),
        MESSAGE_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The message as RFC 5322 bytes: a Message-ID, headers encoded where not
/// ASCII, the text as UTF-8 quoted-printable, attachments base64.
pub fn build(m: &OutMessage) -> Result<Vec<u8>, Error> {
    let mut b = lettre::Message::builder()
        .from(Mailbox::new(Some(m.from_name.clone()), parse_address(&m.from)?))
        .subject(m.subject.clone())
        .message_id(Some(format!("<{}@{}>", unique(), m.message_id_domain)));
    for to in &m.to {
        b = b.to(Mailbox::new(None, parse_address(to)?));
    }
    let text = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(m.text.clone());
    let message = if m.attachments.is_empty() {
        b.singlepart(text)
    } else {
        let mut mp = MultiPart::mixed().singlepart(text);
        for a in &m.attachments {
            let ct = ContentType::parse(&a.content_type).map_err(|e| Error::Message(format!("content type: {e}")))?;
            mp = mp.singlepart(Attachment::new(a.filename.clone()).body(a.data.clone(), ct));
        }
        b.multipart(mp)
    }
    .map_err(|e| Error::Message(e.to_string()))?;
    Ok(message.formatted())
}

/// A configured way out.
pub struct Outgoing {
    way: Way,
}

enum Way {
    Relay(AsyncSmtpTransport<Tokio1Executor>),
    Maildir(PathBuf),
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.way {
            Way::Relay(_) => f.write_str("Outgoing(relay)"),
            Way::Maildir(p) => write!(f, "Outgoing(maildir {})", p.display()),
        }
    }
}

impl Outgoing {
    /// The way out to `d`.
    pub fn new(d: &Destination) -> Result<Outgoing, Error> {
        let way = match d {
            Destination::Maildir(dir) => {
                for sub in ["tmp", "new", "cur"] {
                    std::fs::create_dir_all(dir.join(sub))?;
                }
                Way::Maildir(dir.clone())
            }
            Destination::Relay { host, port, tls, credentials, ca, timeout } => {
                let params = || -> Result<TlsParameters, Error> {
                    let mut p = TlsParameters::builder(host.clone());
                    if let Some(ca) = ca {
                        let pem = std::fs::read(ca)?;
                        let cert = Certificate::from_pem(&pem).map_err(|e| Error::Tls {
                            what: "relay CA",
                            path: ca.display().to_string(),
                            reason: e.to_string(),
                        })?;
                        p = p.add_root_certificate(cert);
                    }
                    p.build_rustls().map_err(|e| Error::Message(format!("relay TLS: {e}")))
                };
                let tls = match tls {
                    RelayTls::None => Tls::None,
                    RelayTls::StartTls => Tls::Required(params()?),
                    RelayTls::Implicit => Tls::Wrapper(params()?),
                };
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
                    .port(*port)
                    .tls(tls)
                    .timeout(Some(*timeout));
                if let Some((user, password)) = credentials {
                    b = b.credentials(Credentials::new(user.clone(), password.clone()));
                }
                Way::Relay(b.build())
            }
        };
        Ok(Outgoing { way })
    }

    /// Hands `raw` over for `to`, with `from` as the reverse path. `id`
    /// names the message for good: handed into a Maildir a second time (a
    /// stop between the delivery and the record of it), it is not delivered
    /// again. A relay may see it twice then, as SMTP allows (RFC 1047); its
    /// Message-ID is the same.
    pub async fn send(&self, id: &str, from: &str, to: &[String], raw: &[u8]) -> Result<(), SendError> {
        let perm = |reason: String| SendError { permanent: true, reason };
        match &self.way {
            Way::Relay(t) => {
                let from = parse_address(from).map_err(|e| perm(e.to_string()))?;
                let to = to
                    .iter()
                    .map(|a| parse_address(a))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| perm(e.to_string()))?;
                let envelope = lettre::address::Envelope::new(Some(from), to).map_err(|e| perm(e.to_string()))?;
                t.send_raw(&envelope, raw)
                    .await
                    .map(drop)
                    .map_err(|e| SendError { permanent: e.is_permanent(), reason: format!("relay: {e}") })
            }
            Way::Maildir(dir) => {
                let dir = dir.clone();
                let raw = raw.to_vec();
                let id = id.to_owned();
                tokio::task::spawn_blocking(move || maildir_deliver(&dir, &id, &raw))
                    .await
                    .map_err(|e| SendError { permanent: false, reason: e.to_string() })?
                    .map_err(|e| SendError { permanent: false, reason: format!("maildir: {e}") })
            }
        }
    }
}

/// Writes into `tmp/`, fsyncs, renames into `new/`, fsyncs the directory;
/// the file is named after `id`, and a message already there is not
/// written again.
fn maildir_deliver(dir: &Path, id: &str, raw: &[u8]) -> std::io::Result<()> {
    let id: String = id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let name = format!("{id}.faxgate");
    if dir.join("new").join(&name).exists() || dir.join("cur").join(&name).exists() {
        return Ok(());
    }
    let tmp = dir.join("tmp").join(&name);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(raw)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join("new").join(&name))?;
    std::fs::File::open(dir.join("new"))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> OutMessage {
        OutMessage {
            from_name: "Nordtel Fax – Kundeservice".into(),
            from: "fax@nordtel.test".into(),
            to: vec!["kunde@example.test".into()],
            subject: "Fax modtaget fra +45 70 20 30 40 – 3 sider".into(),
            text: "Faxen er vedhæftet.\n".into(),
            attachments: vec![OutAttachment {
                filename: "fax.pdf".into(),
                content_type: "application/pdf".into(),
                data: b"%PDF-1.4 not really".to_vec(),
            }],
            message_id_domain: "fax.nordtel.test".into(),
        }
    }

    #[test]
    fn mime_is_ascii_with_encoded_headers() {
        let raw = build(&sample()).unwrap();
        let text = String::from_utf8(raw.clone()).unwrap();
        assert!(raw.is_ascii(), "{text}");
        assert!(text.contains("Subject: Fax modtaget fra +45 70 20 30 40 =?utf-8?b?4oCT?= 3 sider\r\n"), "{text}");
        assert!(text.contains("From: =?utf-8?"), "{text}");
        assert!(text.contains("Message-ID: <") && text.contains("@fax.nordtel.test>"), "{text}");
        assert!(text.contains("Content-Type: multipart/mixed"), "{text}");
        assert!(text.contains("Content-Disposition: attachment; filename=\"fax.pdf\""), "{text}");
        assert!(text.contains("MIME-Version: 1.0"), "{text}");
    }

    #[tokio::test]
    async fn maildir_delivery() {
        let tmp = std::env::temp_dir().join(format!("faxgate-maildir-{}", unique()));
        let out = Outgoing::new(&Destination::Maildir(tmp.clone())).unwrap();
        let raw = build(&sample()).unwrap();
        out.send("m-1", "fax@nordtel.test", &["kunde@example.test".into()], &raw).await.unwrap();
        // Handed over again (a stop before the delivery was recorded): not
        // delivered twice. Another message is.
        out.send("m-1", "fax@nordtel.test", &["kunde@example.test".into()], &raw).await.unwrap();
        let new: Vec<_> = std::fs::read_dir(tmp.join("new")).unwrap().collect();
        assert_eq!(new.len(), 1);
        out.send("m-2", "fax@nordtel.test", &["kunde@example.test".into()], b"x").await.unwrap();
        assert_eq!(std::fs::read_dir(tmp.join("new")).unwrap().count(), 2);
        assert_eq!(std::fs::read(new[0].as_ref().unwrap().path()).unwrap(), raw);
        assert_eq!(std::fs::read_dir(tmp.join("tmp")).unwrap().count(), 0);
        std::fs::remove_dir_all(tmp).unwrap();
    }
}
