//! Data subjects' rights (GDPR Articles 15 to 20) and lawful disclosure.
//!
//! A subject is a fax number or a mail address.
//! - export (Art. 15, 20): everything held about the subject, directory
//!   entries and CDRs, as JSON (with a JSON Schema, `schema.json` beside this
//!   file) and CSV;
//! - rectify (Art. 16): a wrong mail address replaced in routes and senders;
//! - erase (Art. 17): directory data erased now; CDRs under the legal
//!   retention duty stay until their own deadline, and the answer lists them
//!   with their dates; the erasure is recorded in the audit trail;
//! - restrict (Art. 18): the data is kept but left out of listings, billing
//!   exports and subject exports to third parties; only legal exports
//!   (disclosure) include it;
//! - disclosure: the retained traffic data of one number for a period, on a
//!   lawful request; every disclosure is recorded in the audit trail with its
//!   case reference and authority.

pub mod schemas;

use faxgate_retention::KeyId;
use faxgate_retention::audit::{AuditEntry, RequestRecord};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::cdr::{Cdr, CdrFilter, CdrStore};
use crate::directory::{Account, Directory, FaxNumber, Scope, Sender, SenderPattern};
use crate::retention::policy::{Policy, after};
use crate::store::layout::restrictions as layout;
use crate::store::{Store, Tree, TreeName};
use crate::types::{E164, EmailAddress};

/// The JSON Schema of a subject export.
pub const SCHEMA: &str = include_str!("schema.json");

/// Whom a request is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    /// A fax number.
    Number(E164),
    /// A mail address.
    Email(EmailAddress),
}

impl Subject {
    fn text(&self) -> String {
        match self {
            Subject::Number(n) => format!("number:{n}"),
            Subject::Email(e) => format!("email:{}", e.as_str().to_lowercase()),
        }
    }

    /// Whether a CDR concerns the subject.
    pub fn in_cdr(&self, c: &Cdr) -> bool {
        match self {
            Subject::Number(n) => c.calling.as_ref() == Some(n) || c.called.as_ref() == Some(n),
            Subject::Email(e) => c.emails.iter().any(|x| x.as_str().eq_ignore_ascii_case(e.as_str())),
        }
    }
}

/// Everything held about a subject.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubjectExport {
    /// Whom it is about.
    pub subject: Subject,
    /// When it was made.
    pub generated_at: Timestamp,
    /// Whether processing of the subject's data is restricted.
    pub restricted: bool,
    /// Accounts the subject's numbers or sender entries belong to.
    pub accounts: Vec<Account>,
    /// Fax numbers that are the subject, or route faxes to it.
    pub numbers: Vec<FaxNumber>,
    /// Sender entries that are the subject.
    pub senders: Vec<Sender>,
    /// CDRs that name the subject.
    pub cdrs: Vec<Cdr>,
    /// When each CDR will be erased.
    pub cdr_erase_on: Vec<Timestamp>,
    /// What calls to the subject (a number) needed, per tenant ([`crate::learned`]).
    #[serde(default)]
    pub learned: Vec<crate::learned::Learned>,
    /// Webhooks whose disabling notices are mailed to the subject (an address).
    #[serde(default)]
    pub webhooks: Vec<WebhookNotify>,
}

/// A webhook that mails its notices to the subject: which, and where.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WebhookNotify {
    /// The webhook.
    pub id: String,
    /// Its tenant.
    pub tenant: crate::types::TenantId,
    /// Its account, for an account's webhook.
    pub account: Option<crate::types::AccountId>,
    /// The address its notices go to: the subject.
    pub notify: EmailAddress,
}

/// A CDR kept after an erasure request, and until when.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeptCdr {
    /// The CDR.
    pub id: String,
    /// When the communication started.
    pub start: Timestamp,
    /// When it will be erased.
    pub erase_on: Timestamp,
}

/// What an erasure did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErasureReport {
    /// Directory data erased now.
    pub erased: Vec<String>,
    /// CDRs kept under the legal retention duty, with their dates.
    pub cdrs_kept: Vec<KeptCdr>,
    /// Why they are kept.
    pub note: String,
}

/// Traffic data disclosed on a lawful request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Disclosure {
    /// The case reference.
    pub case: String,
    /// The authority that asked.
    pub authority: String,
    /// The number.
    pub number: E164,
    /// From.
    pub since: Timestamp,
    /// Until.
    pub until: Timestamp,
    /// When it was made.
    pub generated_at: Timestamp,
    /// The CDRs.
    pub cdrs: Vec<Cdr>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Restriction {
    subject: Subject,
    since: Timestamp,
}

