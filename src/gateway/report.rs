//! What the gateway tells people: the report to the sender of a fax from
//! mail, the mail that carries a received fax, and the notice that a
//! webhook was disabled. Danish and English, by the tenant's branding.

use jiff::Timestamp;

use super::job::{FaxJob, JobState, Outcome};
use crate::directory::{Language, Tenant};

/// A mail to send: subject and plain-text body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text {
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
}

/// `t` in the tenant's time zone, with the zone's abbreviation.
pub fn local_time(tenant: &Tenant, t: Timestamp) -> String {
    t.to_zoned(tenant.tz()).strftime("%Y-%m-%d %H:%M:%S %Z").to_string()
}

/// The cause of an outcome in plain words.
pub fn reason(lang: Language, o: &Outcome) -> String {
    use Language::{Da, En};
    match (lang, o) {
        (En, Outcome::Sent { .. }) => "all pages were delivered".into(),
        (Da, Outcome::Sent { .. }) => "alle sider blev leveret".into(),
        (En, Outcome::Busy { .. }) => "the line was busy every time".into(),
        (Da, Outcome::Busy { .. }) => "nummeret var optaget hver gang".into(),
        (En, Outcome::NoAnswer { .. }) => "nobody answered".into(),
        (Da, Outcome::NoAnswer { .. }) => "der blev ikke svaret".into(),
        (En, Outcome::TransferFailed { text, .. }) => format!("the fax machine at the other end broke off ({text})"),
        (Da, Outcome::TransferFailed { text, .. }) => format!("faxen i den anden ende afbrød ({text})"),
        (En, Outcome::BadNumber { .. }) => "the number does not exist".into(),
        (Da, Outcome::BadNumber { .. }) => "nummeret findes ikke".into(),
        (En, Outcome::Refused { .. }) => "the telephone network refused the call".into(),
        (Da, Outcome::Refused { .. }) => "telefonnettet afviste opkaldet".into(),
        (En, Outcome::NetworkFailure { text, .. }) => format!("the telephone network failed ({text})"),
        (Da, Outcome::NetworkFailure { text, .. }) => format!("telefonnettet svigtede ({text})"),
        (En, Outcome::Interrupted) => "the gateway was restarted during the call".into(),
        (Da, Outcome::Interrupted) => "gatewayen blev genstartet under opkaldet".into(),
        (En, Outcome::BadDocument { text }) => format!("the document cannot be faxed: {text}"),
        (Da, Outcome::BadDocument { text }) => format!("dokumentet kan ikke faxes: {text}"),
        (En, Outcome::Blocked { text }) => format!("faxes to this number are not allowed: {text}"),
        (Da, Outcome::Blocked { text }) => format!("fax til dette nummer er ikke tilladt: {text}"),
        (En, Outcome::Cancelled) => "the fax was cancelled before it was sent".into(),
        (Da, Outcome::Cancelled) => "faxen blev annulleret, før den blev sendt".into(),
    }
}

