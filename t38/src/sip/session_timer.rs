//! Session timers (RFC 4028): the `Session-Expires` and `Min-SE` header
//! values, and when a session is refreshed or given up. Pure; call control
//! ([`super::call`]) keeps the timers.

use std::time::Duration;

/// The smallest session interval accepted, and the `Min-SE` we announce
/// (RFC 4028 4: at least 90 s).
pub const MIN_SE: Duration = Duration::from_secs(90);
/// The interval we ask for on calls we place (RFC 4028 4 recommends 1800 s).
pub const SESSION_EXPIRES: Duration = Duration::from_secs(1800);
/// The largest interval we take from a peer (a day); more is read as this.
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// Who refreshes, as a `refresher` parameter writes it: the client (UAC) or
/// the server (UAS) of the transaction the header is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// `refresher=uac`.
    Uac,
    /// `refresher=uas`.
    Uas,
}

/// A `Session-Expires` header: the interval and, when given, the refresher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// The session interval.
    pub interval: Duration,
    /// Who refreshes, when the header says.
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Reads a header value such as `1800;refresher=uac` (RFC 4028 4:
    /// delta-seconds, then parameters). None when it is not that.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let secs: u64 = parts.next()?.trim().parse().ok()?;
        let mut refresher = None;
        for p in parts {
            let Some((k, v)) = p.split_once('=') else { continue };
            if k.trim().eq_ignore_ascii_case("refresher") {
                refresher = match v.trim().to_ascii_lowercase().as_str() {
                    "uac" => Some(Refresher::Uac),
                    "uas" => Some(Refresher::Uas),
                    _ => None,
                };
            }
        }
        Some(Self { interval: Duration::from_secs(secs).min(MAX_INTERVAL), refresher })
    }

    /// The header value.
    pub fn value(&self) -> String {
        match self.refresher {
            Some(Refresher::Uac) => format!("{};refresher=uac", self.interval.as_secs()),
            Some(Refresher::Uas) => format!("{};refresher=uas", self.interval.as_secs()),
            None => self.interval.as_secs().to_string(),
        }
    }
}

/// Reads a `Min-SE` header value (delta-seconds, parameters ignored).
pub fn parse_min_se(value: &str) -> Option<Duration> {
    let secs: u64 = value.split(';').next()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_INTERVAL))
}

/// The session timer of a call: its interval, and whether we refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// The session interval.
    pub interval: Duration,
    /// We refresh; otherwise the peer does, and we end the session when it
    /// does not.
    pub we_refresh: bool,
}

impl SessionTimer {
    /// How long after a refresh the refresher sends the next: half the
    /// interval (RFC 4028 7.4, 10).
    pub fn refresh_after(&self) -> Duration {
        self.interval / 2
    }

    /// How long after a refresh the other side gives the session up: the
    /// interval less a third of it, at most 32 s less (RFC 4028 10).
    pub fn expire_after(&self) -> Duration {
        self.interval - (self.interval / 3).min(Duration::from_secs(32))
    }

    /// The `Session-Expires` of a request we send (we are its client).
    pub fn in_request(&self) -> SessionExpires {
        let refresher = if self.we_refresh { Refresher::Uac } else { Refresher::Uas };
        SessionExpires { interval: self.interval, refresher: Some(refresher) }
    }

    /// The `Session-Expires` of a response we send (we are its server).
    /// With `refresher=uac` the response also needs `Require: timer`.
    pub fn in_response(&self) -> SessionExpires {
        let refresher = if self.we_refresh { Refresher::Uas } else { Refresher::Uac };
        SessionExpires { interval: self.interval, refresher: Some(refresher) }
    }

    /// The timer a request or response from the peer sets: `received` is
    /// its `Session-Expires`, `from_client` whether the peer is the client
    /// of that transaction. Without a refresher named, the client refreshes.
    pub fn from_peer(received: SessionExpires, from_client: bool) -> Self {
        let peer_refreshes = match received.refresher {
            Some(Refresher::Uac) => from_client,
            Some(Refresher::Uas) => !from_client,
            None => from_client,
        };
        Self { interval: received.interval, we_refresh: !peer_refreshes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let se = SessionExpires::parse("90;refresher=UAS").unwrap();
        assert_eq!(se, SessionExpires { interval: Duration::from_secs(90), refresher: Some(Refresher::Uas) });
        assert_eq!(se.value(), "90;refresher=uas");
        assert_eq!(SessionExpires::parse(" 1800 ").unwrap().refresher, None);
        assert_eq!(SessionExpires::parse("soon"), None);
        assert_eq!(SessionExpires::parse("99999999").unwrap().interval, MAX_INTERVAL);
        assert_eq!(parse_min_se("120;x=y"), Some(Duration::from_secs(120)));
    }

    /// RFC 4028 10: refresh at half the interval; the other side gives up
    /// at the interval less min(32 s, a third).
    #[test]
    fn refresh_and_expiry() {
        let t = SessionTimer { interval: Duration::from_secs(90), we_refresh: true };
        assert_eq!(t.refresh_after(), Duration::from_secs(45));
        assert_eq!(t.expire_after(), Duration::from_secs(60));
        let long = SessionTimer { interval: Duration::from_secs(1800), we_refresh: false };
        assert_eq!(long.expire_after(), Duration::from_secs(1768));
        assert_eq!(t.in_request().refresher, Some(Refresher::Uac));
        assert_eq!(t.in_response().refresher, Some(Refresher::Uas));
        assert_eq!(long.in_response().refresher, Some(Refresher::Uac));
    }

    #[test]
    fn who_refreshes_follows_the_transaction() {
        let se = |r| SessionExpires { interval: MIN_SE, refresher: r };
        // The peer's INVITE (it is the client) says refresher=uac: the peer refreshes.
        assert!(!SessionTimer::from_peer(se(Some(Refresher::Uac)), true).we_refresh);
        assert!(SessionTimer::from_peer(se(Some(Refresher::Uas)), true).we_refresh);
        // The peer's 2xx to our INVITE (it is the server) says refresher=uac: we refresh.
        assert!(SessionTimer::from_peer(se(Some(Refresher::Uac)), false).we_refresh);
        assert!(!SessionTimer::from_peer(se(Some(Refresher::Uas)), false).we_refresh);
        assert!(SessionTimer::from_peer(se(None), false).we_refresh);
    }
}
