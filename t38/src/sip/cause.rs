//! Why an outgoing call failed, from its final SIP status (RFC 3261 21),
//! and whether the queue should try again.

/// The cause of a failed call attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// 486 Busy Here, 600 Busy Everywhere.
    #[error("busy ({0})")]
    Busy(u16),
    /// 480, 408, or no final answer before our timer (we sent CANCEL).
    #[error("no answer ({0})")]
    NoAnswer(u16),
    /// 404, 484, 410, 604: the number does not exist.
    #[error("bad number ({0})")]
    BadNumber(u16),
    /// 403, 401/407 that digest could not satisfy, 603: refused for good.
    #[error("refused ({0})")]
    Refused(u16),
    /// 488/606 and nothing left to offer.
    #[error("media not acceptable ({0})")]
    NotAcceptable(u16),
    /// 503, 500, 502, 504, and other 5xx: try again later.
    #[error("trunk failure ({0})")]
    TrunkFailure(u16),
    /// Any other final status.
    #[error("call failed ({0})")]
    Other(u16),
    /// The trunk is at its channel limit here; no request was sent.
    #[error("no free channel on the trunk")]
    NoChannel,
    /// Transport or transaction failure (no response at all).
    #[error("signalling: {0}")]
    Signalling(String),
    /// The answer's SDP was unusable.
    #[error("bad SDP in answer: {0}")]
    BadSdp(String),
    /// The fax engine could not start (file missing, bad settings).
    #[error("fax engine: {0}")]
    Engine(String),
}

impl CallError {
    /// Maps a final non-2xx status.
    pub fn from_status(code: u16) -> Self {
        match code {
            486 | 600 => Self::Busy(code),
            480 | 408 | 487 => Self::NoAnswer(code),
            404 | 484 | 410 | 604 | 485 => Self::BadNumber(code),
            401 | 403 | 407 | 603 => Self::Refused(code),
            488 | 606 => Self::NotAcceptable(code),
            500..=599 => Self::TrunkFailure(code),
            _ => Self::Other(code),
        }
    }

    /// The SIP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Busy(c)
            | Self::NoAnswer(c)
            | Self::BadNumber(c)
            | Self::Refused(c)
            | Self::NotAcceptable(c)
            | Self::TrunkFailure(c)
            | Self::Other(c) => Some(*c),
            _ => None,
        }
    }

    /// Worth trying again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Busy(_) | Self::NoAnswer(_) | Self::TrunkFailure(_) | Self::NoChannel | Self::Signalling(_)
        )
    }

    /// Trying again will not help.
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        for (c, transient) in [
            (486, true),
            (600, true),
            (480, true),
            (408, true),
            (404, false),
            (484, false),
            (403, false),
            (503, true),
            (488, false),
            (606, false),
            (699, false),
        ] {
            let e = CallError::from_status(c);
            assert_eq!(e.is_transient(), transient, "{c}: {e}");
            assert_eq!(e.is_permanent(), !transient);
            assert_eq!(e.status(), Some(c));
        }
        assert!(matches!(CallError::from_status(600), CallError::Busy(600)));
        assert!(matches!(CallError::from_status(484), CallError::BadNumber(484)));
        assert!(CallError::NoChannel.is_transient());
    }
}