/// `value` on one line: every control character (line breaks, tabs,
/// escapes) becomes a space, so that a decoded header (a Subject with an
/// encoded CRLF) or a remote station id cannot start a line of its own.
pub fn one_line(value: &str) -> String {
    value.chars().map(|c| if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') { ' ' } else { c }).collect()
}

/// A body: an opening sentence, aligned "label: value" rows (each value on
/// one line), the brand.
fn body(opening: &str, rows: &[(&str, String)], brand: &str) -> String {
    body_closing(opening, rows, None, brand)
}

/// [`body`] with a closing paragraph after the rows.
fn body_closing(opening: &str, rows: &[(&str, String)], closing: Option<&str>, brand: &str) -> String {
    let mut out = format!("{opening}\n\n");
    for (label, value) in rows {
        out.push_str(&format!("{:<17}{}\n", format!("{label}:"), one_line(value)));
    }
    if let Some(c) = closing {
        out.push_str(&format!("\n{c}\n"));
    }
    out.push_str(&format!("\n{brand}\n"));
    out
}

/// The words of the reports, per language.
struct Words {
    delivered: &'static str,
    not_delivered: &'static str,
    not_called: &'static str,
    ok: &'static str,
    failed: &'static str,
    of: &'static str,
    none_called: &'static str,
    labels: Labels,
}

struct Labels {
    number: &'static str,
    result: &'static str,
    reason: &'static str,
    code: &'static str,
    pages: &'static str,
    attempts: &'static str,
    call_time: &'static str,
    remote: &'static str,
    subject: &'static str,
    accepted: &'static str,
    finished: &'static str,
    reference: &'static str,
}

const EN: Words = Words {
    delivered: "Your fax was delivered.",
    not_delivered: "Your fax could not be delivered.",
    not_called: "Your fax could not be delivered; the number was not called.",
    ok: "delivered",
    failed: "failed",
    of: "of",
    none_called: "none: the number was not called",
    labels: Labels {
        number: "Number",
        result: "Result",
        reason: "Reason",
        code: "Code",
        pages: "Pages sent",
        attempts: "Attempts",
        call_time: "Call time",
        remote: "Remote station",
        subject: "Subject",
        accepted: "Accepted",
        finished: "Finished",
        reference: "Reference",
    },
};

const DA: Words = Words {
    delivered: "Din fax er leveret.",
    not_delivered: "Din fax kunne ikke leveres.",
    not_called: "Din fax kunne ikke leveres; nummeret blev ikke ringet op.",
    ok: "leveret",
    failed: "fejlet",
    of: "af",
    none_called: "ingen: nummeret blev ikke ringet op",
    labels: Labels {
        number: "Nummer",
        result: "Resultat",
        reason: "Årsag",
        code: "Kode",
        pages: "Sider sendt",
        attempts: "Forsøg",
        call_time: "Opkaldstid",
        remote: "Modtagerstation",
        subject: "Emne",
        accepted: "Modtaget",
        finished: "Afsluttet",
        reference: "Reference",
    },
};

/// The report on a finished job. A job that ended before any call (a
/// document that cannot be faxed, a destination not allowed) says the
/// number was not called, with no pages or call time.
pub fn job_report(tenant: &Tenant, job: &FaxJob) -> Text {
    let lang = tenant.branding.language;
    let w = match lang {
        Language::En => &EN,
        Language::Da => &DA,
    };
    let l = &w.labels;
    let ok = job.state == JobState::Done;
    let last = job.attempts.last();
    let outcome = last.map(|a| &a.outcome);
    let pages = outcome.map_or(0, Outcome::pages);
    let calls: Vec<_> = job.attempts.iter().filter(|a| a.outcome.called()).collect();
    let duration: i64 = calls.iter().map(|a| a.end.duration_since(a.start).as_secs()).sum();
    let code = match outcome {
        Some(o @ Outcome::TransferFailed { t30_code: Some(c), .. }) => format!("{} (T.30 {c})", o.code()),
        Some(o) => match o.sip_status() {
            Some(s) => format!("{} (SIP {s})", o.code()),
            None => o.code().to_owned(),
        },
        None => String::new(),
    };
    let mut rows: Vec<(&str, String)> = vec![
        (l.number, job.to.to_string()),
        (l.result, (if ok { w.ok } else { w.failed }).to_owned()),
        (l.reason, outcome.map(|o| reason(lang, o)).unwrap_or_default()),
        (l.code, code),
    ];
    if calls.is_empty() {
        rows.push((l.attempts, w.none_called.to_owned()));
    } else {
        rows.push((l.pages, format!("{pages} {} {}", w.of, job.pages_total)));
        rows.push((l.attempts, calls.len().to_string()));
        rows.push((l.call_time, format!("{duration} s")));
        if let Some(remote) = last.and_then(|a| a.remote_station.clone()) {
            rows.push((l.remote, remote));
        }
    }
    rows.extend([
        (l.subject, job.subject.clone()),
        (l.accepted, local_time(tenant, job.created)),
        (l.finished, last.map(|a| local_time(tenant, a.end)).unwrap_or_default()),
        (l.reference, format!("{} / {}", job.correlation_id, job.id.to_text())),
    ]);
    let subject = match (lang, ok) {
        (Language::En, true) => format!("Fax to {} delivered ({pages} of {} pages)", job.to, job.pages_total),
        (Language::En, false) => format!("Fax to {} NOT delivered", job.to),
        (Language::Da, true) => format!("Fax til {} leveret ({pages} af {} sider)", job.to, job.pages_total),
        (Language::Da, false) => format!("Fax til {} IKKE leveret", job.to),
    };
    let opening = match (ok, calls.is_empty()) {
        (true, _) => w.delivered,
        (false, false) => w.not_delivered,
        (false, true) => w.not_called,
    };
    Text { subject, body: body(opening, &rows, &tenant.branding.display_name) }
}

/// What the mail carrying a received fax says.
#[derive(Debug)]
pub struct Received<'a> {
    /// The calling number (or what the network sent).
    pub from: &'a str,
    /// The number called.
    pub to: &'a str,
    /// Pages received.
    pub pages: u32,
    /// The fax was cut short.
    pub incomplete: bool,
    /// Remote station id.
    pub station: &'a str,
    /// When the call started.
    pub start: Timestamp,
    /// Call time in seconds.
    pub duration_s: i64,
    /// The T.30 result text.
    pub result: &'a str,
    /// The correlation id (the CDR).
    pub reference: &'a str,
}

