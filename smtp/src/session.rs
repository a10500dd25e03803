//! The sans-IO ESMTP session: bytes and `now` in; replies, questions and a
//! deadline out.
//!
//! The session never decides who may send what. When a command needs a
//! decision (AUTH, MAIL, RCPT, the end of DATA) it stops reading input and
//! asks a [`Question`] through [`Session::poll_event`]; the driver answers
//! with [`Session::answer`] and the session carries on with any pipelined
//! input it holds (RFC 2920). The states are named after what the session
//! expects next.
//!
//! Limits, all on by default ([`Limits`]): message size (RFC 1870),
//! recipients per message, errors per session, an idle timeout, a deadline
//! for the TLS handshake, a minimum rate while a command or a message is
//! under way, the number of header lines, and the line length. In DATA
//! every line must end in CRLF: a bare CR or LF makes the message refused,
//! and only `CRLF . CRLF` ends it, so no "end of data" variant can smuggle
//! a second message past a receiver that reads line ends differently.
//!
//! The rate is measured over the time the client owes input: a command
//! line begun and not ended, the response to a `334`, or a message after
//! `354`. Each time the owed time adds up to [`Limits::rate_window`], the
//! bytes that arrived in it must reach [`Limits::min_rate`] per second of
//! the window, or the session is closed with `421`. Time between commands is the idle
//! timeout's, and time spent waiting for the driver counts for nothing.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::command::{self, Command, MAX_COMMAND_LINE, MailParams, ParseError};
use crate::reply::{Enhanced, Reply};

/// The limits of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest message accepted, in octets (advertised as SIZE).
    pub max_message_size: u64,
    /// Recipients per message.
    pub max_recipients: usize,
    /// Refusals (5xx replies) after which the session is closed.
    pub max_errors: u32,
    /// Time without input after which the session is closed.
    pub idle_timeout: Duration,
    /// Time the TLS handshake may take (implicit TLS, or after STARTTLS).
    pub tls_handshake_timeout: Duration,
    /// Bytes per second the client must send while it owes a command line,
    /// an AUTH response or a message; 0: no minimum.
    pub min_rate: u32,
    /// The owed time over which the rate is measured.
    pub rate_window: Duration,
    /// Header lines per message.
    pub max_header_lines: usize,
    /// The longest line of a message, in octets (RFC 5321 says 1000; real
    /// mail is sometimes longer).
    pub max_data_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 20 * 1024 * 1024,
            max_recipients: 10,
            max_errors: 10,
            idle_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
            min_rate: 500,
            rate_window: Duration::from_secs(30),
            max_header_lines: 500,
            max_data_line: 64 * 1024,
        }
    }
}

/// How a listener treats TLS and authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// The name the server gives in its greeting and EHLO reply.
    pub hostname: String,
    /// Limits.
    pub limits: Limits,
    /// STARTTLS is offered (a certificate is configured).
    pub starttls: bool,
    /// Mail may only be sent after AUTH (a submission port).
    pub auth_required: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig { hostname: "localhost".into(), limits: Limits::default(), starttls: false, auth_required: false }
    }
}

/// What the session knows about its client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// The client's address.
    pub peer: IpAddr,
    /// The name given in EHLO or HELO.
    pub helo: String,
    /// The session runs over TLS.
    pub tls: bool,
    /// The user logged in with AUTH.
    pub auth_user: Option<String>,
}

/// A mail transaction: the envelope so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// The reverse path (empty for the null sender).
    pub from: String,
    /// MAIL parameters.
    pub params: MailParams,
    /// The recipients accepted so far.
    pub rcpts: Vec<String>,
}

/// A received message, handed over for durable storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The client.
    pub context: Context,
    /// The envelope.
    pub transaction: Transaction,
    /// The message as received, dot-unstuffed, lines ending in CRLF.
    pub data: Vec<u8>,
}

/// A decision the session needs before it can go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Question {
    /// May this user log in? Answer 235 to accept.
    Auth {
        /// The client.
        context: Context,
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// May this sender send? Answer 250 to accept.
    Mail {
        /// The client.
        context: Context,
        /// The reverse path.
        from: String,
        /// The MAIL parameters.
        params: MailParams,
    },
    /// Is this recipient accepted? Answer 250 to accept.
    Rcpt {
        /// The client.
        context: Context,
        /// The transaction so far.
        transaction: Transaction,
        /// The recipient asked for.
        to: String,
    },
    /// Store this message; answer 250 only once it is durable.
    Data(Message),
}

