//! In-memory tests of every verb, extension and refusal.

use super::*;

const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

struct T {
    s: Session,
    now: Instant,
    out: String,
}

impl T {
    fn new() -> T {
        T::with(SessionConfig { hostname: "fax.test".into(), ..SessionConfig::default() })
    }

    fn with(config: SessionConfig) -> T {
        let now = Instant::now();
        let greeting = format!("220 {} ESMTP faxgate\r\n", config.hostname);
        let mut t = T { s: Session::new(Arc::new(config), PEER, false, now), now, out: String::new() };
        assert_eq!(t.take(), greeting);
        t
    }

    fn tls() -> T {
        let mut t = T::with(SessionConfig { hostname: "fax.test".into(), starttls: true, ..SessionConfig::default() });
        t.send("STARTTLS\r\n");
        assert_eq!(t.take(), "220 2.0.0 ready to start TLS\r\n");
        assert_eq!(t.s.poll_event(), Some(Event::StartTls));
        t.s.tls_started(t.now);
        t
    }

    fn send(&mut self, data: &str) {
        self.s.receive(self.now, data.as_bytes());
        self.collect();
    }

    fn collect(&mut self) {
        while let Some(b) = self.s.poll_transmit() {
            self.out.push_str(&String::from_utf8(b).unwrap());
        }
    }

    fn take(&mut self) -> String {
        self.collect();
        std::mem::take(&mut self.out)
    }

    /// The pending question, answered with `reply`.
    fn answer(&mut self, reply: Reply) -> Question {
        let Some(Event::Ask(q)) = self.s.poll_event() else { panic!("no question; output {:?}", self.out) };
        self.s.answer(self.now, reply);
        self.collect();
        q
    }

    fn ehlo_mail_rcpt(&mut self) {
        self.send("EHLO client.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<+4533221100@fax.test>\r\n");
        self.answer(Reply::ok("sender ok"));
        self.answer(Reply::ok("recipient ok"));
        self.take();
    }
}

#[test]
fn ehlo_advertises_extensions() {
    let mut t = T::new();
    t.send("EHLO client.test\r\n");
    assert_eq!(
        t.take(),
        "250-fax.test greets client.test\r\n250-PIPELINING\r\n250-SIZE 20971520\r\n250-8BITMIME\r\n\
         250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n"
    );
    let mut t = T::with(SessionConfig { starttls: true, ..SessionConfig::default() });
    t.send("EHLO c\r\n");
    let r = t.take();
    assert!(r.contains("250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"), "{r}");
    assert!(!r.contains("AUTH"), "AUTH only under TLS: {r}");
    let mut t = T::tls();
    t.send("EHLO c\r\n");
    let r = t.take();
    assert!(r.ends_with("250 AUTH PLAIN LOGIN\r\n") && !r.contains("STARTTLS"), "{r}");
    t.send("HELO c\r\n");
    assert_eq!(t.take(), "250 fax.test\r\n");
}

