//! Fax to mail: an INVITE for a number that is not active in the directory
//! is refused (404) before it is answered, with a CDR written off the SIP
//! path. Otherwise the call is recorded as it is answered, the fax received
//! into the work directory, turned into a PDF (and/or kept as TIFF, per
//! route) and queued in the outbox for each route once per call; then the
//! pages are removed and the CDR written. A call cut off by a stop is
//! finished at the next start from its record.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use faxgate_retention::LogId;
use faxgate_smtp::outgoing::OutAttachment;
use faxgate_t38::sip::{CallReport, IncomingCall};
use jiff::Timestamp;

use super::{Gateway, report, unassigned_tenant};
use crate::Error;
use crate::cdr::{self, Cdr, CdrStore};
use crate::directory::{AttachmentFormat, Language, Scope};
use crate::retention::cdr::month_key;
use crate::store::layout::mail as layout;
use crate::types::{E164, TenantId};

/// A call being received, stored (sealed with its CDR's month key) when it
/// is answered and removed once its CDR is written: after a stop in the
/// middle of the call, the next start writes the call's CDR and mails the
/// pages that had arrived.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct RxRecord {
    call_id: String,
    caller: String,
    called: E164,
    tenant: TenantId,
    account: crate::types::AccountId,
    signalling: Option<SocketAddr>,
    start: Timestamp,
    cdr_id: String,
    /// The pages' file name in the work directory.
    file: String,
}

/// What the gateway knows about a call it is receiving.
#[derive(Debug)]
pub(super) struct Inbound {
    number: crate::directory::FaxNumber,
    file: PathBuf,
    start: Timestamp,
    cdr_id: String,
    /// Says when the call's [`RxRecord`] is written (or could not be).
    recorded: std::sync::mpsc::Receiver<()>,
}

impl Inbound {
    /// Waits until the call's record is written, so that it is not removed
    /// before it was there (it is written as the call is answered, and a
    /// call lasts longer than that, but a loaded disk can take seconds).
    fn wait_recorded(&self) {
        let _ = self.recorded.recv_timeout(std::time::Duration::from_secs(60));
    }
}

/// Runs `work` (a disk write: a flush, perhaps the creation of a month's
/// key, each waiting for an fsync that a loaded disk can make long) on the
/// blocking pool, so that it never holds the worker that answers SIP and
/// that the calls' media share. Without a runtime (tests), at once.
fn off_sip_path(work: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => drop(h.spawn_blocking(work)),
        Err(_) => work(),
    }
}

/// The caller as the mail names it: its number, or "unknown caller" when
/// the network sent none or something that is not a number (`anonymous`, a
/// name, an extension).
fn caller_text(caller: &str, lang: Language) -> String {
    match E164::from_sip_user(caller) {
        Some(n) => n.to_string(),
        None => match lang {
            Language::En => "unknown caller".into(),
            Language::Da => "ukendt nummer".into(),
        },
    }
}

/// The attachments' file name, without extension: `fax-<number>-<time>`, or
/// `fax-unknown-<time>` (in the tenant's zone) for a caller without a number.
fn file_stem(caller: &str, tenant: &crate::directory::Tenant, start: Timestamp) -> String {
    let who = E164::from_sip_user(caller).map_or_else(|| "unknown".to_owned(), |n| n.as_str().replace('+', ""));
    format!("fax-{who}-{}", start.to_zoned(tenant.tz()).strftime("%Y%m%d-%H%M%S"))
}

impl Gateway {
    /// `number`, if faxes to it are taken here: its account is active and
    /// it has somewhere to mail them.
    fn routed_number(&self, number: &E164, now: Timestamp) -> Option<crate::directory::FaxNumber> {
        let num = self.inner.directory.number_get(&Scope::Operator, number.as_str()).ok()?;
        let acc = self.inner.directory.account_get(&Scope::Operator, &num.account).ok()?;
        (acc.status(now) == crate::directory::AccountStatus::Active && !num.routes.is_empty()).then_some(num)
    }

