//! Replies: a code (RFC 5321 section 4.2), an enhanced status code
//! (RFC 3463, advertised as ENHANCEDSTATUSCODES, RFC 2034) and a text.

use std::fmt;

/// An enhanced status code `class.subject.detail` (RFC 3463).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enhanced(pub u8, pub u16, pub u16);

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// A reply to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code, if the reply carries one.
    pub enhanced: Option<Enhanced>,
    /// The text; a newline in it makes a multi-line reply.
    pub text: String,
}

impl Reply {
    /// A reply with an enhanced status code.
    pub fn new(code: u16, enhanced: Enhanced, text: impl Into<String>) -> Reply {
        Reply { code, enhanced: Some(enhanced), text: text.into() }
    }

    /// A reply without an enhanced status code (greeting, 354, 334).
    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply { code, enhanced: None, text: text.into() }
    }

    /// `250 2.0.0 <text>`
    pub fn ok(text: impl Into<String>) -> Reply {
        Reply::new(250, Enhanced(2, 0, 0), text)
    }

    /// 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// 4xx: the client may try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: the client must not try again as it is.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The reply on the wire, each line ending in CRLF. Control characters
    /// in the text are replaced, so a reason built from client input cannot
    /// split the reply.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 16);
        let lines: Vec<&str> = if self.text.is_empty() { vec![""] } else { self.text.split('\n').collect() };
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{sep}", self.code).as_bytes());
            if let Some(e) = self.enhanced {
                out.extend_from_slice(format!("{e} ").as_bytes());
            }
            for c in line.chars() {
                let c = if c.is_control() { '?' } else { c };
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.enhanced {
            Some(e) => write!(f, "{} {e} {}", self.code, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire() {
        assert_eq!(Reply::ok("OK").to_wire(), b"250 2.0.0 OK\r\n");
        assert_eq!(Reply::plain(250, "a\nb").to_wire(), b"250-a\r\n250 b\r\n");
        assert_eq!(Reply::new(550, Enhanced(5, 1, 3), "x\ry").to_wire(), b"550 5.1.3 x?y\r\n");
        assert!(Reply::plain(421, "").is_transient());
        assert!(Reply::plain(554, "").is_permanent());
    }
}