#[test]
fn a_whole_transaction_with_dot_unstuffing() {
    let mut t = T::new();
    t.send("EHLO client.test\r\n");
    t.take();
    t.send("MAIL FROM:<a@client.test> SIZE=100 BODY=8BITMIME\r\n");
    match t.answer(Reply::ok("sender ok")) {
        Question::Mail { context, from, params } => {
            assert_eq!(from, "a@client.test");
            assert_eq!(params.size, Some(100));
            assert!(params.is_8bit());
            assert_eq!(context.helo, "client.test");
            assert!(!context.tls);
        }
        q => panic!("{q:?}"),
    }
    assert_eq!(t.take(), "250 2.0.0 sender ok\r\n");
    t.send("RCPT TO:<+4533221100@fax.test>\r\n");
    t.answer(Reply::ok("recipient ok"));
    t.send("DATA\r\n");
    assert_eq!(t.take(), "250 2.0.0 recipient ok\r\n354 end data with <CR><LF>.<CR><LF>\r\n");
    t.send("Subject: x\r\n\r\n..leading dot\r\n.");
    assert_eq!(t.s.poll_event(), None, "not ended yet");
    t.send("\r\n");
    match t.answer(Reply::ok("queued as job-1")) {
        Question::Data(m) => {
            assert_eq!(m.data, b"Subject: x\r\n\r\n.leading dot\r\n");
            assert_eq!(m.transaction.rcpts, vec!["+4533221100@fax.test"]);
            assert_eq!(m.transaction.from, "a@client.test");
        }
        q => panic!("{q:?}"),
    }
    assert_eq!(t.take(), "250 2.0.0 queued as job-1\r\n");
    // A new transaction may follow.
    t.send("MAIL FROM:<>\r\n");
    assert!(matches!(t.answer(Reply::ok("ok")), Question::Mail { from, .. } if from.is_empty()));
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let mut t = T::new();
    t.send("EHLO c\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<1@fax.test>\r\nRCPT TO:<x@other.test>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n");
    assert!(t.take().ends_with("250 ENHANCEDSTATUSCODES\r\n"));
    t.answer(Reply::ok("sender ok"));
    t.answer(Reply::ok("recipient ok"));
    t.answer(Reply::new(550, Enhanced(5, 7, 1), "relaying denied"));
    assert!(matches!(t.answer(Reply::ok("stored")), Question::Data(m) if m.data == b"hi\r\n"));
    assert_eq!(
        t.take(),
        "250 2.0.0 sender ok\r\n250 2.0.0 recipient ok\r\n550 5.7.1 relaying denied\r\n\
         354 end data with <CR><LF>.<CR><LF>\r\n250 2.0.0 stored\r\n221 2.0.0 bye\r\n"
    );
    assert!(t.s.is_closed());
}

#[test]
fn sequence_errors() {
    let mut t = T::new();
    t.send("MAIL FROM:<a@b.test>\r\n");
    assert_eq!(t.take(), "503 5.5.1 send EHLO or HELO first\r\n");
    t.send("RCPT TO:<a@b.test>\r\nDATA\r\n");
    assert_eq!(t.take(), "503 5.5.1 send MAIL first\r\n503 5.5.1 send MAIL and RCPT first\r\n");
    t.send("HELO c\r\nMAIL FROM:<a@b.test>\r\n");
    t.answer(Reply::ok("ok"));
    t.take();
    t.send("MAIL FROM:<a@b.test>\r\nDATA\r\n");
    assert_eq!(t.take(), "503 5.5.1 nested MAIL command\r\n554 5.5.1 no valid recipients\r\n");
    t.send("RSET\r\nRCPT TO:<a@b.test>\r\n");
    assert_eq!(t.take(), "250 2.0.0 reset\r\n503 5.5.1 send MAIL first\r\n");
}

