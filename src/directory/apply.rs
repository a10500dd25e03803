//! `faxgate directory apply FILE`: the directory kept in a file.
//!
//! The file says what the directory should hold for the tenants it names.
//! Applying it plans every change, checks the plan (numbers, addresses,
//! numbers or senders owned elsewhere, duplicates in the file), then makes
//! every change on a staged directory, with every check the change makes
//! alone (names, lengths, characters): each problem is reported with its
//! place in the file, and if there is any, nothing is changed. Otherwise
//! the changes are written in one atomic batch. A dry run does exactly the
//! same and writes nothing.
//! Applying the same file again plans nothing, so it is safe to run from
//! configuration management. Accounts are matched by the reseller's
//! `reference`. With `prune`, numbers and senders of the named accounts that
//! the file does not list are removed, and accounts of the named tenants
//! that it does not list are terminated (their data then follows the
//! retention schedule).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{
    AccountChange, AttachmentFormat, Branding, Directory, EnvelopeFrom, Language, Paper, Route, Scope, SenderAuth,
    SenderChange, SenderPattern, Tenant, TenantChange,
};
use crate::Error;
use crate::types::{Country, Domain, E164, EmailAddress, TenantId};

/// The file, in TOML.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryFile {
    /// The tenants.
    #[serde(default)]
    pub tenant: Vec<TenantEntry>,
}

/// A tenant in the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantEntry {
    /// Slug.
    pub id: TenantId,
    /// Name.
    pub name: String,
    /// Display name of its mails.
    pub display_name: String,
    /// From: address of its mails.
    pub from_address: EmailAddress,
    /// Language of its mails.
    #[serde(default)]
    pub language: Language,
    /// Default country of its customers' numbers.
    pub default_country: Country,
    /// Its fax domains.
    #[serde(default)]
    pub fax_domains: Vec<Domain>,
    /// Paper size.
    #[serde(default)]
    pub paper: Paper,
    /// Time zone (IANA name) of its page headers and mails; unset: UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Page header template; unset: `[fax] header`; empty: no header.
    #[serde(default)]
    pub header_template: Option<String>,
    /// Station id of its faxes; unset: `[fax] ident`.
    #[serde(default)]
    pub station_id: Option<String>,
    /// Its accounts.
    #[serde(default)]
    pub account: Vec<AccountEntry>,
}

/// An account in the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    /// The reseller's reference, which identifies the account in the file.
    pub reference: String,
    /// Name.
    pub name: String,
    /// Paper override.
    #[serde(default)]
    pub paper: Option<Paper>,
    /// It may send faxes abroad.
    #[serde(default)]
    pub allow_international: bool,
    /// It may send faxes to premium-rate numbers.
    #[serde(default)]
    pub allow_premium: bool,
    /// A cover page on its faxes (true) or none (false); unset: `[fax] cover_page`.
    #[serde(default)]
    pub cover_page: Option<bool>,
    /// Station id of its faxes; unset: the tenant's.
    #[serde(default)]
    pub station_id: Option<String>,
    /// Its fax numbers.
    #[serde(default)]
    pub number: Vec<NumberEntry>,
    /// Its senders.
    #[serde(default)]
    pub sender: Vec<SenderEntry>,
}

/// A fax number in the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberEntry {
    /// The number, national numbers read with the tenant's default country.
    pub number: String,
    /// Where its faxes go.
    #[serde(default)]
    pub route: Vec<RouteEntry>,
}

/// A route in the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// Mailbox.
    pub email: EmailAddress,
    /// Attachment format.
    #[serde(default)]
    pub format: AttachmentFormat,
}

/// A sender in the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderEntry {
    /// `user@domain` or `@domain`.
    pub sender: SenderPattern,
    /// Caller number its faxes go out with.
    #[serde(default)]
    pub caller_number: Option<String>,
    /// How it authenticates.
    pub auth: SenderAuth,
    /// Which envelope senders it may use once logged in: "own" (default)
    /// or "account".
    #[serde(default)]
    pub envelope_from: EnvelopeFrom,
}

/// What applying did (or, in a dry run, would do).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Whether nothing was changed on purpose.
    pub dry_run: bool,
    /// Whether the changes were made (all of them, in one batch; none when
    /// there is a problem or in a dry run).
    pub applied: bool,
    /// One line per change.
    pub changes: Vec<String>,
    /// Everything wrong with the file, each with where it is.
    pub problems: Vec<ApplyProblem>,
}

/// One thing wrong with a directory file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyProblem {
    /// Where, as a key path (`tenant.0.account.1.number.2`).
    pub path: String,
    /// The line in the file, when its text was given.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// A place in the file: key names and indexes.