/// What the session asks of its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Answer this with [`Session::answer`].
    Ask(Question),
    /// Send what is pending, then do the TLS handshake and call [`Session::tls_started`].
    StartTls,
}

/// What the session waits for.
#[derive(Debug)]
enum State {
    /// EHLO or HELO.
    ExpectHelo,
    /// MAIL (or AUTH, RSET ...).
    ExpectMail,
    /// RCPT or DATA.
    ExpectRcpt(Transaction),
    /// Message lines up to `CRLF . CRLF`.
    Data(Transaction, DataReader),
    /// The AUTH PLAIN response after `334`.
    ExpectPlainResponse,
    /// The AUTH LOGIN user name after `334 VXNlcm5hbWU6`.
    ExpectLoginUser,
    /// The AUTH LOGIN password after `334 UGFzc3dvcmQ6`.
    ExpectLoginPassword(String),
    /// The driver's answer to a question.
    Asking(Asked),
    /// The TLS handshake (after `220` to STARTTLS, or before the greeting
    /// on an implicit TLS port).
    ExpectTls,
    /// Nothing: the session is over.
    Closed,
}

#[derive(Debug)]
enum Asked {
    Auth(String),
    Mail(String, MailParams),
    Rcpt(Transaction, String),
    Data,
}

#[derive(Debug, Default)]
struct DataReader {
    body: Vec<u8>,
    size: u64,
    at_line_start: bool,
    in_headers: bool,
    header_lines: usize,
    bare_line_end: bool,
    too_big: bool,
    too_many_headers: bool,
    line_too_long: bool,
}

/// The bytes a client sent over the time it owed input (module docs).
#[derive(Debug, Default)]
struct Meter {
    /// Since when the client owes input, while it does.
    since: Option<Instant>,
    /// Time owed in this window before `since`.
    owed: Duration,
    /// Bytes received in this window.
    bytes: u64,
}

/// One ESMTP session.
#[derive(Debug)]
pub struct Session {
    config: Arc<SessionConfig>,
    peer: IpAddr,
    tls: bool,
    greeted: bool,
    helo: Option<String>,
    auth_user: Option<String>,
    state: State,
    input: Vec<u8>,
    discarding_line: bool,
    output: Vec<u8>,
    events: VecDeque<Event>,
    /// The time last given to the session.
    now: Instant,
    /// The idle deadline.
    deadline: Instant,
    /// The end of the TLS handshake, while one is under way.
    tls_deadline: Option<Instant>,
    meter: Meter,
    errors: u32,
    /// The server is stopping: close once the message being received is answered.
    stopping: bool,
}

const E_OK: Enhanced = Enhanced(2, 0, 0);
const E_SYNTAX: Enhanced = Enhanced(5, 5, 2);
const E_BAD_SEQUENCE: Enhanced = Enhanced(5, 5, 1);
const E_PARAM: Enhanced = Enhanced(5, 5, 4);

impl Session {
    /// A new session with a client; `tls` when the connection is already
    /// TLS (implicit TLS, port 465). The greeting is ready to send.
    pub fn new(config: Arc<SessionConfig>, peer: IpAddr, tls: bool, now: Instant) -> Session {
        let mut s = Session::blank(config, peer, tls, now);
        s.greet();
        s
    }

    /// A new session on an implicit TLS port (465) before its handshake:
    /// the driver does the handshake by [`Session::poll_timeout`] and calls
    /// [`Session::tls_started`], which readies the greeting.
    pub fn new_implicit_tls(config: Arc<SessionConfig>, peer: IpAddr, now: Instant) -> Session {
        let mut s = Session::blank(config, peer, false, now);
        s.state = State::ExpectTls;
        s.tls_deadline = Some(now + s.config.limits.tls_handshake_timeout);
        s
    }

    fn blank(config: Arc<SessionConfig>, peer: IpAddr, tls: bool, now: Instant) -> Session {
        let deadline = now + config.limits.idle_timeout;
        Session {
            config,
            peer,
            tls,
            greeted: false,
            helo: None,
            auth_user: None,
            state: State::ExpectHelo,
            input: Vec::new(),
            discarding_line: false,
            output: Vec::new(),
            events: VecDeque::new(),
            now,
            deadline,
            tls_deadline: None,
            meter: Meter::default(),
            errors: 0,
            stopping: false,
        }
    }