    pub(super) fn route_incoming(&self, trunk: &str, call: &IncomingCall) -> Option<PathBuf> {
        let now = self.now();
        let number = E164::from_sip_user(&call.called);
        let found = number.as_ref().and_then(|n| self.routed_number(n, now));
        let cdr_id = CdrStore::new_id();
        match found {
            Some(num) => {
                let name = format!("rx-{}.tiff", uuid::Uuid::new_v4().simple());
                let file = self.inner.work_dir.join(&name);
                let record = RxRecord {
                    call_id: call.call_id.clone(),
                    caller: call.caller.clone(),
                    called: num.number.clone(),
                    tenant: num.tenant.clone(),
                    account: num.account,
                    signalling: call.signalling,
                    start: now,
                    cdr_id: cdr_id.clone(),
                    file: name,
                };
                // Written off the SIP path: the answer does not wait for the
                // disk (a flush, and for a month's first record the creation
                // of its key, each wait for an fsync, which a loaded disk can
                // make long, and here it would hold an async worker that the
                // calls' media share); the record matters once pages arrive,
                // seconds later.
                let (done, recorded) = std::sync::mpsc::channel();
                let g = self.clone();
                let write = move || {
                    match g.put_rx(&record) {
                        Ok(()) => tracing::debug!(call_id = %record.call_id, "incoming call recorded"),
                        Err(e) => {
                            tracing::error!(call_id = %record.call_id, error = %e, "cannot record an incoming call: a stop during it would leave no CDR")
                        }
                    }
                    let _ = done.send(());
                };
                off_sip_path(write);
                tracing::info!(call_id = %call.call_id, %trunk, to = %LogId::number(num.number.as_str()), "answering a fax call");
                self.inner.inbound.lock().unwrap_or_else(|p| p.into_inner()).insert(
                    call.call_id.clone(),
                    Inbound { number: num, file: file.clone(), start: now, cdr_id, recorded },
                );
                Some(file)
            }
            None => {
                tracing::info!(call_id = %call.call_id, %trunk, called = %LogId::number(number.as_ref().map_or(call.called.as_str(), |n| n.as_str())), "call to a number that is not active here: 404");
                self.refused_cdr(trunk, call, 404);
                None
            }
        }
    }

    /// Writes the CDR of an incoming call refused before it was answered
    /// (off the SIP path), under the tenant of the number called when it is
    /// one of ours.
    fn refused_cdr(&self, trunk: &str, call: &IncomingCall, status: u16) {
        let (g, call, now, trunk) = (self.clone(), call.clone(), self.now(), trunk.to_owned());
        off_sip_path(move || g.write_refused_cdr(&trunk, &call, status, now));
    }

    fn write_refused_cdr(&self, trunk: &str, call: &IncomingCall, status: u16, now: Timestamp) {
        let cdr_id = CdrStore::new_id();
        let number = E164::from_sip_user(&call.called);
        let (tenant, account) = number
            .as_ref()
            .and_then(|n| self.inner.directory.number_get(&Scope::Operator, n.as_str()).ok())
            .map(|n| (n.tenant, Some(n.account)))
            .unwrap_or_else(|| (unassigned_tenant(), None));
        let mut c = Cdr::blank(&cdr_id, format!("{} {}", call.call_id, cdr_id), cdr::Direction::FaxToMail, tenant, now);
        c.account = account;
        c.calling = E164::from_sip_user(&call.caller);
        c.called = number;
        c.sip_signalling = call.signalling;
        c.sip_status = Some(status);
        c.t30_text = Some(
            match status {
                404 => "refused: the number is not in service here",
                486 | 503 | 600 => "refused: every channel of the trunk is in use",
                400 => "refused: the call request could not be read",
                487 => "not answered: the caller gave up while it rang",
                _ => "refused: no fax media in common with the caller",
            }
            .into(),
        );
        crate::metrics::fax(crate::metrics::Fax {
            direction: crate::metrics::Direction::FaxToMail,
            result: "refused",
            tenant: c.tenant.as_str(),
            trunk,
            pages: 0,
            t38: None,
            fallback: false,
            seconds: 0.0,
        });
        if let Err(e) = self.inner.cdrs.write(&c) {
            tracing::error!(error = %e, "cannot write the CDR of a refused call");
        }
    }

