//! The command parser (RFC 5321 section 4.1, with the parameters of RFC 1870
//! SIZE, RFC 6152 8BITMIME and RFC 6531 SMTPUTF8, and RFC 4954 AUTH).
//!
//! [`parse`] reads one command line without its line ending. It never
//! panics and never allocates more than the line it is given; the fuzz
//! target `command` holds it to that.

use std::fmt;

/// The longest command line accepted, line ending included. RFC 5321
/// section 4.5.3.1.4 sets 512 octets; AUTH responses (RFC 4954 section 4)
/// may be up to 12288, which this allows for every line.
pub const MAX_COMMAND_LINE: usize = 12_288;

/// The longest mailbox accepted (RFC 5321 section 4.5.3.1.3: a path is at
/// most 256 octets including the angle brackets).
pub const MAX_PATH: usize = 254;

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `EHLO domain`
    Ehlo(String),
    /// `HELO domain`
    Helo(String),
    /// `MAIL FROM:<reverse-path> [params]`; an empty path is the null sender `<>`.
    Mail {
        /// The reverse path, without angle brackets.
        from: String,
        /// Its parameters.
        params: MailParams,
    },
    /// `RCPT TO:<forward-path> [params]`
    Rcpt {
        /// The forward path, without angle brackets.
        to: String,
        /// Parameters given (none is supported; any is refused by the session).
        params: Vec<String>,
    },
    /// `DATA`
    Data,
    /// `RSET`
    Rset,
    /// `NOOP [string]`
    Noop,
    /// `QUIT`
    Quit,
    /// `VRFY string`
    Vrfy,
    /// `EXPN string`
    Expn,
    /// `HELP [string]`
    Help,
    /// `STARTTLS` (RFC 3207)
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954)
    Auth {
        /// The mechanism, upper-cased.
        mechanism: String,
        /// The initial response (base64, or `=` for an empty one).
        initial: Option<String>,
    },
}

/// The `BODY=` parameter (RFC 6152).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Body {
    /// `7BIT`
    #[default]
    SevenBit,
    /// `8BITMIME`
    EightBitMime,
}

/// The parameters of `MAIL FROM`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MailParams {
    /// `SIZE=` (RFC 1870): the client's estimate of the message size.
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152).
    pub body: Body,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
}

impl MailParams {
    /// The message is declared 8-bit (BODY=8BITMIME).
    pub fn is_8bit(&self) -> bool {
        self.body == Body::EightBitMime
    }
}

/// Why a line is not a valid command; each names the reply it earns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The verb is unknown: `500 5.5.2`.
    UnknownCommand,
    /// The verb is known but its arguments are wrong: `501 5.5.4`, with why.
    Syntax(&'static str),
    /// A MAIL or RCPT parameter faxgate does not support: `555 5.5.4`.
    UnsupportedParameter(String),
    /// The line is not UTF-8 or holds control characters: `500 5.5.2`.
    BadCharacters,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UnknownCommand => f.write_str("command not recognized"),
            ParseError::Syntax(why) => f.write_str(why),
            ParseError::UnsupportedParameter(p) => write!(f, "parameter {p} not supported"),
            ParseError::BadCharacters => f.write_str("invalid characters in command"),
        }
    }
}