/// The mail for a received fax.
pub fn received(tenant: &Tenant, r: &Received<'_>) -> Text {
    let values = [
        r.from.to_owned(),
        r.to.to_owned(),
        r.pages.to_string(),
        r.station.to_owned(),
        local_time(tenant, r.start),
        format!("{} s", r.duration_s),
        r.result.to_owned(),
        r.reference.to_owned(),
    ];
    let (labels, opening, subject) = match tenant.branding.language {
        Language::En => (
            ["From", "To", "Pages", "Remote station", "Received", "Call time", "Result", "Reference"],
            if r.incomplete {
                "This fax is INCOMPLETE: the call ended before the sender had sent every page. \
                 The pages that arrived are attached."
            } else {
                "A fax was received; it is attached."
            },
            format!(
                "Fax from {}, {} page{}{}",
                one_line(r.from),
                r.pages,
                if r.pages == 1 { "" } else { "s" },
                if r.incomplete { " (INCOMPLETE)" } else { "" }
            ),
        ),
        Language::Da => (
            ["Fra", "Til", "Sider", "Afsenderstation", "Modtaget", "Opkaldstid", "Resultat", "Reference"],
            if r.incomplete {
                "Denne fax er UFULDSTÆNDIG: opkaldet sluttede, før afsenderen havde sendt alle sider. \
                 De sider, der kom frem, er vedhæftet."
            } else {
                "Der er modtaget en fax; den er vedhæftet."
            },
            format!(
                "Fax fra {}, {} side{}{}",
                one_line(r.from),
                r.pages,
                if r.pages == 1 { "" } else { "r" },
                if r.incomplete { " (UFULDSTÆNDIG)" } else { "" }
            ),
        ),
    };
    let rows: Vec<(&str, String)> = labels.into_iter().zip(values).collect();
    Text { subject, body: body(opening, &rows, &tenant.branding.display_name) }
}

/// What the notice of a disabled webhook says.
#[derive(Debug)]
pub struct HookDisabled<'a> {
    /// The webhook's id.
    pub id: &'a str,
    /// Its host, for the subject.
    pub host: &'a str,
    /// Its URL as shown: scheme, host and path (never a query, never the secret).
    pub url: &'a str,
    /// The events it was told of.
    pub events: &'a [&'a str],
    /// Its account, if it is an account's.
    pub account: Option<String>,
    /// When it was disabled.
    pub at: Timestamp,
    /// Why.
    pub reason: &'a str,
    /// Pending deliveries dropped with it.
    pub dropped: usize,
}