    /// A call we answered has ended: mail what arrived, then the CDR.
    pub(super) fn received(&self, trunk: &str, r: CallReport) -> Result<(), Error> {
        if !r.incoming {
            return Ok(());
        }
        if let Some(status) = r.refused {
            tracing::info!(call_id = %r.call_id, status, "incoming call refused before answering");
            // A call routed, then given up by its caller while it rang.
            let routed = self.inner.inbound.lock().unwrap_or_else(|p| p.into_inner()).remove(&r.call_id);
            if let Some(inb) = routed {
                inb.wait_recorded();
                self.drop_rx(&inb.cdr_id)?;
            }
            let call = IncomingCall {
                call_id: r.call_id.clone(),
                caller: r.caller.clone(),
                called: r.called.clone(),
                signalling: r.signalling,
            };
            self.refused_cdr(trunk, &call, status);
            return Ok(());
        }
        let Some(inb) = self.inner.inbound.lock().unwrap_or_else(|p| p.into_inner()).remove(&r.call_id) else {
            return Ok(());
        };
        let end = self.now();
        let num = &inb.number;
        let tenant = self.inner.directory.tenant_get(&Scope::Operator, &num.tenant)?;
        let pages = r.result.as_ref().map_or(0, |x| x.pages);
        let complete = r.result.as_ref().is_some_and(|x| x.is_ok());
        let station = r.result.as_ref().and_then(|x| x.remote_ident.clone()).unwrap_or_default();
        let from = caller_text(&r.caller, tenant.branding.language);
        let mut c =
            Cdr::received(&inb.cdr_id, &r.call_id, num.tenant.clone(), num.account, &r.caller, &num.number, inb.start);
        c.emails = num.routes.iter().map(|x| x.email.clone()).collect();
        c.end = end;
        c.pages = pages;
        c.fill_from_report(&r, end);
        let data = std::fs::read(&inb.file).ok().filter(|_| pages > 0);
        if let Some(tiff) = data {
            let received = report::Received {
                from: &from,
                to: num.number.as_str(),
                pages,
                incomplete: !complete,
                station: &station,
                start: inb.start,
                duration_s: end.duration_since(inb.start).as_secs(),
                result: c.t30_text.as_deref().unwrap_or(""),
                reference: &c.id,
            };
            let stem = file_stem(&r.caller, &tenant, inb.start);
            self.mail_received(num, &tenant, &r.call_id, &tiff, &received, &stem)?;
            tracing::info!(call_id = %r.call_id, pages, complete, "received fax queued for mail");
            // For the webhooks, before the CDR: a CDR means the call is done with.
            let fields = serde_json::json!({ "cdr": c.id, "pages": pages, "complete": complete });
            let personal = serde_json::json!({ "to": num.number, "from": r.caller, "station": station });
            let event = crate::directory::webhooks::Event::FaxReceived;
            if let Err(e) = self.inner.webhooks.emit(&num.tenant, Some(&num.account), event, &c.id, fields, personal) {
                tracing::error!(error = %e, "the received fax not queued for its webhooks");
            }
        } else {
            tracing::info!(call_id = %r.call_id, "call ended without a page");
        }
        // The pages are in the outbox now (or there were none): they go
        // before the CDR is written, so that a CDR means the call is done with.
        let _ = std::fs::remove_file(&inb.file);
        crate::metrics::fax(crate::metrics::Fax {
            direction: crate::metrics::Direction::FaxToMail,
            result: if complete {
                "received"
            } else if pages > 0 {
                "incomplete"
            } else {
                "failed"
            },
            tenant: num.tenant.as_str(),
            trunk,
            pages,
            t38: r.result.is_some().then_some(r.t38),
            fallback: r.t38_initial_refused || r.t38_refused > 0,
            seconds: end.duration_since(inb.start).as_secs_f64(),
        });
        self.inner.cdrs.write(&c)?;
        inb.wait_recorded();
        self.drop_rx(&inb.cdr_id)
    }