/// Parses one command line (without CRLF).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::BadCharacters)?;
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ParseError::BadCharacters);
    }
    let (verb, rest) = match line.find([' ', '\t']) {
        Some(i) => (&line[..i], line[i + 1..].trim()),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let no_args = |c: Command| if rest.is_empty() { Ok(c) } else { Err(ParseError::Syntax("no arguments allowed")) };
    match verb.as_str() {
        "EHLO" | "HELO" => {
            let domain = rest.split_whitespace().next().ok_or(ParseError::Syntax("a domain or address is required"))?;
            if domain.len() > 255 {
                return Err(ParseError::Syntax("domain too long"));
            }
            Ok(if verb == "EHLO" { Command::Ehlo(domain.to_owned()) } else { Command::Helo(domain.to_owned()) })
        }
        "MAIL" => {
            let (from, params) = path_and_params(rest, "FROM:")?;
            if from.is_empty() && !rest.contains("<>") {
                return Err(ParseError::Syntax("syntax: MAIL FROM:<address>"));
            }
            Ok(Command::Mail { from, params: mail_params(&params)? })
        }
        "RCPT" => {
            let (to, params) = path_and_params(rest, "TO:")?;
            if to.is_empty() {
                return Err(ParseError::Syntax("syntax: RCPT TO:<address>"));
            }
            Ok(Command::Rcpt { to, params: params.into_iter().map(str::to_owned).collect() })
        }
        "DATA" => no_args(Command::Data),
        "RSET" => no_args(Command::Rset),
        "QUIT" => no_args(Command::Quit),
        "STARTTLS" => no_args(Command::StartTls),
        "NOOP" => Ok(Command::Noop),
        "HELP" => Ok(Command::Help),
        "VRFY" if rest.is_empty() => Err(ParseError::Syntax("syntax: VRFY <string>")),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "AUTH" => {
            let mut words = rest.split_whitespace();
            let mechanism = words.next().ok_or(ParseError::Syntax("syntax: AUTH mechanism [initial-response]"))?;
            let initial = words.next().map(str::to_owned);
            if words.next().is_some() {
                return Err(ParseError::Syntax("syntax: AUTH mechanism [initial-response]"));
            }
            Ok(Command::Auth { mechanism: mechanism.to_ascii_uppercase(), initial })
        }
        _ => Err(ParseError::UnknownCommand),
    }
}

/// Splits `FROM:<path> params` (or `TO:`); tolerates a space after the colon.
fn path_and_params<'a>(rest: &'a str, keyword: &'static str) -> Result<(String, Vec<&'a str>), ParseError> {
    let syntax = if keyword == "FROM:" {
        ParseError::Syntax("syntax: MAIL FROM:<address>")
    } else {
        ParseError::Syntax("syntax: RCPT TO:<address>")
    };
    match rest.get(..keyword.len()) {
        Some(k) if k.eq_ignore_ascii_case(keyword) => {}
        _ => return Err(syntax),
    }
    let rest = rest[keyword.len()..].trim_start();
    let Some(inner) = rest.strip_prefix('<') else { return Err(syntax) };
    let close = inner.find('>').ok_or(syntax)?;
    let mut path = &inner[..close];
    // A source route (`@a,@b:user@domain`, RFC 5321 section 4.1.2) is ignored.
    if path.starts_with('@') {
        path = path.split_once(':').map(|(_, p)| p).ok_or(ParseError::Syntax("malformed source route"))?;
    }
    if path.len() > MAX_PATH {
        return Err(ParseError::Syntax("address too long"));
    }
    // Spaces are allowed only inside a quoted local part (`"+45 33 22 11 00"@fax.example`).
    let mut quoted = false;
    for c in path.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Err(ParseError::Syntax("address must not contain spaces")),
            _ => {}
        }
    }
    if !path.is_empty() {
        let (local, domain) = path.rsplit_once('@').ok_or(ParseError::Syntax("address must be user@domain"))?;
        if local.is_empty() || domain.is_empty() {
            return Err(ParseError::Syntax("address must be user@domain"));
        }
    }
    let params = inner[close + 1..].split_whitespace().collect();
    Ok((path.to_owned(), params))
}

