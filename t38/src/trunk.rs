//! Trunk configuration: the SIP peers faxgate places and takes calls through.
//!
//! These types are deserialised from the daemon's configuration file; unknown
//! keys are refused so that a typo is an error, not a silently ignored setting.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::sdp::Capabilities;

/// One trunk (an SBC or a carrier's proxy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// A name for logs and CDRs.
    pub name: String,
    /// The local address faxgate's user agent for this trunk binds to (UDP).
    /// Each trunk has its own signalling socket.
    #[serde(default)]
    pub bind: Option<SocketAddr>,
    /// Faxes from mail leave through this trunk (the first such trunk).
    #[serde(default)]
    pub outbound: bool,
    /// Host name or IP address of the trunk's SIP signalling.
    pub address: String,
    /// Its SIP port.
    #[serde(default = "default_sip_port")]
    pub port: u16,
    /// Domain used in request URIs and From (default: `address`).
    #[serde(default)]
    pub domain: Option<String>,
    /// Registration, for trunks that need it.
    #[serde(default)]
    pub registration: Option<Registration>,
    /// Credentials answering 401/407 challenges on INVITE.
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// Source addresses allowed to send requests; anything else is dropped
    /// without a response (and counted). Empty: only `address` (resolved).
    #[serde(default)]
    pub allowed_sources: Vec<IpAddr>,
    /// Addresses the peer's media (RTP, UDPTL) may be at: an SDP naming
    /// any other is refused with 488, and packets from elsewhere are not
    /// answered. Empty: the signalling sources (`allowed_sources`, else
    /// `address`, resolved).
    #[serde(default)]
    pub media_sources: Vec<IpAddr>,
    /// Most simultaneous calls on this trunk, both directions.
    #[serde(default = "default_channels")]
    pub channels: u32,
    /// Status sent when the trunk is at its channel limit: 486 or 503.
    #[serde(default = "default_busy_status")]
    pub busy_status: u16,
    /// Which media to prefer.
    #[serde(default)]
    pub media: MediaPreference,
    /// Seconds the sending side waits before asking for T.38 itself.
    #[serde(default = "default_sender_reinvite_delay")]
    pub sender_reinvite_delay_secs: u32,
    /// Seconds to wait for an answer before CANCEL.
    #[serde(default = "default_answer_timeout")]
    pub answer_timeout_secs: u32,
    /// Seconds an incoming call rings (180 Ringing) before faxgate answers
    /// it, as HylaFAX's `RingsBeforeAnswer` (0: answer at once). A caller
    /// that gives up meanwhile (CANCEL) gets 487 and leaves a CDR.
    #[serde(default)]
    pub answer_delay_secs: u32,
    /// Send OPTIONS keep-alives this often (0: never).
    #[serde(default)]
    pub keepalive_secs: u32,
    /// Overrides the peer's `T38FaxMaxDatagram` (some announce nonsense).
    #[serde(default)]
    pub max_datagram: Option<u32>,
    /// UDPTL redundancy depth we send (0: none).
    #[serde(default = "default_redundancy")]
    pub redundancy: u8,
    /// Use ECM (T.30 error correction mode).
    #[serde(default = "default_true")]
    pub ecm: bool,
    /// The session interval (RFC 4028 `Session-Expires`) asked for on calls
    /// placed through this trunk, in seconds (90 or more).
    #[serde(default = "default_session_expires")]
    pub session_expires_secs: u32,
}

/// REGISTER settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The address-of-record user part.
    pub user: String,
    /// Requested expiry in seconds; refreshed before it runs out.
    #[serde(default = "default_expires")]
    pub expires_secs: u32,
}

/// Digest credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password (never written out).
    #[serde(skip_serializing)]
    pub password: String,
    /// Realm, when it must be fixed rather than taken from the challenge.
    #[serde(default)]
    pub realm: Option<String>,
}

/// T.38 or G.711.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MediaPreference {
    /// Start in audio, switch to T.38 by re-INVITE; G.711 if refused.
    #[default]
    T38Preferred,
    /// Offer T.38 in the initial INVITE.
    T38Initial,
    /// G.711 only; T.38 re-INVITEs are refused with 488.
    AudioOnly,
}

fn default_sip_port() -> u16 {
    5060
}
fn default_channels() -> u32 {
    30
}
fn default_busy_status() -> u16 {
    503
}
fn default_sender_reinvite_delay() -> u32 {
    3
}
fn default_answer_timeout() -> u32 {
    60
}
fn default_redundancy() -> u8 {
    crate::udptl::DEFAULT_REDUNDANCY
}
fn default_expires() -> u32 {
    600
}
fn default_true() -> bool {
    true
}
fn default_session_expires() -> u32 {
    crate::sip::session_timer::SESSION_EXPIRES.as_secs() as u32
}