type Path = Vec<String>;

fn at(path: &[&dyn std::fmt::Display]) -> Path {
    path.iter().map(|p| p.to_string()).collect()
}

#[derive(Debug)]
struct AccountRef {
    tenant: TenantId,
    reference: String,
}

#[derive(Debug)]
enum Action {
    TenantAdd(Tenant),
    TenantChange(TenantId, TenantChange, String),
    AccountAdd(AccountRef, String, Option<Paper>),
    AccountChange(AccountRef, AccountChange, String),
    AccountTerminate(crate::types::AccountId, String),
    NumberAdd(AccountRef, E164, Vec<Route>),
    RoutesReplace(E164, Vec<Route>),
    NumberRemove(E164),
    SenderAdd(AccountRef, SenderPattern, Option<E164>, SenderAuth, EnvelopeFrom),
    SenderChange(SenderPattern, SenderChange, String),
    SenderRemove(SenderPattern),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::TenantAdd(t) => write!(f, "add tenant {}", t.id),
            Action::TenantChange(id, _, what) => write!(f, "change tenant {id}: {what}"),
            Action::AccountAdd(r, name, _) => {
                write!(f, "add account {:?} ({}) to tenant {}", r.reference, name, r.tenant)
            }
            Action::AccountChange(r, _, what) => {
                write!(f, "change account {:?} of tenant {}: {what}", r.reference, r.tenant)
            }
            Action::AccountTerminate(id, why) => write!(f, "terminate account {id} ({why})"),
            Action::NumberAdd(r, n, routes) => {
                write!(f, "add number {n} to account {:?} with {} route(s)", r.reference, routes.len())
            }
            Action::RoutesReplace(n, routes) => write!(f, "set routes of {n}: {}", fmt_routes(routes)),
            Action::NumberRemove(n) => write!(f, "remove number {n}"),
            Action::SenderAdd(r, p, _, auth, _) => {
                write!(f, "allow sender {p} for account {:?} ({auth:?})", r.reference)
            }
            Action::SenderChange(p, _, what) => write!(f, "change sender {p}: {what}"),
            Action::SenderRemove(p) => write!(f, "remove sender {p}"),
        }
    }
}

fn fmt_routes(routes: &[Route]) -> String {
    if routes.is_empty() {
        return "none".into();
    }
    routes.iter().map(|r| format!("{} ({:?})", r.email, r.format).to_lowercase()).collect::<Vec<_>>().join(", ")
}

fn routes_of(entry: &NumberEntry) -> Vec<Route> {
    entry.route.iter().map(|r| Route { email: r.email.clone(), format: r.format }).collect()
}

impl Directory {
    /// Applies a directory file (see the module documentation): every
    /// change is made on a staged directory first, with every check it
    /// makes alone; with no problem (and not a dry run) they are written in
    /// one batch. `source`, the file's text, gives each problem its line.
    pub fn apply(
        &self,
        scope: &Scope,
        file: &DirectoryFile,
        prune: bool,
        dry_run: bool,
        source: Option<&str>,
    ) -> Result<ApplyReport, Error> {
        let _g = self.lock();
        let (plan, mut problems) = self.plan(scope, file, prune)?;
        let staged = self.staged();
        let mut changes = Vec::new();
        for (path, action) in plan {
            changes.push(action.to_string());
            if let Err(e) = staged.execute(scope, action) {
                problems.push((path, e.to_string()));
            }
        }
        let applied = problems.is_empty() && !dry_run;
        if applied {
            staged.commit()?;
        }
        let problems = problems
            .into_iter()
            .map(|(path, message)| ApplyProblem {
                line: source.and_then(|text| crate::config::toml_line(text, &path)),
                path: path.join("."),
                message,
            })
            .collect();
        Ok(ApplyReport { dry_run, applied, changes, problems })
    }