    fn greet(&mut self) {
        self.greeted = true;
        let greeting = Reply::plain(220, format!("{} ESMTP faxgate", self.config.hostname));
        self.send(greeting);
    }

    /// Bytes from the client.
    pub fn receive(&mut self, now: Instant, data: &[u8]) {
        if matches!(self.state, State::Closed) {
            return;
        }
        self.now = now;
        self.deadline = now + self.config.limits.idle_timeout;
        let owed_before = self.owes_input();
        self.input.extend_from_slice(data);
        self.process();
        // Bytes that begin, continue or end owed input; whole commands
        // that arrive while nothing is owed come with no owed time either.
        if owed_before || self.owes_input() {
            self.meter.bytes += data.len() as u64;
        }
        self.meter_update(now);
    }

    /// The answer to the question last asked.
    pub fn answer(&mut self, now: Instant, reply: Reply) {
        let State::Asking(asked) = std::mem::replace(&mut self.state, State::Closed) else {
            debug_assert!(false, "answer without a question");
            return;
        };
        self.now = now;
        self.deadline = now + self.config.limits.idle_timeout;
        let ok = reply.code / 100 == 2;
        self.state = match asked {
            Asked::Auth(user) => {
                if ok {
                    self.auth_user = Some(user);
                }
                State::ExpectMail
            }
            Asked::Mail(from, params) if ok => State::ExpectRcpt(Transaction { from, params, rcpts: Vec::new() }),
            Asked::Mail(..) => State::ExpectMail,
            Asked::Rcpt(mut t, to) => {
                if ok {
                    t.rcpts.push(to);
                }
                State::ExpectRcpt(t)
            }
            Asked::Data => State::ExpectMail,
        };
        self.send(reply);
        if self.stopping {
            self.shutdown();
            return;
        }
        self.process();
        self.meter_update(now);
    }

    /// The TLS handshake succeeded. After STARTTLS the session starts over
    /// (RFC 3207 section 4.2), forgetting EHLO and anything sent before; on
    /// an implicit TLS port the greeting follows.
    pub fn tls_started(&mut self, now: Instant) {
        if matches!(self.state, State::Closed) {
            return;
        }
        self.now = now;
        self.tls = true;
        self.helo = None;
        self.auth_user = None;
        self.input.clear();
        self.deadline = now + self.config.limits.idle_timeout;
        self.tls_deadline = None;
        self.state = State::ExpectHelo;
        if !self.greeted {
            self.greet();
        }
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes to send to the client.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.output.is_empty() { None } else { Some(std::mem::take(&mut self.output)) }
    }