/// The notice that a webhook was disabled after failures in a row.
pub fn webhook_disabled(tenant: &Tenant, h: &HookDisabled<'_>) -> Text {
    let enable = format!("faxgate webhook enable {}  /  POST /v1/webhooks/{}/enable", h.id, h.id);
    let (subject, opening, labels, dropped, closing) = match tenant.branding.language {
        Language::En => (
            format!("Webhook disabled: {}", one_line(h.host)),
            "A webhook was disabled: its deliveries failed too many times in a row. \
             It is sent no events until it is enabled again.",
            ["Webhook", "URL", "Events", "Account", "Disabled", "Reason", "Dropped"],
            format!(
                "{} pending deliver{} (not sent, not retried)",
                h.dropped,
                if h.dropped == 1 { "y" } else { "ies" }
            ),
            format!("Once the receiver answers again, enable the webhook:\n{enable}"),
        ),
        Language::Da => (
            format!("Webhook deaktiveret: {}", one_line(h.host)),
            "En webhook er deaktiveret: leveringerne til den fejlede for mange gange i træk. \
             Den får ingen hændelser, før den aktiveres igen.",
            ["Webhook", "URL", "Hændelser", "Konto", "Deaktiveret", "Årsag", "Kasseret"],
            format!(
                "{} ventende levering{} (ikke sendt, prøves ikke igen)",
                h.dropped,
                if h.dropped == 1 { "" } else { "er" }
            ),
            format!("Når modtageren svarer igen, aktiveres webhooken med:\n{enable}"),
        ),
    };
    let [l_id, l_url, l_events, l_account, l_at, l_reason, l_dropped] = labels;
    let mut rows: Vec<(&str, String)> =
        vec![(l_id, h.id.to_owned()), (l_url, h.url.to_owned()), (l_events, h.events.join(", "))];
    if let Some(a) = &h.account {
        rows.push((l_account, a.clone()));
    }
    rows.extend([(l_at, local_time(tenant, h.at)), (l_reason, h.reason.to_owned()), (l_dropped, dropped)]);
    Text { subject, body: body_closing(opening, &rows, Some(&closing), &tenant.branding.display_name) }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::directory::{Branding, Paper};
    use crate::gateway::job::Attempt;
    use crate::types::{AccountId, E164, JobId};

    fn tenant(language: Language) -> Tenant {
        Tenant {
            id: "nordtel".parse().unwrap(),
            name: "Nordtel ApS".into(),
            branding: Branding {
                display_name: "Nordtel Fax".into(),
                from_address: "fax@nordtel.dk".parse().unwrap(),
                language,
            },
            default_country: "DK".parse().unwrap(),
            fax_domains: vec![],
            paper: Paper::A4,
            time_zone: None,
            header_template: None,
            station_id: None,
        }
    }

    fn job(outcome: Outcome, state: JobState) -> FaxJob {
        let t0: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        FaxJob {
            id: JobId::generate(),
            mail_job: JobId::generate(),
            correlation_id: "<tilbud-7@kunde.dk>".into(),
            tenant: "nordtel".parse().unwrap(),
            account: AccountId::generate(),
            mail_from: "bogholder@kunde.dk".into(),
            subject: "Tilbud på kontorartikler".into(),
            to: E164::parse("+4533221100", None).unwrap(),
            caller: None,
            smtp_client: None,
            pages_total: 3,
            created: t0,
            state,
            next_at: t0,
            attempts: vec![Attempt {
                start: t0 + SignedDuration::from_secs(5),
                end: t0 + SignedDuration::from_secs(95),
                cdr_id: "cdr-1".into(),
                outcome,
                remote_station: Some("+45 33 22 11 00".into()),
            }],
            safer: false,
            reported: false,
        }
    }

    #[test]
    fn danish_reports_say_what_happened_in_danish() {
        let j = job(Outcome::Sent { pages: 3 }, JobState::Done);
        let t = job_report(&tenant(Language::Da), &j);
        assert_eq!(t.subject, "Fax til +4533221100 leveret (3 af 3 sider)");
        for row in [
            "Din fax er leveret.",
            "Resultat:        leveret",
            "Årsag:           alle sider blev leveret",
            "Sider sendt:     3 af 3",
            "Opkaldstid:      90 s",
            "Modtagerstation: +45 33 22 11 00",
            "Emne:            Tilbud på kontorartikler",
        ] {
            assert!(t.body.contains(row), "{row:?} in\n{}", t.body);
        }
        assert!(t.body.contains(&format!("Reference:       <tilbud-7@kunde.dk> / {}", j.id.to_text())), "{}", t.body);
        assert!(t.body.ends_with("Nordtel Fax\n"));

        let busy = job(Outcome::Busy { status: 486 }, JobState::Failed);
        let t = job_report(&tenant(Language::Da), &busy);
        assert_eq!(t.subject, "Fax til +4533221100 IKKE leveret");
        assert!(t.body.contains("Din fax kunne ikke leveres."), "{}", t.body);
        assert!(t.body.contains("Årsag:           nummeret var optaget hver gang"), "{}", t.body);
        assert!(t.body.contains("Kode:            busy (SIP 486)"), "{}", t.body);
        // The same job for an English-speaking tenant.
        let t = job_report(&tenant(Language::En), &busy);
        assert_eq!(t.subject, "Fax to +4533221100 NOT delivered");
        assert!(t.body.contains("Reason:          the line was busy every time"), "{}", t.body);
    }

    #[test]
    fn a_mail_never_called_is_reported_as_not_called_without_call_time() {
        for (outcome, reason) in [
            (
                Outcome::BadDocument { text: "the PDF document is damaged and cannot be read".into() },
                "the document cannot be faxed",
            ),
            (Outcome::Blocked { text: "+4590xxxxxx is premium rate".into() }, "faxes to this number are not allowed"),
        ] {
            let mut j = job(outcome, JobState::Failed);
            j.pages_total = 0;
            let t0 = j.created;
            j.attempts[0].start = t0;
            j.attempts[0].end = t0;
            j.attempts[0].remote_station = None;
            let t = job_report(&tenant(Language::En), &j);
            assert!(t.body.starts_with("Your fax could not be delivered; the number was not called."), "{}", t.body);
            assert!(t.body.contains("Attempts:        none: the number was not called"), "{}", t.body);
            assert!(t.body.contains(&format!("Reason:          {reason}")), "{}", t.body);
            for absent in ["Call time", "Pages sent", "Remote station", "0 of 0"] {
                assert!(!t.body.contains(absent), "{absent:?} in\n{}", t.body);
            }
            let t = job_report(&tenant(Language::Da), &j);
            assert!(t.body.contains("Forsøg:          ingen: nummeret blev ikke ringet op"), "{}", t.body);
            assert!(!t.body.contains("Opkaldstid"), "{}", t.body);
        }
    }

    #[test]
    fn times_are_in_the_tenants_zone() {
        let j = job(Outcome::Sent { pages: 3 }, JobState::Done);
        let mut t = tenant(Language::Da);
        assert!(job_report(&t, &j).body.contains("Modtaget:        2026-03-02 09:00:00 UTC"));
        t.time_zone = Some("Europe/Copenhagen".into());
        let body = job_report(&t, &j).body;
        assert!(body.contains("Modtaget:        2026-03-02 10:00:00 CET"), "{body}");
        assert!(body.contains("Afsluttet:       2026-03-02 10:01:35 CET"), "{body}");
    }

    #[test]
    fn a_received_fax_cut_short_is_marked_in_either_language() {
        let r = Received {
            from: "+4570203040",
            to: "+4533221100",
            pages: 1,
            incomplete: true,
            station: "KONTOR",
            start: "2026-03-02T09:00:00Z".parse().unwrap(),
            duration_s: 61,
            result: "call dropped",
            reference: "cdr-1",
        };
        let da = received(&tenant(Language::Da), &r);
        assert_eq!(da.subject, "Fax fra +4570203040, 1 side (UFULDSTÆNDIG)");
        assert!(da.body.starts_with("Denne fax er UFULDSTÆNDIG"), "{}", da.body);
        let en = received(&tenant(Language::En), &r);
        assert_eq!(en.subject, "Fax from +4570203040, 1 page (INCOMPLETE)");
    }

    #[test]
    fn a_disabled_webhook_is_reported_in_the_tenants_language() {
        let h = HookDisabled {
            id: "0a1b2c3d4e5f6071",
            host: "hooks.kunde.dk",
            url: "https://hooks.kunde.dk/fax",
            events: &["fax.failed", "fax.sent"],
            account: None,
            at: "2026-03-02T09:00:00Z".parse().unwrap(),
            reason: "20 deliveries failed in a row; the last: the receiver answered 503 Service Unavailable",
            dropped: 3,
        };
        let en = webhook_disabled(&tenant(Language::En), &h);
        assert_eq!(en.subject, "Webhook disabled: hooks.kunde.dk");
        for row in [
            "Webhook:         0a1b2c3d4e5f6071\n",
            "URL:             https://hooks.kunde.dk/fax\n",
            "Events:          fax.failed, fax.sent\n",
            "Disabled:        2026-03-02 09:00:00 UTC\n",
            "Reason:          20 deliveries failed in a row; the last: the receiver answered 503",
            "Dropped:         3 pending deliveries (not sent, not retried)\n",
            "faxgate webhook enable 0a1b2c3d4e5f6071  /  POST /v1/webhooks/0a1b2c3d4e5f6071/enable\n",
        ] {
            assert!(en.body.contains(row), "{row:?} in\n{}", en.body);
        }
        assert!(!en.body.contains("Account:"), "{}", en.body);
        assert!(en.body.ends_with("\nNordtel Fax\n"), "{}", en.body);
        let da =
            webhook_disabled(&tenant(Language::Da), &HookDisabled { dropped: 1, account: Some("a-1".into()), ..h });
        assert_eq!(da.subject, "Webhook deaktiveret: hooks.kunde.dk");
        for row in [
            "Hændelser:       fax.failed, fax.sent\n",
            "Konto:           a-1\n",
            "Kasseret:        1 ventende levering (",
        ] {
            assert!(da.body.contains(row), "{row:?} in\n{}", da.body);
        }
    }

    #[test]
    fn header_values_stay_on_their_row() {
        let mut j = job(Outcome::Sent { pages: 3 }, JobState::Done);
        j.subject = "Offer\r\nBcc: victim@elsewhere.example\n\tX: y\u{1b}[2J\u{2028}z".into();
        j.attempts[0].remote_station = Some("ST\rATION".into());
        let t = job_report(&tenant(Language::En), &j);
        assert!(t.body.contains("Subject:         Offer  Bcc: victim@elsewhere.example  X: y [2J z\n"), "{}", t.body);
        assert!(t.body.contains("Remote station:  ST ATION\n"), "{}", t.body);
        assert!(!t.body.lines().any(|l| l.starts_with("Bcc") || l.starts_with('\t')), "{}", t.body);
        let r = Received {
            from: "+45\r\nBcc: x@y",
            to: "+4533221100",
            pages: 1,
            incomplete: false,
            station: "A\nB",
            start: "2026-03-02T09:00:00Z".parse().unwrap(),
            duration_s: 61,
            result: "ok",
            reference: "cdr-1",
        };
        let m = received(&tenant(Language::En), &r);
        assert_eq!(m.subject, "Fax from +45  Bcc: x@y, 1 page");
        assert!(m.body.contains("Remote station:  A B\n"), "{}", m.body);
    }
}