#[test]
fn refused_mail_leaves_no_transaction() {
    let mut t = T::new();
    t.send("EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
    t.take();
    t.answer(Reply::new(550, Enhanced(5, 7, 1), "sender not allowed"));
    t.send("RCPT TO:<1@fax.test>\r\n");
    assert_eq!(t.take(), "550 5.7.1 sender not allowed\r\n503 5.5.1 send MAIL first\r\n");
}

#[test]
fn simple_verbs() {
    let mut t = T::new();
    t.send("NOOP\r\nVRFY root\r\nEXPN staff\r\nHELP\r\nFOO bar\r\nQUIT\r\n");
    assert_eq!(
        t.take(),
        "250 2.0.0 OK\r\n252 2.5.0 cannot verify addresses; send the message and see\r\n\
         502 5.5.1 EXPN not available\r\n214 2.0.0 faxgate: mail <number>@<fax domain> with the document attached\r\n\
         500 5.5.2 command not recognized\r\n221 2.0.0 bye\r\n"
    );
    assert!(t.s.is_closed());
    t.send("NOOP\r\n");
    assert_eq!(t.take(), "", "nothing after QUIT");
}

#[test]
fn vrfy_reveals_nothing() {
    let mut t = T::new();
    t.send("VRFY +4533221100@fax.test\r\nVRFY nobody@nowhere.test\r\n");
    let r = t.take();
    let (a, b) = r.split_once("\r\n").unwrap();
    assert_eq!(a, b.trim_end());
    assert_eq!(t.s.poll_event(), None, "VRFY asks nothing of the directory");
}

#[test]
fn mail_parameters() {
    let mut t = T::new();
    t.send("EHLO c\r\nMAIL FROM:<a@b.test> SIZE=20971521\r\n");
    assert!(t.take().ends_with("552 5.3.4 message size exceeds the limit of 20971520 octets\r\n"));
    t.send("MAIL FROM:<a@b.test> BODY=BINARYMIME\r\n");
    assert_eq!(t.take(), "555 5.5.4 parameter BODY=BINARYMIME not supported\r\n");
    t.send("MAIL FROM:<jörg@b.test>\r\n");
    assert_eq!(t.take(), "553 5.6.7 non-ASCII address requires SMTPUTF8\r\n");
    t.send("MAIL FROM:<jörg@b.test> SMTPUTF8\r\n");
    assert!(matches!(t.answer(Reply::ok("ok")), Question::Mail { params, .. } if params.smtputf8));
    t.send("RCPT TO:<1@fax.test> NOTIFY=NEVER\r\n");
    assert!(t.take().ends_with("555 5.5.4 parameter NOTIFY=NEVER not supported\r\n"));
    t.send("RCPT TO:<1@fax.test\r\n");
    assert_eq!(t.take(), "501 5.5.4 syntax: RCPT TO:<address>\r\n");
}

#[test]
fn recipient_limit() {
    let mut t = T::with(SessionConfig {
        limits: Limits { max_recipients: 2, ..Limits::default() },
        ..SessionConfig::default()
    });
    t.send("EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
    t.answer(Reply::ok("ok"));
    for n in 0..2 {
        t.send(&format!("RCPT TO:<{n}@fax.test>\r\n"));
        assert!(
            matches!(t.answer(Reply::ok("ok")), Question::Rcpt { transaction, .. } if transaction.rcpts.len() == n)
        );
    }
    t.take();
    t.send("RCPT TO:<3@fax.test>\r\n");
    assert_eq!(t.take(), "452 4.5.3 too many recipients (at most 2)\r\n");
    assert_eq!(t.s.poll_event(), None);
}

#[test]
fn bare_lf_cannot_smuggle_a_second_message() {
    let mut t = T::new();
    t.ehlo_mail_rcpt();
    t.send("DATA\r\n");
    t.take();
    // "\n.\r\n" ends the message for some receivers; not here.
    t.send("Subject: a\r\n\r\nbody\n.\r\nMAIL FROM:<evil@b.test>\r\nRCPT TO:<2@fax.test>\r\nDATA\r\nsmuggled\r\n.\r\n");
    assert_eq!(t.take(), "554 5.6.0 message refused: bare CR or LF in the message; every line must end in CRLF\r\n");
    assert_eq!(t.s.poll_event(), None, "the smuggled commands were part of the refused message");
    // The session goes on.
    t.send("MAIL FROM:<a@b.test>\r\n");
    assert!(matches!(t.answer(Reply::ok("ok")), Question::Mail { from, .. } if from == "a@b.test"));
}

#[test]
fn bare_cr_is_refused() {
    let mut t = T::new();
    t.ehlo_mail_rcpt();
    t.send("DATA\r\nbody\r.\r\nmore\r\n.\r\n");
    assert!(
        t.take().ends_with("554 5.6.0 message refused: bare CR or LF in the message; every line must end in CRLF\r\n")
    );
    assert_eq!(t.s.poll_event(), None);
}

#[test]
fn oversized_message_is_refused_after_data() {
    let mut t = T::with(SessionConfig {
        limits: Limits { max_message_size: 100, ..Limits::default() },
        ..SessionConfig::default()
    });
    t.ehlo_mail_rcpt();
    t.send("DATA\r\n");
    for _ in 0..10 {
        t.send(&format!("{}\r\n", "x".repeat(50)));
    }
    t.send(".\r\n");
    assert!(t.take().ends_with("552 5.3.4 message exceeds the limit of 100 octets\r\n"));
    assert_eq!(t.s.poll_event(), None);
}

#[test]
fn header_line_cap() {
    let mut t = T::with(SessionConfig {
        limits: Limits { max_header_lines: 3, ..Limits::default() },
        ..SessionConfig::default()
    });
    t.ehlo_mail_rcpt();
    t.send("DATA\r\nA: 1\r\nB: 2\r\n continued\r\nC: 3\r\n\r\nD: not a header\r\n.\r\n");
    assert!(matches!(t.answer(Reply::ok("ok")), Question::Data(_)), "3 header lines are fine");
    t.ehlo_mail_rcpt();
    t.send("DATA\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n.\r\n");
    assert!(t.take().ends_with("554 5.6.0 message has more than 3 header lines\r\n"));
}

#[test]
fn long_data_line_is_refused_and_the_end_still_found() {
    let mut t = T::with(SessionConfig {
        limits: Limits { max_data_line: 100, ..Limits::default() },
        ..SessionConfig::default()
    });
    t.ehlo_mail_rcpt();
    t.send("DATA\r\n");
    t.send(&"y".repeat(150));
    t.send(&"y".repeat(150));
    t.send("\r\n.\r\n");
    assert!(t.take().ends_with("554 5.6.0 message has a line longer than 100 octets\r\n"));
    // The same when the long line arrives whole, with its end, in one read.
    t.ehlo_mail_rcpt();
    t.send(&format!("DATA\r\nA: 1\r\n\r\n{}\r\nshort\r\n.\r\n", "z".repeat(101)));
    assert!(t.take().ends_with("554 5.6.0 message has a line longer than 100 octets\r\n"));
    // A line of exactly the limit is fine.
    t.ehlo_mail_rcpt();
    t.send(&format!("DATA\r\nA: 1\r\n\r\n{}\r\n.\r\n", "z".repeat(100)));
    assert!(matches!(t.answer(Reply::ok("ok")), Question::Data(_)));
}

#[test]
fn long_command_line() {
    let mut t = T::new();
    t.send(&"N".repeat(MAX_COMMAND_LINE + 10));
    t.send("OOP\r\nNOOP\r\n");
    assert_eq!(t.take(), "500 5.5.6 line too long\r\n250 2.0.0 OK\r\n");
}

#[test]
fn idle_timeout() {
    let mut t = T::new();
    let deadline = t.s.poll_timeout().unwrap();
    assert_eq!(deadline, t.now + Duration::from_secs(60));
    t.now += Duration::from_secs(30);
    t.send("NOOP\r\n");
    t.take();
    assert_eq!(t.s.poll_timeout(), Some(t.now + Duration::from_secs(60)), "input moves the deadline");
    t.s.handle_timeout(t.now + Duration::from_secs(59));
    assert_eq!(t.take(), "");
    t.s.handle_timeout(t.now + Duration::from_secs(60));
    assert_eq!(t.take(), "421 4.4.2 idle too long, closing connection\r\n");
    assert!(t.s.is_closed());
    assert_eq!(t.s.poll_timeout(), None);
}

#[test]
fn no_timeout_while_waiting_for_a_decision() {
    let mut t = T::new();
    t.send("EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
    assert_eq!(t.s.poll_timeout(), None);
}

#[test]
fn too_many_errors_close_the_session() {
    let mut t = T::new();
    for _ in 0..9 {
        t.send("BOGUS\r\n");
    }
    assert!(!t.s.is_closed());
    t.send("BOGUS\r\nNOOP\r\n");
    assert!(
        t.take().ends_with("500 5.5.2 command not recognized\r\n421 4.7.0 too many errors, closing connection\r\n")
    );
    assert!(t.s.is_closed());
}

#[test]
fn starttls_discards_pipelined_plaintext() {
    let mut t = T::with(SessionConfig { starttls: true, ..SessionConfig::default() });
    t.send("EHLO c\r\nSTARTTLS\r\nMAIL FROM:<injected@b.test>\r\n");
    assert!(t.take().ends_with("220 2.0.0 ready to start TLS\r\n"));
    assert_eq!(t.s.poll_event(), Some(Event::StartTls));
    assert_eq!(t.s.poll_timeout(), Some(t.now + Duration::from_secs(10)), "the handshake's deadline");
    t.s.tls_started(t.now);
    assert!(t.s.is_tls());
    assert_eq!(t.s.poll_event(), None, "the injected MAIL is gone");
    t.send("MAIL FROM:<a@b.test>\r\n");
    assert_eq!(t.take(), "503 5.5.1 send EHLO or HELO first\r\n", "EHLO again after TLS");
    t.send("STARTTLS\r\n");
    assert_eq!(t.take(), "503 5.5.1 already using TLS\r\n");
    let mut t = T::new();
    t.send("STARTTLS\r\n");
    assert_eq!(t.take(), "502 5.5.1 STARTTLS not available\r\n");
}

#[test]
fn auth_requires_tls() {
    let mut t = T::new();
    t.send("EHLO c\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\n");
    assert!(t.take().ends_with("538 5.7.11 encryption required: use STARTTLS first\r\n"));
    assert_eq!(t.s.poll_event(), None);
}

#[test]
fn auth_plain() {
    let mut t = T::tls();
    t.send("EHLO c\r\n");
    t.take();
    t.send("AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
    match t.answer(Reply::new(235, Enhanced(2, 7, 0), "authenticated")) {
        Question::Auth { user, password, context } => {
            assert_eq!((user.as_str(), password.as_str()), ("user", "pass"));
            assert!(context.tls);
        }
        q => panic!("{q:?}"),
    }
    assert_eq!(t.take(), "235 2.7.0 authenticated\r\n");
    t.send("MAIL FROM:<a@b.test>\r\n");
    assert!(
        matches!(t.answer(Reply::ok("ok")), Question::Mail { context, .. } if context.auth_user.as_deref() == Some("user"))
    );
    t.send("AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
    assert!(t.take().ends_with("503 5.5.1 AUTH not allowed during a mail transaction\r\n"));
    t.send("RSET\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\n");
    assert!(t.take().ends_with("503 5.5.1 already authenticated\r\n"));
}

#[test]
fn auth_plain_in_two_steps_and_refused() {
    let mut t = T::tls();
    t.send("EHLO c\r\nAUTH PLAIN\r\n");
    assert!(t.take().ends_with("334 \r\n"));
    t.send("AHVzZXIAd3Jvbmc=\r\n");
    assert!(
        matches!(t.answer(Reply::new(535, Enhanced(5, 7, 8), "authentication failed")), Question::Auth { password, .. } if password == "wrong")
    );
    assert_eq!(t.take(), "535 5.7.8 authentication failed\r\n");
    t.send("MAIL FROM:<a@b.test>\r\n");
    assert!(matches!(t.answer(Reply::ok("ok")), Question::Mail { context, .. } if context.auth_user.is_none()));
}

#[test]
fn auth_login_cancel_and_garbage() {
    let mut t = T::tls();
    t.send("EHLO c\r\nAUTH LOGIN\r\n");
    assert!(t.take().ends_with("334 VXNlcm5hbWU6\r\n"));
    t.send("dXNlcg==\r\n");
    assert_eq!(t.take(), "334 UGFzc3dvcmQ6\r\n");
    t.send("cGFzcw==\r\n");
    assert!(
        matches!(t.answer(Reply::new(235, Enhanced(2, 7, 0), "ok")), Question::Auth { user, password, .. } if user == "user" && password == "pass")
    );
    let mut t = T::tls();
    t.send("EHLO c\r\nAUTH LOGIN dXNlcg==\r\n*\r\n");
    assert!(t.take().ends_with("334 UGFzc3dvcmQ6\r\n501 5.0.0 authentication cancelled\r\n"));
    t.send("AUTH PLAIN !!!\r\nAUTH CRAM-MD5\r\nAUTH PLAIN dXNlcg==\r\n");
    assert_eq!(
        t.take(),
        "501 5.5.2 invalid base64 in AUTH response\r\n504 5.5.4 mechanism not supported; use PLAIN or LOGIN\r\n\
         501 5.5.2 malformed PLAIN response\r\n"
    );
    assert_eq!(t.s.poll_event(), None);
}

#[test]
fn submission_requires_auth() {
    let mut t = T::with(SessionConfig { auth_required: true, ..SessionConfig::default() });
    t.send("EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
    assert!(t.take().ends_with("530 5.7.0 authentication required\r\n"));
}

#[test]
fn shutdown_tells_the_client() {
    let mut t = T::new();
    t.s.shutdown();
    assert_eq!(t.take(), "421 4.3.2 service shutting down, try again later\r\n");
    assert!(t.s.is_closed());
}

#[test]
fn a_stop_during_data_takes_the_message_then_closes() {
    let mut t = T::new();
    t.ehlo_mail_rcpt();
    t.send("DATA\r\nSubject: x\r\n\r\nhalf");
    assert_eq!(t.take(), "354 end data with <CR><LF>.<CR><LF>\r\n");
    t.s.shutdown();
    assert!(!t.s.is_closed(), "the message is still coming");
    assert_eq!(t.take(), "");
    t.send(" of it\r\n.\r\nMAIL FROM:<b@client.test>\r\n");
    assert!(
        matches!(t.answer(Reply::ok("queued as job-1")), Question::Data(m) if m.data == b"Subject: x\r\n\r\nhalf of it\r\n")
    );
    assert_eq!(t.take(), "250 2.0.0 queued as job-1\r\n421 4.3.2 service shutting down, try again later\r\n");
    assert!(t.s.is_closed());
    assert_eq!(t.s.poll_event(), None, "the pipelined MAIL is not taken");
}

fn slow_config() -> SessionConfig {
    SessionConfig {
        hostname: "fax.test".into(),
        limits: Limits { min_rate: 10, rate_window: Duration::from_secs(30), ..Limits::default() },
        ..SessionConfig::default()
    }
}

#[test]
fn a_command_sent_a_byte_every_5_s_is_closed_when_the_window_is_full() {
    let mut t = T::with(slow_config());
    assert_eq!(t.s.poll_timeout(), Some(t.now + Duration::from_secs(60)), "no command under way: the idle timeout");
    let start = t.now;
    for b in ["N", "O", "O", "P", "\r", "\n", "N", "O"] {
        t.send(b);
        if t.s.poll_timeout().is_some_and(|d| d <= t.now + Duration::from_secs(5)) {
            break;
        }
        t.now += Duration::from_secs(5);
        t.s.handle_timeout(t.now);
    }
    // "NOOP\r\n" took 25 s of owed time; the second begun at 30 s fills the
    // window 5 s later with 8 bytes, fewer than 10 a second.
    assert_eq!(t.take(), "250 2.0.0 OK\r\n");
    let deadline = t.s.poll_timeout().unwrap();
    assert_eq!(deadline, start + Duration::from_secs(35), "the time between the commands did not count");
    t.s.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!t.s.is_closed());
    t.s.handle_timeout(deadline);
    assert_eq!(t.take(), "421 4.4.2 too slow (less than 10 bytes a second), closing connection\r\n");
    assert!(t.s.is_closed());
}

#[test]
fn a_slow_message_is_closed_and_a_fast_one_is_not_whatever_its_length() {
    let mut t = T::with(slow_config());
    t.ehlo_mail_rcpt();
    t.send("DATA\r\n");
    assert!(t.take().starts_with("354 "));
    // 299 bytes in the first 30 s, "DATA\r\n" included: one short.
    t.send(&format!("Subject: x\r\n\r\n{}", "y".repeat(299 - 6 - 14)));
    assert_eq!(t.s.poll_timeout(), Some(t.now + Duration::from_secs(30)));
    t.now += Duration::from_secs(30);
    t.s.handle_timeout(t.now);
    assert_eq!(t.take(), "421 4.4.2 too slow (less than 10 bytes a second), closing connection\r\n");

    let mut t = T::with(slow_config());
    t.ehlo_mail_rcpt();
    t.send("DATA\r\nSubject: x\r\n\r\n");
    t.take();
    for _ in 0..20 {
        // 300 bytes every 30 s, for ten minutes.
        t.send(&format!("{}\r\n", "z".repeat(298)));
        t.now += Duration::from_secs(30);
        t.s.handle_timeout(t.now);
        assert!(!t.s.is_closed(), "{}", t.take());
    }
    t.send(".\r\n");
    assert!(matches!(t.answer(Reply::ok("stored")), Question::Data(_)));
}

#[test]
fn waiting_for_the_driver_or_between_commands_is_not_owed_time() {
    let mut t = T::with(slow_config());
    t.send("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<1@fax.test>\r\n");
    assert_eq!(t.s.poll_timeout(), None, "asking");
    // The decision takes 40 s; pipelined input waits meanwhile.
    t.now += Duration::from_secs(40);
    t.answer(Reply::ok("sender ok"));
    t.now += Duration::from_secs(40);
    t.answer(Reply::ok("recipient ok"));
    assert!(!t.s.is_closed());
    assert_eq!(t.s.poll_timeout(), Some(t.now + Duration::from_secs(60)), "nothing under way: idle");
    // An AUTH exchange after 334 is owed.
    let mut t = T::tls();
    t.send("EHLO c\r\n");
    t.take();
    t.s.handle_timeout(t.now);
    t.send("AUTH LOGIN\r\n");
    assert!(t.take().starts_with("334 "));
    let owed_from = t.now;
    assert_eq!(t.s.poll_timeout(), Some(owed_from + Duration::from_secs(30)));
}

#[test]
fn no_minimum_rate_when_it_is_0() {
    let mut t =
        T::with(SessionConfig { limits: Limits { min_rate: 0, ..Limits::default() }, ..SessionConfig::default() });
    t.ehlo_mail_rcpt();
    t.send("DATA\r\n");
    for _ in 0..30 {
        t.send("x");
        t.now += Duration::from_secs(50);
        t.s.handle_timeout(t.now);
    }
    assert!(!t.s.is_closed());
}

#[test]
fn implicit_tls_greets_after_the_handshake_and_a_handshake_too_long_is_cut_off() {
    let now = Instant::now();
    let config = Arc::new(SessionConfig { hostname: "fax.test".into(), ..SessionConfig::default() });
    let mut s = Session::new_implicit_tls(config.clone(), PEER, now);
    assert_eq!(s.poll_transmit(), None, "no greeting in the clear");
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(10)));
    s.handle_timeout(now + Duration::from_secs(9));
    assert!(!s.is_closed());
    s.tls_started(now + Duration::from_secs(9));
    assert!(s.is_tls());
    assert_eq!(s.poll_transmit().unwrap(), b"220 fax.test ESMTP faxgate\r\n");
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(69)), "then the idle timeout");

    let mut s = Session::new_implicit_tls(config, PEER, now);
    s.handle_timeout(now + Duration::from_secs(10));
    assert!(s.is_closed());
    assert_eq!(s.poll_transmit(), None, "nothing can be said in the middle of a handshake");
    assert_eq!(s.poll_timeout(), None);

    // After STARTTLS the same deadline, from the 220.
    let mut t = T::tls();
    t.send("EHLO c\r\nSTARTTLS\r\n");
    assert!(t.take().ends_with("503 5.5.1 already using TLS\r\n"));
    let mut t = T::with(SessionConfig { starttls: true, ..SessionConfig::default() });
    t.now += Duration::from_secs(3);
    t.send("STARTTLS\r\n");
    assert_eq!(t.s.poll_timeout(), Some(t.now + Duration::from_secs(10)));
    t.s.handle_timeout(t.now + Duration::from_secs(10));
    assert!(t.s.is_closed());
    assert_eq!(t.take(), "220 2.0.0 ready to start TLS\r\n");
}
