//! The DMARC/SPF path of a sender that does not log in: any envelope
//! sender, HELO, client address and message through `Dmarc::check`, as the
//! SMTP listener calls it after DATA, offline (mail-auth's `test` feature
//! answers every DNS question "no such name", or an error for names with
//! `_dns_error.` and the like): a pass, or a refusal with an SMTP code and a
//! reason, never a panic. And any bytes as the DNS records that the check
//! reads (SPF, DMARC, DKIM key): parsed or refused, never a panic.
#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use faxgate::mail::dmarc::Dmarc;
use faxgate_smtp::Context;
use libfuzzer_sys::fuzz_target;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    peer: [u8; 16],
    v4: bool,
    helo: &'a str,
    mail_from: &'a str,
    record: &'a [u8],
    message: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let _ = mail_auth::spf::Spf::parse(input.record);
    let _ = mail_auth::dmarc::Dmarc::parse(input.record);
    let _ = DomainKey::parse(input.record);

    let peer = if input.v4 {
        IpAddr::from([input.peer[0], input.peer[1], input.peer[2], input.peer[3]])
    } else {
        IpAddr::from(input.peer)
    };
    let context = Context { peer, helo: input.helo.to_owned(), tls: false, auth_user: None };
    static RUNTIME: OnceLock<(tokio::runtime::Runtime, Dmarc)> = OnceLock::new();
    let (runtime, checker) = RUNTIME.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let checker =
            runtime.block_on(async { Dmarc::new(&["127.0.0.1:53".parse().unwrap()], "fax.example.net").unwrap() });
        (runtime, checker)
    });
    if let Err(reply) = runtime.block_on(checker.check(&context, input.mail_from, input.message)) {
        let code = reply.code;
        assert!((400..600).contains(&code), "a refusal that is not 4xx or 5xx: {code}");
    }
});