/// The data-subject and disclosure requests.
#[derive(Clone, Debug)]
pub struct Privacy {
    store: Store,
    directory: Directory,
    cdrs: CdrStore,
    restrictions: Tree,
    policy: Policy,
    audit: faxgate_retention::audit::AuditLog,
}

impl Privacy {
    /// Over `store`.
    pub fn new(
        store: &Store,
        directory: &Directory,
        policy: Policy,
        audit: faxgate_retention::audit::AuditLog,
    ) -> Result<Self, Error> {
        Ok(Privacy {
            store: store.clone(),
            directory: directory.clone(),
            cdrs: CdrStore::open(store)?,
            restrictions: store.tree(TreeName::Restrictions)?,
            policy,
            audit,
        })
    }

    fn restriction_key(&self, s: &Subject) -> Vec<u8> {
        layout::subject(&self.store, &s.text())
    }

    /// The subjects whose processing is restricted.
    pub fn restricted(&self) -> Result<Vec<Subject>, Error> {
        let mut out = Vec::new();
        for k in self.restrictions.keys_with_prefix(layout::ALL)? {
            if let Some(r) = self.restrictions.get_sealed::<Restriction>(&k)? {
                out.push(r.subject);
            }
        }
        Ok(out)
    }

    /// Restricts (or, with `lift`, lifts the restriction of) a subject's data.
    pub fn restrict(&self, s: &Subject, lift: bool) -> Result<bool, Error> {
        let k = self.restriction_key(s);
        let mut b = self.restrictions.batch();
        if lift {
            if !self.restrictions.contains(&k)? {
                return Err(Error::NotFound("no restriction for that subject".into()));
            }
            b.remove(&k);
        } else {
            let key = KeyId::new("restrictions")?;
            b.put_sealed(&k, &key, &Restriction { subject: s.clone(), since: self.directory.now() })?;
        }
        self.restrictions.apply(b)?;
        Ok(!lift)
    }

    fn directory_of(&self, s: &Subject) -> Result<(Vec<FaxNumber>, Vec<Sender>), Error> {
        let op = Scope::Operator;
        let numbers = self
            .directory
            .number_list(&op, None, None)?
            .into_iter()
            .filter(|n| match s {
                Subject::Number(x) => &n.number == x,
                Subject::Email(e) => n.routes.iter().any(|r| r.email.as_str().eq_ignore_ascii_case(e.as_str())),
            })
            .collect();
        let senders = match s {
            Subject::Email(e) => {
                self.directory.sender_get(&op, &SenderPattern::Address(e.clone())).ok().into_iter().collect()
            }
            Subject::Number(n) => self
                .directory
                .sender_list(&op, None, None)?
                .into_iter()
                .filter(|x| x.caller_number.as_ref() == Some(n))
                .collect(),
        };
        Ok((numbers, senders))
    }

    /// The webhooks whose notices go to the subject (an address).
    fn webhooks_of(&self, s: &Subject) -> Result<Vec<crate::directory::webhooks::Webhook>, Error> {
        let Subject::Email(e) = s else { return Ok(Vec::new()) };
        Ok(self
            .directory
            .webhook_list(None, None)?
            .into_iter()
            .filter(|w| w.notify.as_ref().is_some_and(|n| n.as_str().eq_ignore_ascii_case(e.as_str())))
            .collect())
    }

    fn cdrs_of(&self, s: &Subject) -> Result<Vec<Cdr>, Error> {
        let filter = match s {
            Subject::Number(n) => CdrFilter { number: Some(n.clone()), ..Default::default() },
            Subject::Email(_) => CdrFilter::default(),
        };
        Ok(self.cdrs.list(&filter)?.into_iter().filter(|c| s.in_cdr(c)).collect())
    }