    /// When [`Session::handle_timeout`] must be called; `None` while the
    /// session waits for its driver or is over. During a TLS handshake, its
    /// deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Asking(_) | State::Closed => None,
            State::ExpectTls => self.tls_deadline,
            _ => Some(match self.rate_deadline() {
                Some(r) => r.min(self.deadline),
                None => self.deadline,
            }),
        }
    }

    /// Time has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, State::Closed | State::Asking(_)) {
            return;
        }
        self.now = now;
        if matches!(self.state, State::ExpectTls) {
            // Nothing can be said in the middle of a handshake: just close.
            if self.tls_deadline.is_some_and(|d| now >= d) {
                tracing::debug!(peer = %self.peer, "smtp TLS handshake took too long");
                self.state = State::Closed;
            }
            return;
        }
        if now >= self.deadline {
            self.send(Reply::new(421, Enhanced(4, 4, 2), "idle too long, closing connection"));
            self.state = State::Closed;
            return;
        }
        self.meter_check(now);
    }

    /// The server stops taking mail: tell the client (`421 4.3.2`) and
    /// close. A message being received is taken first: its data is read
    /// to the end and answered, then the session closes.
    pub fn shutdown(&mut self) {
        if matches!(self.state, State::Data(..) | State::Asking(Asked::Data)) {
            self.stopping = true;
            return;
        }
        if !matches!(self.state, State::Closed) {
            self.send(Reply::new(421, Enhanced(4, 3, 2), "service shutting down, try again later"));
            self.state = State::Closed;
        }
    }

    /// The session is over: send what is pending, then close the connection.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The session runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the client owes input now: a command line begun, the
    /// response to a `334`, or a message after `354`.
    fn owes_input(&self) -> bool {
        match self.state {
            State::Data(..) | State::ExpectPlainResponse | State::ExpectLoginUser | State::ExpectLoginPassword(_) => {
                true
            }
            State::ExpectHelo | State::ExpectMail | State::ExpectRcpt(_) => {
                !self.input.is_empty() || self.discarding_line
            }
            State::Asking(_) | State::ExpectTls | State::Closed => false,
        }
    }

    /// Starts or stops the clock of owed time, and checks a window that is full.
    fn meter_update(&mut self, now: Instant) {
        if self.config.limits.min_rate == 0 {
            return;
        }
        match (self.meter.since, self.owes_input()) {
            (None, true) => self.meter.since = Some(now),
            (Some(since), false) => {
                self.meter.owed += now.saturating_duration_since(since);
                self.meter.since = None;
            }
            _ => {}
        }
        self.meter_check(now);
    }

    /// When the owed time fills the window, if the client owes input now.
    fn rate_deadline(&self) -> Option<Instant> {
        if self.config.limits.min_rate == 0 {
            return None;
        }
        let since = self.meter.since?;
        Some(since + self.config.limits.rate_window.saturating_sub(self.meter.owed))
    }

    /// A full window: closes the session if the client sent too little in
    /// it, else starts the next window.
    fn meter_check(&mut self, now: Instant) {
        let limits = &self.config.limits;
        if limits.min_rate == 0 || matches!(self.state, State::Closed) {
            return;
        }
        let owed = self.meter.owed + self.meter.since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        if owed < limits.rate_window {
            return;
        }
        let needed = u128::from(limits.min_rate) * limits.rate_window.as_millis() / 1000;
        if u128::from(self.meter.bytes) < needed {
            tracing::debug!(peer = %self.peer, bytes = self.meter.bytes, "smtp client too slow");
            let text = format!("too slow (less than {} bytes a second), closing connection", limits.min_rate);
            self.send(Reply::new(421, Enhanced(4, 4, 2), text));
            self.state = State::Closed;
            return;
        }
        self.meter = Meter { since: self.meter.since.map(|_| now), owed: Duration::ZERO, bytes: 0 };
    }

    fn context(&self) -> Context {
        Context {
            peer: self.peer,
            helo: self.helo.clone().unwrap_or_default(),
            tls: self.tls,
            auth_user: self.auth_user.clone(),
        }
    }

    fn send(&mut self, reply: Reply) {
        // A reply may name an address: in full only with `log.personal_data`.
        if faxgate_retention::logid::personal_data() {
            tracing::trace!(peer = %self.peer, reply = %reply, "smtp reply");
        } else {
            tracing::trace!(peer = %self.peer, code = reply.code, "smtp reply");
        }
        if reply.code >= 500 {
            self.errors += 1;
        }
        self.output.extend_from_slice(&reply.to_wire());
        if self.errors >= self.config.limits.max_errors && !matches!(self.state, State::Closed) {
            self.output.extend_from_slice(
                &Reply::new(421, Enhanced(4, 7, 0), "too many errors, closing connection").to_wire(),
            );
            self.state = State::Closed;
        }
    }

    fn ask(&mut self, asked: Asked, question: Question) {
        self.state = State::Asking(asked);
        self.events.push_back(Event::Ask(question));
    }

    fn process(&mut self) {
        loop {
            match self.state {
                State::Asking(_) | State::ExpectTls | State::Closed => return,
                State::Data(..) => {
                    if !self.read_data() {
                        return;
                    }
                }
                _ => {
                    let Some(line) = self.next_line() else { return };
                    self.line(&line);
                }
            }
        }
    }

    /// The next command line without its line ending, if a whole one is here.
    fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.input.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let mut line: Vec<u8> = self.input.drain(..=i).collect();
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if std::mem::take(&mut self.discarding_line) {
                        continue;
                    }
                    if line.len() + 2 > MAX_COMMAND_LINE {
                        self.send(Reply::new(500, Enhanced(5, 5, 6), "line too long"));
                        continue;
                    }
                    return Some(line);
                }
                None if self.input.len() + 2 > MAX_COMMAND_LINE => {
                    self.input.clear();
                    if !self.discarding_line {
                        self.discarding_line = true;
                        self.send(Reply::new(500, Enhanced(5, 5, 6), "line too long"));
                    }
                    return None;
                }
                None => return None,
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::ExpectPlainResponse => {
                self.state = State::ExpectMail;
                self.auth_plain(line);
            }
            State::ExpectLoginUser => {
                self.state = State::ExpectMail;
                match decode_response(line) {
                    Ok(user) => {
                        self.state = State::ExpectLoginPassword(user);
                        self.send(Reply::plain(334, "UGFzc3dvcmQ6"));
                    }
                    Err(r) => self.send(r),
                }
            }
            State::ExpectLoginPassword(user) => {
                self.state = State::ExpectMail;
                match decode_response(line) {
                    Ok(password) => self.ask_auth(user, password),
                    Err(r) => self.send(r),
                }
            }
            state => {
                self.state = state;
                match command::parse(line) {
                    Ok(c) => self.command(c),
                    Err(e) => self.send(parse_error_reply(&e)),
                }
            }
        }
    }

    fn command(&mut self, c: Command) {
        let in_transaction = matches!(self.state, State::ExpectRcpt(_));
        match c {
            Command::Ehlo(domain) => {
                self.helo = Some(domain.clone());
                self.state = State::ExpectMail;
                let mut lines = vec![format!("{} greets {domain}", self.config.hostname)];
                lines.push("PIPELINING".into());
                lines.push(format!("SIZE {}", self.config.limits.max_message_size));
                lines.push("8BITMIME".into());
                lines.push("SMTPUTF8".into());
                lines.push("ENHANCEDSTATUSCODES".into());
                if self.config.starttls && !self.tls {
                    lines.push("STARTTLS".into());
                }
                if self.tls {
                    lines.push("AUTH PLAIN LOGIN".into());
                }
                self.send(Reply::plain(250, lines.join("\n")));
            }
            Command::Helo(domain) => {
                self.helo = Some(domain);
                self.state = State::ExpectMail;
                self.send(Reply::plain(250, self.config.hostname.clone()));
            }
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => self.data(),
            Command::Rset => {
                if self.helo.is_some() {
                    self.state = State::ExpectMail;
                }
                self.send(Reply::new(250, E_OK, "reset"));
            }
            Command::Noop => self.send(Reply::new(250, E_OK, "OK")),
            Command::Quit => {
                self.send(Reply::new(221, E_OK, "bye"));
                self.state = State::Closed;
            }
            Command::Vrfy => {
                self.send(Reply::new(252, Enhanced(2, 5, 0), "cannot verify addresses; send the message and see"))
            }
            Command::Expn => self.send(Reply::new(502, Enhanced(5, 5, 1), "EXPN not available")),
            Command::Help => {
                self.send(Reply::new(214, E_OK, "faxgate: mail <number>@<fax domain> with the document attached"))
            }
            Command::StartTls => {
                if !self.config.starttls {
                    self.send(Reply::new(502, Enhanced(5, 5, 1), "STARTTLS not available"));
                } else if self.tls {
                    self.send(Reply::new(503, E_BAD_SEQUENCE, "already using TLS"));
                } else if in_transaction {
                    self.send(Reply::new(503, E_BAD_SEQUENCE, "STARTTLS not allowed during a mail transaction"));
                } else {
                    self.send(Reply::new(220, E_OK, "ready to start TLS"));
                    // Anything pipelined after STARTTLS was sent in the clear
                    // and must not be taken as sent under TLS (RFC 3207 section 5).
                    self.input.clear();
                    self.state = State::ExpectTls;
                    self.tls_deadline = Some(self.now + self.config.limits.tls_handshake_timeout);
                    self.events.push_back(Event::StartTls);
                }
            }
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial, in_transaction),
        }
    }

    fn mail(&mut self, from: String, params: MailParams) {
        match self.state {
            State::ExpectHelo => return self.send(Reply::new(503, E_BAD_SEQUENCE, "send EHLO or HELO first")),
            State::ExpectRcpt(_) => return self.send(Reply::new(503, E_BAD_SEQUENCE, "nested MAIL command")),
            _ => {}
        }
        if self.config.auth_required && self.auth_user.is_none() {
            return self.send(Reply::new(530, Enhanced(5, 7, 0), "authentication required"));
        }
        if let Some(size) = params.size
            && size > self.config.limits.max_message_size
        {
            return self.send(Reply::new(
                552,
                Enhanced(5, 3, 4),
                format!("message size exceeds the limit of {} octets", self.config.limits.max_message_size),
            ));
        }
        if !from.is_ascii() && !params.smtputf8 {
            return self.send(Reply::new(553, Enhanced(5, 6, 7), "non-ASCII address requires SMTPUTF8"));
        }
        let question = Question::Mail { context: self.context(), from: from.clone(), params: params.clone() };
        self.ask(Asked::Mail(from, params), question);
    }

    fn rcpt(&mut self, to: String, params: Vec<String>) {
        let t = match std::mem::replace(&mut self.state, State::Closed) {
            State::ExpectRcpt(t) => t,
            other => {
                self.state = other;
                return self.send(Reply::new(503, E_BAD_SEQUENCE, "send MAIL first"));
            }
        };
        if let Some(p) = params.first() {
            self.state = State::ExpectRcpt(t);
            return self.send(Reply::new(555, E_PARAM, format!("parameter {p} not supported")));
        }
        if t.rcpts.len() >= self.config.limits.max_recipients {
            let max = self.config.limits.max_recipients;
            self.state = State::ExpectRcpt(t);
            return self.send(Reply::new(452, Enhanced(4, 5, 3), format!("too many recipients (at most {max})")));
        }
        if !to.is_ascii() && !t.params.smtputf8 {
            self.state = State::ExpectRcpt(t);
            return self.send(Reply::new(553, Enhanced(5, 6, 7), "non-ASCII address requires SMTPUTF8"));
        }
        let question = Question::Rcpt { context: self.context(), transaction: t.clone(), to: to.clone() };
        self.ask(Asked::Rcpt(t, to), question);
    }

    fn data(&mut self) {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::ExpectRcpt(t) if t.rcpts.is_empty() => {
                self.state = State::ExpectRcpt(t);
                self.send(Reply::new(554, E_BAD_SEQUENCE, "no valid recipients"));
            }
            State::ExpectRcpt(t) => {
                self.state =
                    State::Data(t, DataReader { at_line_start: true, in_headers: true, ..DataReader::default() });
                self.send(Reply::plain(354, "end data with <CR><LF>.<CR><LF>"));
            }
            other => {
                self.state = other;
                self.send(Reply::new(503, E_BAD_SEQUENCE, "send MAIL and RCPT first"));
            }
        }
    }

    fn auth(&mut self, mechanism: String, initial: Option<String>, in_transaction: bool) {
        if !self.tls {
            return self.send(Reply::new(538, Enhanced(5, 7, 11), "encryption required: use STARTTLS first"));
        }
        if self.helo.is_none() {
            return self.send(Reply::new(503, E_BAD_SEQUENCE, "send EHLO first"));
        }
        if in_transaction {
            return self.send(Reply::new(503, E_BAD_SEQUENCE, "AUTH not allowed during a mail transaction"));
        }
        if self.auth_user.is_some() {
            return self.send(Reply::new(503, E_BAD_SEQUENCE, "already authenticated"));
        }
        match (mechanism.as_str(), initial) {
            ("PLAIN", Some(i)) => self.auth_plain(i.as_bytes()),
            ("PLAIN", None) => {
                self.state = State::ExpectPlainResponse;
                self.send(Reply::plain(334, ""));
            }
            ("LOGIN", Some(i)) => match decode_response(i.as_bytes()) {
                Ok(user) => {
                    self.state = State::ExpectLoginPassword(user);
                    self.send(Reply::plain(334, "UGFzc3dvcmQ6"));
                }
                Err(r) => self.send(r),
            },
            ("LOGIN", None) => {
                self.state = State::ExpectLoginUser;
                self.send(Reply::plain(334, "VXNlcm5hbWU6"));
            }
            _ => self.send(Reply::new(504, E_PARAM, "mechanism not supported; use PLAIN or LOGIN")),
        }
    }

    fn auth_plain(&mut self, response: &[u8]) {
        let text = match decode_response(response) {
            Ok(t) => t,
            Err(r) => return self.send(r),
        };
        let mut parts = text.split('\0');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(authz), Some(user), Some(password), None) if authz.is_empty() || authz == user => {
                self.ask_auth(user.to_owned(), password.to_owned())
            }
            _ => self.send(Reply::new(501, E_SYNTAX, "malformed PLAIN response")),
        }
    }

    fn ask_auth(&mut self, user: String, password: String) {
        let question = Question::Auth { context: self.context(), user: user.clone(), password };
        self.ask(Asked::Auth(user), question);
    }

    /// Reads message lines; true when the state changed (end of data).
    fn read_data(&mut self) -> bool {
        let State::Data(_, r) = &mut self.state else { return false };
        let max_size = self.config.limits.max_message_size;
        let max_headers = self.config.limits.max_header_lines;
        let max_line = self.config.limits.max_data_line;
        let mut consumed = 0;
        let mut ended = false;
        while let Some(i) = self.input[consumed..].iter().position(|&b| b == b'\n') {
            let line = &self.input[consumed..consumed + i + 1];
            consumed += i + 1;
            let crlf = line.len() >= 2 && line[line.len() - 2] == b'\r';
            let content = &line[..line.len() - if crlf { 2 } else { 1 }];
            if !crlf || content.contains(&b'\r') {
                r.bare_line_end = true;
            }
            // A long line that arrived whole in one read.
            r.line_too_long |= content.len() > max_line;
            // After a bare LF the next line does not start a line: "\n.\r\n" is
            // not the end of the message.
            let at_start = std::mem::replace(&mut r.at_line_start, crlf);
            if at_start && crlf && content == b"." {
                ended = true;
                break;
            }
            let content = if at_start && content.first() == Some(&b'.') { &content[1..] } else { content };
            if at_start && r.in_headers {
                if content.is_empty() {
                    r.in_headers = false;
                } else if !matches!(content.first(), Some(b' ' | b'\t')) {
                    r.header_lines += 1;
                    r.too_many_headers |= r.header_lines > max_headers;
                }
            }
            r.size += content.len() as u64 + 2;
            if r.size > max_size {
                r.too_big = true;
                r.body = Vec::new();
            } else if !r.too_many_headers && !r.bare_line_end {
                r.body.extend_from_slice(content);
                r.body.extend_from_slice(b"\r\n");
            }
        }
        self.input.drain(..consumed);
        if !ended {
            // A line longer than the limit without its end: drop what is here
            // (keeping a trailing CR, whose LF may follow) and remember that
            // the next line end is not a line start.
            if self.input.len() > max_line {
                r.line_too_long = true;
                r.at_line_start = false;
                let keep = usize::from(self.input.last() == Some(&b'\r'));
                let drop = self.input.len() - keep;
                self.input.drain(..drop);
            }
            return false;
        }
        let State::Data(t, r) = std::mem::replace(&mut self.state, State::ExpectMail) else { unreachable!() };
        if r.bare_line_end {
            self.send(Reply::new(
                554,
                Enhanced(5, 6, 0),
                "message refused: bare CR or LF in the message; every line must end in CRLF",
            ));
        } else if r.too_big {
            self.send(Reply::new(552, Enhanced(5, 3, 4), format!("message exceeds the limit of {max_size} octets")));
        } else if r.too_many_headers {
            self.send(Reply::new(554, Enhanced(5, 6, 0), format!("message has more than {max_headers} header lines")));
        } else if r.line_too_long {
            self.send(Reply::new(554, Enhanced(5, 6, 0), format!("message has a line longer than {max_line} octets")));
        } else {
            let message = Message { context: self.context(), transaction: t, data: r.body };
            self.ask(Asked::Data, Question::Data(message));
        }
        true
    }
}

fn decode_response(line: &[u8]) -> Result<String, Reply> {
    if line == b"*" {
        return Err(Reply::new(501, Enhanced(5, 0, 0), "authentication cancelled"));
    }
    if line == b"=" {
        return Ok(String::new());
    }
    let bytes = BASE64.decode(line).map_err(|_| Reply::new(501, E_SYNTAX, "invalid base64 in AUTH response"))?;
    String::from_utf8(bytes).map_err(|_| Reply::new(501, E_SYNTAX, "AUTH response is not UTF-8"))
}

fn parse_error_reply(e: &ParseError) -> Reply {
    match e {
        ParseError::UnknownCommand | ParseError::BadCharacters => Reply::new(500, E_SYNTAX, e.to_string()),
        ParseError::Syntax(_) => Reply::new(501, E_PARAM, e.to_string()),
        ParseError::UnsupportedParameter(_) => Reply::new(555, E_PARAM, e.to_string()),
    }
}

#[cfg(test)]
mod tests;