fn mail_params(params: &[&str]) -> Result<MailParams, ParseError> {
    let mut out = MailParams::default();
    for p in params {
        let (key, value) = match p.split_once('=') {
            Some((k, v)) => (k.to_ascii_uppercase(), Some(v)),
            None => (p.to_ascii_uppercase(), None),
        };
        match (key.as_str(), value) {
            ("SIZE", Some(v)) => {
                out.size = Some(v.parse().map_err(|_| ParseError::Syntax("SIZE must be a number of octets"))?)
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => out.body = Body::SevenBit,
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => out.body = Body::EightBitMime,
            ("SMTPUTF8", None) => out.smtputf8 = true,
            _ => return Err(ParseError::UnsupportedParameter((*p).to_owned())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, ParseError> {
        parse(s.as_bytes())
    }

    #[test]
    fn verbs() {
        assert_eq!(p("ehlo client.example"), Ok(Command::Ehlo("client.example".into())));
        assert_eq!(p("HELO x"), Ok(Command::Helo("x".into())));
        assert_eq!(p("EHLO"), Err(ParseError::Syntax("a domain or address is required")));
        assert_eq!(p("DATA"), Ok(Command::Data));
        assert_eq!(p("DATA x"), Err(ParseError::Syntax("no arguments allowed")));
        assert_eq!(p("rset"), Ok(Command::Rset));
        assert_eq!(p("NOOP anything"), Ok(Command::Noop));
        assert_eq!(p("QUIT"), Ok(Command::Quit));
        assert_eq!(p("VRFY root"), Ok(Command::Vrfy));
        assert!(p("VRFY").is_err());
        assert_eq!(p("STARTTLS"), Ok(Command::StartTls));
        assert_eq!(p("FOO"), Err(ParseError::UnknownCommand));
        assert_eq!(p("NOOP \u{1}"), Err(ParseError::BadCharacters));
        assert_eq!(parse(b"NOOP \xff"), Err(ParseError::BadCharacters));
        assert_eq!(
            p("AUTH plain AGEAYg=="),
            Ok(Command::Auth { mechanism: "PLAIN".into(), initial: Some("AGEAYg==".into()) })
        );
        assert_eq!(p("AUTH LOGIN"), Ok(Command::Auth { mechanism: "LOGIN".into(), initial: None }));
    }

    #[test]
    fn mail_and_rcpt() {
        assert_eq!(
            p("MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME SMTPUTF8"),
            Ok(Command::Mail {
                from: "a@b.example".into(),
                params: MailParams { size: Some(100), body: Body::EightBitMime, smtputf8: true }
            })
        );
        assert_eq!(p("mail from: <>"), Ok(Command::Mail { from: String::new(), params: MailParams::default() }));
        assert_eq!(
            p("MAIL FROM:<@relay.example:a@b.example>"),
            Ok(Command::Mail { from: "a@b.example".into(), params: MailParams::default() })
        );
        assert_eq!(p("MAIL FROM:a@b"), Err(ParseError::Syntax("syntax: MAIL FROM:<address>")));
        assert_eq!(p("MAIL FROM:<a@b> SIZE=x"), Err(ParseError::Syntax("SIZE must be a number of octets")));
        assert_eq!(
            p("MAIL FROM:<a@b> BODY=BINARYMIME"),
            Err(ParseError::UnsupportedParameter("BODY=BINARYMIME".into()))
        );
        assert_eq!(p("MAIL FROM:<ab>"), Err(ParseError::Syntax("address must be user@domain")));
        assert_eq!(
            p("RCPT TO:<+4533221100@fax.example>"),
            Ok(Command::Rcpt { to: "+4533221100@fax.example".into(), params: vec![] })
        );
        assert_eq!(
            p("RCPT TO:<\"+45 33 22 11 00\"@fax.example>"),
            Ok(Command::Rcpt { to: "\"+45 33 22 11 00\"@fax.example".into(), params: vec![] })
        );
        assert_eq!(p("RCPT TO:<a b@fax.example>"), Err(ParseError::Syntax("address must not contain spaces")));
        assert_eq!(p("RCPT TO:<>"), Err(ParseError::Syntax("syntax: RCPT TO:<address>")));
        assert_eq!(p("RCPT FROM:<a@b>"), Err(ParseError::Syntax("syntax: RCPT TO:<address>")));
        let long = format!("RCPT TO:<{}@b>", "a".repeat(300));
        assert_eq!(p(&long), Err(ParseError::Syntax("address too long")));
    }
}