    #[allow(clippy::type_complexity)]
    fn plan(
        &self,
        scope: &Scope,
        file: &DirectoryFile,
        prune: bool,
    ) -> Result<(Vec<(Path, Action)>, Vec<(Path, String)>), Error> {
        let mut plan: Vec<(Path, Action)> = Vec::new();
        let mut problems: Vec<(Path, String)> = Vec::new();
        let mut seen_tenants = HashSet::new();
        let mut seen_numbers = HashSet::new();
        let mut seen_senders = HashSet::new();
        for (ti, t) in file.tenant.iter().enumerate() {
            let tp = at(&[&"tenant", &ti]);
            if !seen_tenants.insert(t.id.clone()) {
                problems.push((tp, format!("tenant {} is listed twice", t.id)));
                continue;
            }
            let want = Tenant {
                id: t.id.clone(),
                name: t.name.clone(),
                branding: Branding {
                    display_name: t.display_name.clone(),
                    from_address: t.from_address.clone(),
                    language: t.language,
                },
                default_country: t.default_country,
                fax_domains: {
                    let mut d = t.fax_domains.clone();
                    d.sort();
                    d.dedup();
                    d
                },
                paper: t.paper,
                time_zone: t.time_zone.clone(),
                header_template: t.header_template.clone(),
                station_id: t.station_id.clone(),
            };
            let existing = match self.tenant_get(scope, &t.id) {
                Ok(e) => Some(e),
                Err(Error::NotFound(_)) if *scope == Scope::Operator => None,
                Err(Error::NotFound(_)) => {
                    problems.push((tp, format!("tenant {}: not yours to change", t.id)));
                    continue;
                }
                Err(e) => return Err(e),
            };
            for d in &want.fax_domains {
                if let Some(owner) = self.tenant_for_domain(d)?
                    && owner.id != t.id
                {
                    problems.push((tp.clone(), format!("tenant {}: fax domain {d} cannot be added", t.id)));
                }
            }
            // A tenant admin's file names what it claims: a domain or
            // address already claimed is not asked for again.
            let claims = match (&existing, scope) {
                (Some(_), Scope::Tenant(_)) => self.claim_list(scope, &t.id)?,
                _ => Vec::new(),
            };
            let claimed = |what: &super::Claimed| claims.iter().any(|c| c.claimed == *what);
            match &existing {
                None => plan.push((tp.clone(), Action::TenantAdd(want.clone()))),
                Some(e) => {
                    let ch = TenantChange {
                        name: (e.name != want.name).then(|| want.name.clone()),
                        display_name: (e.branding.display_name != want.branding.display_name)
                            .then(|| want.branding.display_name.clone()),
                        from_address: (e.branding.from_address != want.branding.from_address
                            && !claimed(&super::Claimed::FromAddress(want.branding.from_address.clone())))
                        .then(|| want.branding.from_address.clone()),
                        language: (e.branding.language != want.branding.language).then_some(want.branding.language),
                        default_country: (e.default_country != want.default_country).then_some(want.default_country),
                        paper: (e.paper != want.paper).then_some(want.paper),
                        time_zone: super::Patch::between(&e.time_zone, want.time_zone.clone()),
                        header_template: super::Patch::between(&e.header_template, want.header_template.clone()),
                        station_id: super::Patch::between(&e.station_id, want.station_id.clone()),
                        add_domains: want
                            .fax_domains
                            .iter()
                            .filter(|d| {
                                !e.fax_domains.contains(d) && !claimed(&super::Claimed::FaxDomain((*d).clone()))
                            })
                            .cloned()
                            .collect(),
                        remove_domains: e
                            .fax_domains
                            .iter()
                            .filter(|d| !want.fax_domains.contains(d))
                            .cloned()
                            .collect(),
                    };
                    let what = describe_tenant_change(&ch);
                    if !what.is_empty() {
                        plan.push((tp.clone(), Action::TenantChange(t.id.clone(), ch, what)));
                    }
                }
            }

            let mut seen_refs = HashSet::new();
            for (ai, a) in t.account.iter().enumerate() {
                let ap = at(&[&"tenant", &ti, &"account", &ai]);
                let r = || AccountRef { tenant: t.id.clone(), reference: a.reference.clone() };
                if !seen_refs.insert(a.reference.clone()) {
                    problems
                        .push((ap, format!("tenant {}: account reference {:?} is listed twice", t.id, a.reference)));
                    continue;
                }
                let existing =
                    if existing.is_some() { self.account_by_reference(scope, &t.id, &a.reference)? } else { None };
                match &existing {
                    None => {
                        plan.push((ap.clone(), Action::AccountAdd(r(), a.name.clone(), a.paper)));
                        if a.allow_international || a.allow_premium || a.cover_page.is_some() || a.station_id.is_some()
                        {
                            let ch = AccountChange {
                                allow_international: Some(a.allow_international),
                                allow_premium: Some(a.allow_premium),
                                cover_page: super::Patch::set_if(a.cover_page),
                                station_id: super::Patch::set_if(a.station_id.clone()),
                                ..Default::default()
                            };
                            let mut what = vec!["destinations"];
                            what.extend(a.cover_page.map(|_| "cover page"));
                            what.extend(a.station_id.as_ref().map(|_| "station id"));
                            plan.push((ap.clone(), Action::AccountChange(r(), ch, what.join(", "))));
                        }
                    }
                    Some(e)
                        if e.name != a.name
                            || e.paper != a.paper
                            || e.allow_international != a.allow_international
                            || e.allow_premium != a.allow_premium
                            || e.cover_page != a.cover_page
                            || e.station_id != a.station_id =>
                    {
                        let ch = AccountChange {
                            name: (e.name != a.name).then(|| a.name.clone()),
                            reference: super::Patch::Keep,
                            paper: if e.paper == a.paper {
                                super::Patch::Keep
                            } else {
                                a.paper.map_or(super::Patch::Clear, super::Patch::Set)
                            },
                            allow_international: (e.allow_international != a.allow_international)
                                .then_some(a.allow_international),
                            allow_premium: (e.allow_premium != a.allow_premium).then_some(a.allow_premium),
                            cover_page: if e.cover_page == a.cover_page {
                                super::Patch::Keep
                            } else {
                                a.cover_page.map_or(super::Patch::Clear, super::Patch::Set)
                            },
                            station_id: super::Patch::between(&e.station_id, a.station_id.clone()),
                        };
                        let what = match &ch.name {
                            Some(n) => format!("name {n:?}"),
                            None if e.paper != a.paper => "paper".into(),
                            None if e.cover_page != a.cover_page => "cover page".into(),
                            None if e.station_id != a.station_id => "station id".into(),
                            None => "destinations".into(),
                        };
                        plan.push((ap.clone(), Action::AccountChange(r(), ch, what)));
                    }
                    Some(_) => {}
                }
                let mut listed_numbers = HashSet::new();
                for (ni, n) in a.number.iter().enumerate() {
                    let np = at(&[&"tenant", &ti, &"account", &ai, &"number", &ni]);
                    let num = match E164::parse(&n.number, Some(t.default_country)) {
                        Ok(num) => num,
                        Err(e) => {
                            problems.push((np, format!("tenant {} account {:?}: {e}", t.id, a.reference)));
                            continue;
                        }
                    };
                    if !seen_numbers.insert(num.clone()) {
                        problems.push((np, format!("number {num} is listed twice")));
                        continue;
                    }
                    listed_numbers.insert(num.clone());
                    let routes = routes_of(n);
                    match self.lookup_number(&num)? {
                        None => plan.push((np, Action::NumberAdd(r(), num, routes))),
                        Some(rec) if existing.as_ref().is_some_and(|e| e.id == rec.account) => {
                            if rec.routes != routes {
                                plan.push((np, Action::RoutesReplace(num, routes)));
                            }
                        }
                        Some(_) => problems.push((np, format!("number {num} cannot be added to this account"))),
                    }
                }
                let mut listed_senders = HashSet::new();
                for (si, s) in a.sender.iter().enumerate() {
                    let sp = at(&[&"tenant", &ti, &"account", &ai, &"sender", &si]);
                    if !seen_senders.insert(s.sender.canonical()) {
                        problems.push((sp, format!("sender {} is listed twice", s.sender)));
                        continue;
                    }
                    listed_senders.insert(s.sender.canonical());
                    let caller =
                        match s.caller_number.as_deref().map(|c| E164::parse(c, Some(t.default_country))).transpose() {
                            Ok(c) => c,
                            Err(e) => {
                                problems.push((sp, format!("sender {}: caller number: {e}", s.sender)));
                                continue;
                            }
                        };
                    match self.load_sender(&s.sender)? {
                        None => {
                            plan.push((sp, Action::SenderAdd(r(), s.sender.clone(), caller, s.auth, s.envelope_from)))
                        }
                        Some(rec) if existing.as_ref().is_some_and(|e| e.id == rec.account) => {
                            if rec.caller_number != caller || rec.auth != s.auth || rec.envelope_from != s.envelope_from
                            {
                                let ch = SenderChange {
                                    caller_number: match (&caller, rec.caller_number == caller) {
                                        (_, true) => super::Patch::Keep,
                                        (Some(c), false) => super::Patch::Set(c.to_string()),
                                        (None, false) => super::Patch::Clear,
                                    },
                                    auth: (rec.auth != s.auth).then_some(s.auth),
                                    envelope_from: (rec.envelope_from != s.envelope_from).then_some(s.envelope_from),
                                    password: None,
                                };
                                let what = format!(
                                    "caller number {}, auth {:?}, envelope_from {:?}",
                                    caller.as_ref().map(ToString::to_string).unwrap_or_else(|| "none".into()),
                                    s.auth,
                                    s.envelope_from
                                );
                                plan.push((sp.clone(), Action::SenderChange(s.sender.clone(), ch, what)));
                            }
                        }
                        Some(_) => problems.push((sp, format!("sender {} cannot be added to this account", s.sender))),
                    }
                }
                if let (true, Some(e)) = (prune, &existing) {
                    for rec in self.number_list(scope, Some(&e.id), None)? {
                        if !listed_numbers.contains(&rec.number) {
                            plan.push((ap.clone(), Action::NumberRemove(rec.number)));
                        }
                    }
                    for rec in self.sender_list(scope, Some(&e.id), None)? {
                        if !listed_senders.contains(&rec.pattern.canonical()) {
                            plan.push((ap.clone(), Action::SenderRemove(rec.pattern)));
                        }
                    }
                }
            }
            if prune && existing.is_some() {
                let now = self.now();
                for acc in self.account_list(scope, Some(&t.id))? {
                    let listed = acc.reference.as_ref().is_some_and(|r| seen_refs.contains(r));
                    if !listed && acc.status(now) == super::AccountStatus::Active {
                        let why = match &acc.reference {
                            Some(r) => format!("reference {r:?} not in the file"),
                            None => "no reference, not in the file".into(),
                        };
                        plan.push((tp.clone(), Action::AccountTerminate(acc.id, why)));
                    }
                }
            }
        }
        Ok((plan, problems))
    }