    /// Queues the mails of a received fax, one per attachment format its
    /// routes ask for; each once per call, so that mailing again after a
    /// stop sends nothing twice.
    fn mail_received(
        &self,
        num: &crate::directory::FaxNumber,
        tenant: &crate::directory::Tenant,
        call_id: &str,
        tiff: &[u8],
        received: &report::Received<'_>,
        base: &str,
    ) -> Result<(), Error> {
        let info = crate::document::topdf::FaxInfo {
            title: format!("Fax from {}", received.from),
            from: format!("{} {}", received.from, received.station).trim().to_owned(),
            to: num.number.to_string(),
            received: Some(received.start),
        };
        let pdf = crate::document::topdf::tiff_to_pdf(tiff, &info, 1000).map(|(p, _)| p);
        let text = report::received(tenant, received);
        for format in [AttachmentFormat::Pdf, AttachmentFormat::Tiff, AttachmentFormat::Both] {
            let to: Vec<String> =
                num.routes.iter().filter(|x| x.format == format).map(|x| x.email.to_string()).collect();
            if to.is_empty() {
                continue;
            }
            let mut attachments = Vec::new();
            if matches!(format, AttachmentFormat::Pdf | AttachmentFormat::Both) {
                match &pdf {
                    Ok(p) => attachments.push(OutAttachment {
                        filename: format!("{base}.pdf"),
                        content_type: "application/pdf".into(),
                        data: p.clone(),
                    }),
                    Err(e) => tracing::error!(error = %e, "cannot make a PDF of a received fax; sending the TIFF"),
                }
            }
            if matches!(format, AttachmentFormat::Tiff | AttachmentFormat::Both) || pdf.is_err() {
                attachments.push(OutAttachment {
                    filename: format!("{base}.tiff"),
                    content_type: "image/tiff".into(),
                    data: tiff.to_vec(),
                });
            }
            self.inner.outbox.enqueue_once_for(
                &format!("received {call_id} {format:?}"),
                tenant,
                &to,
                &text.subject,
                &text.body,
                attachments,
                Some(crate::mail::outbox::ReceivedFax {
                    account: num.account,
                    number: num.number.clone(),
                    cdr: received.reference.to_owned(),
                    pages: received.pages,
                }),
            )?;
        }
        Ok(())
    }

    /// Stores `r` (see [`RxRecord`]), flushed.
    fn put_rx(&self, r: &RxRecord) -> Result<(), Error> {
        let (y, m) = cdr::month_of(r.start);
        let mut b = self.inner.tree.batch();
        b.put_sealed(&layout::rx(&r.cdr_id), &month_key(y, m)?, r)?;
        self.inner.tree.apply(b)
    }

    fn drop_rx(&self, cdr_id: &str) -> Result<(), Error> {
        let mut b = self.inner.tree.batch();
        b.remove(&layout::rx(cdr_id));
        self.inner.tree.apply(b)
    }