    /// Everything held about `s` (Art. 15 and 20).
    pub fn export(&self, s: &Subject) -> Result<SubjectExport, Error> {
        let (numbers, senders) = self.directory_of(s)?;
        let mut account_ids: Vec<_> =
            numbers.iter().map(|n| n.account).chain(senders.iter().map(|x| x.account)).collect();
        account_ids.sort();
        account_ids.dedup();
        let accounts = account_ids
            .iter()
            .map(|a| self.directory.account_get(&Scope::Operator, a))
            .collect::<Result<Vec<_>, _>>()?;
        let cdrs = self.cdrs_of(s)?;
        let cdr_erase_on = cdrs.iter().map(|c| after(c.start, self.policy.cdr)).collect();
        let mut learned = Vec::new();
        if let Subject::Number(n) = s {
            let learning = crate::learned::Learning::open(&self.store)?;
            for t in self.directory.tenant_list(&Scope::Operator)? {
                learned.extend(learning.find(&t.id, n, self.directory.now())?);
            }
        }
        Ok(SubjectExport {
            subject: s.clone(),
            generated_at: self.directory.now(),
            restricted: self.restrictions.contains(&self.restriction_key(s))?,
            accounts,
            numbers,
            senders,
            cdrs,
            cdr_erase_on,
            learned,
            webhooks: self
                .webhooks_of(s)?
                .into_iter()
                .filter_map(|w| {
                    Some(WebhookNotify { notify: w.notify?, id: w.id, tenant: w.tenant, account: w.account })
                })
                .collect(),
        })
    }

    /// Replaces a wrong mail address in routes and sender entries (Art. 16).
    pub fn rectify_email(&self, old: &EmailAddress, new: &EmailAddress) -> Result<Vec<String>, Error> {
        let op = Scope::Operator;
        let mut changed = Vec::new();
        let (numbers, senders) = self.directory_of(&Subject::Email(old.clone()))?;
        // Every change made together, in one batch, or none.
        let directory = self.directory.staged();
        for n in numbers {
            let routes = n
                .routes
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    if r.email.as_str().eq_ignore_ascii_case(old.as_str()) {
                        r.email = new.clone();
                    }
                    r
                })
                .collect();
            directory.routes_replace(&op, n.number.as_str(), routes)?;
            changed.push(format!("route of {} now goes to {new}", n.number));
        }
        for s in senders {
            directory.sender_rename(&op, &s.pattern, SenderPattern::Address(new.clone()))?;
            changed.push(format!("sender {old} is now {new}"));
        }
        for mut w in self.webhooks_of(&Subject::Email(old.clone()))? {
            w.notify = Some(new.clone());
            directory.webhook_save(&w)?;
            changed.push(format!("notices of webhook {} now go to {new}", w.id));
        }
        if changed.is_empty() {
            return Err(Error::NotFound(format!("nothing in the directory names {old}")));
        }
        directory.commit()?;
        Ok(changed)
    }

    /// Erases the subject's directory data now (Art. 17); CDRs stay until their deadline.
    pub fn erase(&self, s: &Subject) -> Result<ErasureReport, Error> {
        let op = Scope::Operator;
        let (numbers, senders) = self.directory_of(s)?;
        let mut erased = Vec::new();
        // Every change made together, in one batch, or none.
        let directory = self.directory.staged();
        for n in numbers {
            match s {
                Subject::Number(_) => {
                    directory.number_remove(&op, n.number.as_str())?;
                    erased.push(format!("fax number {} with its {} route(s)", n.number, n.routes.len()));
                }
                Subject::Email(e) => {
                    let routes = n
                        .routes
                        .iter()
                        .filter(|r| !r.email.as_str().eq_ignore_ascii_case(e.as_str()))
                        .cloned()
                        .collect();
                    directory.routes_replace(&op, n.number.as_str(), routes)?;
                    erased.push(format!("route of {} to {e}", n.number));
                }
            }
        }
        for mut w in self.webhooks_of(s)? {
            let was = w.notify.take().map(|n| n.to_string()).unwrap_or_default();
            directory.webhook_save(&w)?;
            erased.push(format!(
                "notice address {was} of webhook {} (its notices go to the tenant's From address)",
                w.id
            ));
        }
        for x in senders {
            match s {
                Subject::Email(_) => {
                    directory.sender_remove(&op, &x.pattern)?;
                    erased.push(format!("sender entry {}", x.pattern));
                }
                Subject::Number(n) => {
                    let ch = crate::directory::SenderChange {
                        caller_number: crate::directory::Patch::Clear,
                        auth: None,
                        envelope_from: None,
                        password: None,
                    };
                    directory.sender_change(&op, &x.pattern, ch)?;
                    erased.push(format!("caller number {n} of sender {}", x.pattern));
                }
            }
        }
        directory.commit()?;
        // What calls to the number needed, in every tenant.
        if let Subject::Number(n) = s {
            let learning = crate::learned::Learning::open(&self.store)?;
            for t in self.directory.tenant_list(&op)? {
                if learning.forget(&t.id, n)? {
                    erased.push(format!("learned fallbacks of calls to {n} in tenant {}", t.id));
                }
            }
        }
        let cdrs_kept: Vec<KeptCdr> = self
            .cdrs_of(s)?
            .into_iter()
            .map(|c| KeptCdr { erase_on: after(c.start, self.policy.cdr), id: c.id, start: c.start })
            .collect();
        self.audit.append(&AuditEntry {
            at: self.directory.now(),
            categories: Vec::new(),
            request: Some(RequestRecord {
                kind: "gdpr-erase".into(),
                case: None,
                authority: None,
                subject: self.subject_ref(s),
                since: None,
                until: None,
                records: erased.len(),
            }),
            begun: false,
        })?;
        Ok(ErasureReport {
            erased,
            note: format!(
                "{} CDR(s) are kept under the legal duty to retain traffic data ({:#} from the communication) and will be erased on the dates given",
                cdrs_kept.len(),
                self.policy.cdr
            ),
            cdrs_kept,
        })
    }

    fn subject_ref(&self, s: &Subject) -> String {
        let h = self.store.blind("audit-subject", &s.text());
        h[..12].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Discloses the traffic data of `number` for a period, and records it.
    pub fn disclose(
        &self,
        number: &E164,
        since: Timestamp,
        until: Timestamp,
        case: &str,
        authority: &str,
    ) -> Result<Disclosure, Error> {
        if case.trim().is_empty() || authority.trim().is_empty() {
            return Err(Error::Invalid("a disclosure needs a case reference and the authority that asked".into()));
        }
        if since >= until {
            return Err(Error::Invalid("--since must be before --until".into()));
        }
        let cdrs = self.cdrs.list(&CdrFilter {
            number: Some(number.clone()),
            since: Some(since),
            until: Some(until),
            tenant: None,
            account: None,
        })?;
        let now = self.directory.now();
        self.audit.append(&AuditEntry {
            at: now,
            categories: Vec::new(),
            request: Some(RequestRecord {
                kind: "disclosure".into(),
                case: Some(case.trim().to_owned()),
                authority: Some(authority.trim().to_owned()),
                subject: self.subject_ref(&Subject::Number(number.clone())),
                since: Some(since),
                until: Some(until),
                records: cdrs.len(),
            }),
            begun: false,
        })?;
        Ok(Disclosure {
            case: case.trim().to_owned(),
            authority: authority.trim().to_owned(),
            number: number.clone(),
            since,
            until,
            generated_at: now,
            cdrs,
        })
    }
}