impl TrunkConfig {
    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), crate::Error> {
        if !matches!(self.busy_status, 486 | 503) {
            return Err(crate::Error::InvalidSetting("busy_status must be 486 or 503"));
        }
        if self.channels == 0 {
            return Err(crate::Error::InvalidSetting("channels must be at least 1"));
        }
        if usize::from(self.redundancy) > crate::udptl::MAX_RECOVERY_ENTRIES {
            return Err(crate::Error::InvalidSetting("redundancy above 16"));
        }
        if self.answer_delay_secs > 60 {
            return Err(crate::Error::InvalidSetting("answer_delay_secs above 60"));
        }
        if u64::from(self.session_expires_secs) < crate::sip::session_timer::MIN_SE.as_secs() {
            return Err(crate::Error::InvalidSetting("session_expires_secs below 90 (RFC 4028)"));
        }
        if matches!(self.max_datagram, Some(d) if !(100..=1400).contains(&d)) {
            return Err(crate::Error::InvalidSetting("max_datagram must be 100 to 1400"));
        }
        Ok(())
    }

    /// Resolves the trunk's signalling address (`address`, `port`): the
    /// first address the resolver gives. The user agent resolves with this
    /// (again in the background while it fails), and `faxgate check-config`
    /// warns when it fails.
    pub async fn resolve(&self) -> std::io::Result<SocketAddr> {
        tokio::net::lookup_host((self.address.as_str(), self.port)).await?.next().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} has no address", self.address))
        })
    }

    /// The SDP capabilities this trunk's settings give.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            t38: self.media != MediaPreference::AudioOnly,
            peer_max_datagram: self.max_datagram,
            redundancy: self.redundancy,
            ..Capabilities::default()
        }
    }

    /// Whether `src` may send us requests.
    pub fn allows(&self, src: IpAddr, resolved: Option<SocketAddr>) -> bool {
        if self.allowed_sources.is_empty() {
            return resolved.is_some_and(|r| r.ip() == src) || self.address.parse::<IpAddr>().ok() == Some(src);
        }
        self.allowed_sources.contains(&src)
    }

    /// Where the peer's media may be, `resolved` being the trunk's address
    /// (`None` while its host does not resolve).
    pub fn media_sources(&self, resolved: Option<SocketAddr>) -> Vec<IpAddr> {
        if !self.media_sources.is_empty() {
            return self.media_sources.clone();
        }
        if !self.allowed_sources.is_empty() {
            return self.allowed_sources.clone();
        }
        let mut v: Vec<IpAddr> = resolved.map(|r| r.ip()).into_iter().collect();
        if let Ok(ip) = self.address.parse::<IpAddr>()
            && !v.contains(&ip)
        {
            v.push(ip);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        trunk: Vec<TrunkConfig>,
    }

    const EXAMPLE: &str = r#"
[[trunk]]
name = "carrier"
address = "192.0.2.1"
allowed_sources = ["192.0.2.1", "192.0.2.2"]
channels = 4
busy_status = 486
media = "t38-initial"
max_datagram = 300
redundancy = 2
ecm = false
registration = { user = "4533221100", expires_secs = 300 }
credentials = { username = "fax", password = "secret" }
"#;

    #[test]
    fn parses_example() {
        let f: File = toml::from_str(EXAMPLE).unwrap();
        let t = &f.trunk[0];
        t.validate().unwrap();
        assert_eq!(t.port, 5060);
        assert_eq!(t.media, MediaPreference::T38Initial);
        assert_eq!(t.capabilities().peer_max_datagram, Some(300));
        assert!(t.allows("192.0.2.2".parse().unwrap(), None));
        assert!(!t.allows("198.51.100.1".parse().unwrap(), None));
        assert!(!t.ecm);
    }

    /// The trunk's overrides reach what a call negotiates: its redundancy
    /// depth and its max datagram instead of the peer's (often wrong) one.
    #[test]
    fn overrides_shape_the_negotiated_media() {
        use crate::sdp::{LocalMedia, Negotiated, SessionDescription, answer};
        use crate::udptl::ErrorCorrection;
        let f: File = toml::from_str(EXAMPLE).unwrap();
        let offer = SessionDescription::parse(
            b"v=0\r\no=- 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n\
              m=image 4000 udptl t38\r\na=T38FaxVersion:0\r\na=T38FaxMaxDatagram:1400\r\n\
              a=T38FaxUdpEC:t38UDPRedundancy\r\n",
        )
        .unwrap();
        let local = LocalMedia { addr: "192.0.2.1".parse().unwrap(), audio_port: 5000, image_port: 5002 };
        let (_, n) = answer(&f.trunk[0].capabilities(), &offer, &local, 1, 1).unwrap();
        match n {
            Negotiated::T38 { ec, max_datagram, .. } => {
                assert_eq!(ec, ErrorCorrection::Redundancy { depth: 2 });
                assert_eq!(max_datagram, 300);
            }
            other => panic!("{other:?}"),
        }
    }

    /// Media may be where the trunk's signalling is, unless said otherwise.
    #[test]
    fn media_sources_default_to_the_signalling_sources() {
        let t: TrunkConfig = serde_json::from_value(serde_json::json!({"name": "x", "address": "192.0.2.1"})).unwrap();
        let resolved: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        assert_eq!(t.media_sources(Some(resolved)), vec![resolved.ip()]);
        let f: File = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(f.trunk[0].media_sources(Some(resolved)), f.trunk[0].allowed_sources);
        let t = TrunkConfig { media_sources: vec!["198.51.100.20".parse().unwrap()], ..t };
        assert_eq!(t.media_sources(Some(resolved)), t.media_sources);
        assert_eq!(t.session_expires_secs, 1800);
        let t = TrunkConfig { session_expires_secs: 60, ..t };
        assert!(t.validate().is_err(), "below RFC 4028's 90 s");
    }

    #[test]
    fn unknown_key_refused() {
        let v = serde_json::json!({"name": "x", "address": "1.2.3.4", "chanels": 3});
        let e = serde_json::from_value::<TrunkConfig>(v).unwrap_err();
        assert!(e.to_string().contains("chanels"), "{e}");
    }

    #[test]
    fn validation() {
        let v = serde_json::json!({"name": "x", "address": "1.2.3.4", "busy_status": 404});
        let t: TrunkConfig = serde_json::from_value(v).unwrap();
        assert!(t.validate().is_err());
        let v = serde_json::json!({"name": "x", "address": "1.2.3.4"});
        let t: TrunkConfig = serde_json::from_value(v).unwrap();
        t.validate().unwrap();
        assert!(t.allows("1.2.3.4".parse().unwrap(), None));
    }
}