    fn resolve(&self, scope: &Scope, r: &AccountRef) -> Result<crate::types::AccountId, Error> {
        self.account_by_reference(scope, &r.tenant, &r.reference)?.map(|a| a.id).ok_or_else(|| {
            Error::NotFound(format!("account {:?} of tenant {} vanished while applying", r.reference, r.tenant))
        })
    }

    fn execute(&self, scope: &Scope, action: Action) -> Result<(), Error> {
        match action {
            Action::TenantAdd(t) => self.tenant_add(scope, t).map(drop),
            Action::TenantChange(id, ch, _) => self.tenant_change(scope, &id, ch).map(drop),
            Action::AccountAdd(r, name, paper) => {
                self.account_add(scope, &r.tenant, &name, Some(&r.reference), paper).map(drop)
            }
            Action::AccountChange(r, ch, _) => {
                let id = self.resolve(scope, &r)?;
                self.account_change(scope, &id, ch).map(drop)
            }
            Action::AccountTerminate(id, _) => self.account_terminate(scope, &id, None).map(drop),
            Action::NumberAdd(r, n, routes) => {
                let id = self.resolve(scope, &r)?;
                self.number_add(scope, &id, n.as_str(), routes).map(drop)
            }
            Action::RoutesReplace(n, routes) => self.routes_replace(scope, n.as_str(), routes).map(drop),
            Action::NumberRemove(n) => self.number_remove(scope, n.as_str()).map(drop),
            Action::SenderAdd(r, p, caller, auth, envelope_from) => {
                let id = self.resolve(scope, &r)?;
                let caller = caller.map(|c| c.to_string());
                self.sender_add(scope, &id, p, caller.as_deref(), auth, envelope_from).map(drop)
            }
            Action::SenderChange(p, ch, _) => self.sender_change(scope, &p, ch).map(drop),
            Action::SenderRemove(p) => self.sender_remove(scope, &p).map(drop),
        }
    }
}

fn describe_tenant_change(ch: &TenantChange) -> String {
    let mut parts = Vec::new();
    if let Some(v) = &ch.name {
        parts.push(format!("name {v:?}"));
    }
    if let Some(v) = &ch.display_name {
        parts.push(format!("display name {v:?}"));
    }
    if let Some(v) = &ch.from_address {
        parts.push(format!("from address {v}"));
    }
    if let Some(v) = ch.language {
        parts.push(format!("language {v:?}").to_lowercase());
    }
    if let Some(v) = ch.default_country {
        parts.push(format!("default country {v}"));
    }
    if let Some(v) = ch.paper {
        parts.push(format!("paper {v:?}").to_lowercase());
    }
    for (what, p) in
        [("time zone", &ch.time_zone), ("header template", &ch.header_template), ("station id", &ch.station_id)]
    {
        match p {
            super::Patch::Keep => {}
            super::Patch::Clear => parts.push(format!("{what} unset")),
            super::Patch::Set(v) => parts.push(format!("{what} {v:?}")),
        }
    }
    for d in &ch.add_domains {
        parts.push(format!("+fax domain {d}"));
    }
    for d in &ch.remove_domains {
        parts.push(format!("-fax domain {d}"));
    }
    parts.join(", ")
}