/// The directory part of an export as CSV: one row per account, number, route, sender and
/// webhook whose notices go to the subject.
pub fn directory_csv(e: &SubjectExport) -> Result<String, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| Error::Invalid(format!("CSV: {e}"));
    w.write_record(schemas::DIRECTORY_COLUMNS).map_err(err)?;
    for a in &e.accounts {
        let detail = match a.terminated_at {
            Some(t) => format!("terminated {t}"),
            None => format!("created {}", a.created),
        };
        w.write_record(["account", a.tenant.as_str(), &a.id.to_text(), &a.name, "", &detail]).map_err(err)?;
    }
    for n in &e.numbers {
        w.write_record(["number", n.tenant.as_str(), &n.account.to_text(), n.number.as_str(), "", ""]).map_err(err)?;
        for r in &n.routes {
            let f = format!("{:?}", r.format).to_lowercase();
            w.write_record(["route", n.tenant.as_str(), &n.account.to_text(), n.number.as_str(), r.email.as_str(), &f])
                .map_err(err)?;
        }
    }
    for s in &e.senders {
        let caller = s.caller_number.as_ref().map(|c| c.to_string()).unwrap_or_default();
        w.write_record([
            "sender",
            s.tenant.as_str(),
            &s.account.to_text(),
            &caller,
            &s.pattern.to_string(),
            &format!("{:?}", s.auth),
        ])
        .map_err(err)?;
    }
    for h in &e.webhooks {
        let account = h.account.map(|a| a.to_text()).unwrap_or_default();
        w.write_record([
            "webhook",
            h.tenant.as_str(),
            &account,
            "",
            h.notify.as_str(),
            &format!("notices of webhook {}", h.id),
        ])
        .map_err(err)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::Invalid(format!("CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Error::Invalid(format!("CSV: {e}")))
}

#[cfg(test)]
mod tests;