    /// Finishes the calls that were being received when the daemon
    /// stopped: each gets its CDR ("interrupted"), and the pages that had
    /// arrived whole are mailed, marked incomplete, to the number's routes
    /// as they are now (none if the number is no longer active here).
    pub(super) fn recover_inbound(&self) -> Result<(), Error> {
        for key in self.inner.tree.keys_with_prefix(layout::RX)? {
            let record: Option<RxRecord> = self.inner.tree.get_sealed(&key).unwrap_or_else(|e| {
                // Its month's key is gone: the CDR it would have become is
                // past its own deadline.
                tracing::warn!(error = %e, "an unreadable record of a call being received; dropped");
                None
            });
            if let Some(r) = record {
                let written = self.inner.cdrs.get(&cdr::place_for(r.start, &r.cdr_id))?.is_some();
                let file = self.inner.work_dir.join(&r.file);
                if !written {
                    self.finish_cut_off_rx(&r, &file)?;
                }
                let _ = std::fs::remove_file(&file);
            }
            let mut b = self.inner.tree.batch();
            b.remove(&key);
            self.inner.tree.apply(b)?;
        }
        Ok(())
    }

    fn finish_cut_off_rx(&self, r: &RxRecord, file: &Path) -> Result<(), Error> {
        let now = self.now();
        // The pages spandsp had finished are whole in the file (a page is
        // written out when it ends); a page under way when the daemon
        // stopped is not in it.
        let tiff = std::fs::read(file).ok();
        let pages =
            tiff.as_deref().and_then(|t| crate::document::tiff::parse(t, 1000).ok()).map_or(0, |p| p.len() as u32);
        let num = self.routed_number(&r.called, now);
        let mut c = Cdr::received(&r.cdr_id, &r.call_id, r.tenant.clone(), r.account, &r.caller, &r.called, r.start);
        c.sip_signalling = r.signalling;
        c.end = now.max(r.start);
        c.pages = pages;
        c.t30_text = Some("interrupted: the gateway stopped during the call".into());
        tracing::warn!(call_id = %r.call_id, pages, "incoming call cut off by a stop");
        if let (Some(num), Some(tiff)) = (&num, tiff.filter(|_| pages > 0)) {
            c.emails = num.routes.iter().map(|x| x.email.clone()).collect();
            let tenant = self.inner.directory.tenant_get(&Scope::Operator, &num.tenant)?;
            let from = caller_text(&r.caller, tenant.branding.language);
            let received = report::Received {
                from: &from,
                to: num.number.as_str(),
                pages,
                incomplete: true,
                station: "",
                start: r.start,
                duration_s: c.end.duration_since(r.start).as_secs(),
                result: c.t30_text.as_deref().unwrap_or(""),
                reference: &c.id,
            };
            let stem = file_stem(&r.caller, &tenant, r.start);
            self.mail_received(num, &tenant, &r.call_id, &tiff, &received, &stem)?;
            tracing::info!(call_id = %r.call_id, pages, "pages of a cut-off call queued for mail");
        }
        self.inner.cdrs.write(&c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_without_a_number_are_an_unknown_caller_with_a_file_name_to_match() {
        let mut tenant = crate::directory::Tenant {
            id: "acme".parse().unwrap(),
            name: "Acme".into(),
            branding: crate::directory::Branding {
                display_name: "Acme Fax".into(),
                from_address: "fax@acme.test".parse().unwrap(),
                language: Language::En,
            },
            default_country: "DK".parse().unwrap(),
            fax_domains: vec![],
            paper: crate::directory::Paper::A4,
            time_zone: None,
            header_template: None,
            station_id: None,
        };
        let start: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        assert_eq!(caller_text("4570203040", Language::En), "+4570203040");
        assert_eq!(file_stem("+4570203040", &tenant, start), "fax-4570203040-20260302-090000");
        for caller in ["", "anonymous", "Anonymous", "sip711", "711", "restricted"] {
            assert_eq!(caller_text(caller, Language::En), "unknown caller", "{caller:?}");
            assert_eq!(caller_text(caller, Language::Da), "ukendt nummer", "{caller:?}");
            assert_eq!(file_stem(caller, &tenant, start), "fax-unknown-20260302-090000", "{caller:?}");
        }
        // The time in the name is the tenant's.
        tenant.time_zone = Some("Europe/Copenhagen".into());
        assert_eq!(file_stem("", &tenant, start), "fax-unknown-20260302-100000");
    }
}
