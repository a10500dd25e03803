//! Call detail records: one per transmission attempt, in either direction.
//!
//! A CDR is sealed with the key of its calendar month of communication (UTC
//! month of its start), so the records of a month can be erased together by
//! destroying one key once the last of them has passed its retention period
//! ([`crate::retention::cdr`]). Its place and its number index entries,
//! written in the same atomic batch, are described with their encoding in
//! [`crate::store::layout::cdr`]; the record is [`encode`]d in binary before
//! it is sealed. Stores of the first layout (JSON records) are rewritten
//! when the store opens ([`migrate`]).

use std::net::SocketAddr;
use std::sync::Arc;

use faxgate_t38::Event;
use faxgate_t38::sip::CallReport;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::retention::cdr::month_key;
use crate::store::layout::cdr as layout;
use crate::store::{Store, Tree, TreeName};
use crate::types::{AccountId, E164, EmailAddress, TenantId};

/// Keys removed per flushed batch when some CDRs of a month are erased,
/// and records rewritten per batch by [`migrate`].
const REMOVE_CHUNK: usize = 5_000;

/// Which way the fax went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Mail in, fax out.
    MailToFax,
    /// Fax in, mail out.
    FaxToMail,
}

/// How the fax was carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// T.38 over UDPTL.
    T38,
    /// G.711 audio over RTP.
    G711,
}

/// One page as it crossed the line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PageEvent {
    /// Page number, from 1.
    pub page: u32,
    /// When the page completed.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Bad rows (non-ECM), or 0.
    pub bad_rows: u32,
    /// ECM retransmissions.
    pub ecm_retries: u32,
}

/// A call detail record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cdr {
    /// Its id (time-ordered).
    pub id: String,
    /// The id that follows the transmission through mail, job, call and report.
    pub correlation_id: String,
    /// Which way.
    pub direction: Direction,
    /// The tenant.
    pub tenant: TenantId,
    /// The account, if the transmission was matched to one.
    pub account: Option<AccountId>,
    /// The calling number.
    pub calling: Option<E164>,
    /// The called number.
    pub called: Option<E164>,
    /// Mail addresses involved (sender, recipients).
    pub emails: Vec<EmailAddress>,
    /// The SMTP client's address.
    #[schema(value_type = Option<String>)]
    pub smtp_client: Option<std::net::IpAddr>,
    /// SIP signalling peer (address:port).
    #[schema(value_type = Option<String>)]
    pub sip_signalling: Option<SocketAddr>,
    /// Media peer (address:port).
    #[schema(value_type = Option<String>)]
    pub sip_media: Option<SocketAddr>,
    /// Start of the attempt.
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// When the call was answered.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub answer: Option<Timestamp>,
    /// End of the attempt.
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
    /// T.30 completion code.
    pub t30_code: Option<i32>,
    /// T.30 completion text.
    pub t30_text: Option<String>,
    /// SIP final status.
    pub sip_status: Option<u16>,
    /// Pages transferred.
    pub pages: u32,
    /// Pages in the document.
    pub pages_total: Option<u32>,
    /// T.38 or G.711.
    pub transport: Option<Transport>,
    /// Bit rate.
    pub bit_rate: Option<u32>,
    /// Whether ECM was used.
    pub ecm: Option<bool>,
    /// Resolution, e.g. "204x196".
    pub resolution: Option<String>,
    /// Remote station id (TSI/CSI).
    pub remote_station: Option<String>,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Per-page timeline.
    pub timeline: Vec<PageEvent>,
    /// The call started with what earlier calls to this destination needed
    /// ([`crate::learned`]): `audio`, `ecm-off` and the rate, e.g.
    /// `audio ecm-off 9600`. Absent for a call at the trunk's own settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<String>,
}

/// Which CDRs to list.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CdrFilter {
    /// Only this tenant's.
    pub tenant: Option<TenantId>,
    /// Only this account's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    /// Only those with this calling or called number.
    pub number: Option<E164>,
    /// Started at or after.
    pub since: Option<Timestamp>,
    /// Started before.
    pub until: Option<Timestamp>,
}

/// The CDR store.
#[derive(Clone, Debug)]
pub struct CdrStore {
    tree: Arc<Tree>,
    store: Store,
}

pub use crate::store::layout::cdr::{month_of, parse_place, place as place_for};

/// The first byte of a record in [`encode`]'s form (a JSON record, of the
/// first layout, starts with `{`).
const COMPACT: u8 = 1;

/// A CDR as [`encode`] writes it: [`Cdr`]'s fields in order, in postcard
/// (variable-length integers, strings with their length), times as
/// milliseconds and the nanoseconds beyond them, each time but the start
/// relative to the start. Changing it means a new first byte.
#[derive(Serialize, Deserialize)]
struct Compact {
    id: CompactId,
    correlation_id: String,
    direction: Direction,
    tenant: TenantId,
    account: Option<AccountId>,
    calling: Option<E164>,
    called: Option<E164>,
    emails: Vec<EmailAddress>,
    smtp_client: Option<std::net::IpAddr>,
    sip_signalling: Option<SocketAddr>,
    sip_media: Option<SocketAddr>,
    start: Ms,
    answer: Option<Ms>,
    end: Ms,
    t30_code: Option<i32>,
    t30_text: Option<String>,
    sip_status: Option<u16>,
    pages: u32,
    pages_total: Option<u32>,
    transport: Option<Transport>,
    bit_rate: Option<u32>,
    ecm: Option<bool>,
    resolution: Option<String>,
    remote_station: Option<String>,
    attempt: u32,
    timeline: Vec<(u32, Ms, u32, u32)>,
    learned: Option<String>,
}

/// An id of [`CdrStore::new_id`]'s form as its UUID's 16 bytes, another as text.
#[derive(Serialize, Deserialize)]
enum CompactId {
    Uuid([u8; 16]),
    Text(String),
}

/// A time in milliseconds and the nanoseconds beyond them.
#[derive(Serialize, Deserialize)]
struct Ms(i64, u32);

impl Ms {
    fn of(t: Timestamp, from: i128) -> Ms {
        let ns = t.as_nanosecond() - from;
        Ms(ns.div_euclid(1_000_000) as i64, ns.rem_euclid(1_000_000) as u32)
    }

    fn at(&self, from: i128) -> Result<Timestamp, Error> {
        let ns = from + self.0 as i128 * 1_000_000 + self.1 as i128;
        Timestamp::from_nanosecond(ns).map_err(|e| damaged(&e))
    }
}

fn damaged(e: &dyn std::fmt::Display) -> Error {
    Error::Damaged { what: format!("a CDR record does not decode: {e}") }
}

/// A CDR's bytes before sealing: [`COMPACT`] and [`Compact`]. Every field is
/// kept, times to the nanosecond.
pub fn encode(c: &Cdr) -> Result<Vec<u8>, Error> {
    let id = match c.id.strip_prefix("cdr-").and_then(|h| uuid::Uuid::try_parse(h).ok()) {
        Some(u) if c.id == format!("cdr-{}", u.simple()) => CompactId::Uuid(u.into_bytes()),
        _ => CompactId::Text(c.id.clone()),
    };
    let from = c.start.as_nanosecond();
    let compact = Compact {
        id,
        correlation_id: c.correlation_id.clone(),
        direction: c.direction,
        tenant: c.tenant.clone(),
        account: c.account,
        calling: c.calling.clone(),
        called: c.called.clone(),
        emails: c.emails.clone(),
        smtp_client: c.smtp_client,
        sip_signalling: c.sip_signalling,
        sip_media: c.sip_media,
        start: Ms::of(c.start, 0),
        answer: c.answer.map(|t| Ms::of(t, from)),
        end: Ms::of(c.end, from),
        t30_code: c.t30_code,
        t30_text: c.t30_text.clone(),
        sip_status: c.sip_status,
        pages: c.pages,
        pages_total: c.pages_total,
        transport: c.transport,
        bit_rate: c.bit_rate,
        ecm: c.ecm,
        resolution: c.resolution.clone(),
        remote_station: c.remote_station.clone(),
        attempt: c.attempt,
        timeline: c.timeline.iter().map(|p| (p.page, Ms::of(p.at, from), p.bad_rows, p.ecm_retries)).collect(),
        learned: c.learned.clone(),
    };
    let mut out = vec![COMPACT];
    postcard::to_io(&compact, &mut out).map_err(|e| Error::Invalid(format!("cannot encode a CDR: {e}")))?;
    Ok(out)
}

/// A CDR from [`encode`]'s bytes, or from the JSON of the first layout.
pub fn decode(b: &[u8]) -> Result<Cdr, Error> {
    match b.first() {
        Some(&COMPACT) => {}
        Some(b'{') => {
            return serde_json::from_slice(b).map_err(|source| Error::Codec { what: "cdr".into(), source });
        }
        _ => return Err(damaged(&"unknown first byte")),
    }
    let (c, rest): (Compact, &[u8]) = postcard::take_from_bytes(&b[1..]).map_err(|e| damaged(&e))?;
    if !rest.is_empty() {
        return Err(damaged(&format!("{} bytes after the record", rest.len())));
    }
    let start = c.start.at(0)?;
    let from = start.as_nanosecond();
    Ok(Cdr {
        id: match c.id {
            CompactId::Uuid(b) => format!("cdr-{}", uuid::Uuid::from_bytes(b).simple()),
            CompactId::Text(t) => t,
        },
        correlation_id: c.correlation_id,
        direction: c.direction,
        tenant: c.tenant,
        account: c.account,
        calling: c.calling,
        called: c.called,
        emails: c.emails,
        smtp_client: c.smtp_client,
        sip_signalling: c.sip_signalling,
        sip_media: c.sip_media,
        start,
        answer: c.answer.map(|t| t.at(from)).transpose()?,
        end: c.end.at(from)?,
        t30_code: c.t30_code,
        t30_text: c.t30_text,
        sip_status: c.sip_status,
        pages: c.pages,
        pages_total: c.pages_total,
        transport: c.transport,
        bit_rate: c.bit_rate,
        ecm: c.ecm,
        resolution: c.resolution,
        remote_station: c.remote_station,
        attempt: c.attempt,
        timeline: c
            .timeline
            .into_iter()
            .map(|(page, at, bad_rows, ecm_retries)| Ok(PageEvent { page, at: at.at(from)?, bad_rows, ecm_retries }))
            .collect::<Result<_, Error>>()?,
        learned: c.learned,
    })
}

/// Rewrites the CDRs of a store of the first layout ([`layout::v1`]: JSON
/// records, text keys) in the current one, a few thousand per atomic batch,
/// each record moved with its index entries in one batch, so that a
/// rewrite cut short goes on at the next open. Records whose month key was
/// destroyed are erased and removed; a record that does not open otherwise
/// (its key lost or damaged) is left as it is, for `faxgate store verify`
/// to report, and tried again at the next open. Returns the records rewritten.
pub fn migrate(store: &Store) -> Result<usize, Error> {
    let tree = store.tree(TreeName::Cdr)?;
    let old = tree.keys_with_prefix(layout::v1::PLACES)?;
    let old_index = tree.keys_with_prefix(layout::v1::INDEX)?;
    if old.is_empty() && old_index.is_empty() {
        return Ok(0);
    }
    let mut destroyed = None;
    let mut moved = 0;
    let mut left = 0;
    for chunk in old.chunks(REMOVE_CHUNK) {
        let mut b = tree.batch();
        for k in chunk {
            match tree.get_sealed_bytes(k) {
                Ok(Some(plain)) => {
                    let Ok(c) = decode(&plain) else {
                        left += 1;
                        continue;
                    };
                    let (y, m) = month_of(c.start);
                    let place = place(&c);
                    b.put_sealed_bytes(&place, &month_key(y, m)?, &encode(&c)?)?;
                    for n in [&c.calling, &c.called].into_iter().flatten() {
                        b.put_plain(&layout::index_entry(store, n, &place), b"");
                    }
                    b.remove(k);
                    moved += 1;
                }
                Ok(None) => {}
                Err(Error::Crypto(faxgate_retention::Error::KeyDestroyed(id))) => {
                    let destroyed = match &mut destroyed {
                        Some(d) => d,
                        None => destroyed.insert(crate::retention::destroyed_keys(store)?),
                    };
                    if destroyed.contains(&id) {
                        b.remove(k);
                    } else {
                        left += 1;
                    }
                }
                Err(_) => left += 1,
            }
        }
        tree.apply(b)?;
    }
    // The old index entries, but those of records left in the old layout.
    let kept: std::collections::HashSet<Vec<u8>> = tree.keys_with_prefix(layout::v1::PLACES)?.into_iter().collect();
    let stale: Vec<Vec<u8>> =
        old_index.into_iter().filter(|k| !layout::v1::place_of_index(k).is_some_and(|p| kept.contains(p))).collect();
    for chunk in stale.chunks(REMOVE_CHUNK) {
        let mut b = tree.batch();
        for k in chunk {
            b.remove(k);
        }
        tree.apply(b)?;
    }
    if left > 0 {
        tracing::warn!(left, "CDRs of the first store layout do not open and were left as they are");
    }
    tracing::info!(moved, "CDRs rewritten in the current store layout");
    Ok(moved)
}

fn place(c: &Cdr) -> Vec<u8> {
    place_for(c.start, &c.id)
}

impl Cdr {
    /// A CDR with what every attempt has; the rest is filled in by the caller.
    pub fn blank(id: &str, correlation_id: String, direction: Direction, tenant: TenantId, start: Timestamp) -> Cdr {
        Cdr {
            id: id.to_owned(),
            correlation_id,
            direction,
            tenant,
            account: None,
            calling: None,
            called: None,
            emails: Vec::new(),
            smtp_client: None,
            sip_signalling: None,
            sip_media: None,
            start,
            answer: None,
            end: start,
            t30_code: None,
            t30_text: None,
            sip_status: None,
            pages: 0,
            pages_total: None,
            transport: None,
            bit_rate: None,
            ecm: None,
            resolution: None,
            remote_station: None,
            attempt: 1,
            timeline: Vec::new(),
            learned: None,
        }
    }

    /// The CDR of a call answered here, with what is known from its start.
    pub fn received(
        cdr_id: &str,
        call_id: &str,
        tenant: TenantId,
        account: AccountId,
        caller: &str,
        called: &E164,
        start: Timestamp,
    ) -> Cdr {
        let mut c = Cdr::blank(cdr_id, format!("{call_id} {cdr_id}"), Direction::FaxToMail, tenant, start);
        c.account = Some(account);
        c.calling = E164::from_sip_user(caller);
        c.called = Some(called.clone());
        c
    }

    /// Fills in what the fax leg reported of a call that ended at `end`.
    ///
    /// Transport, bit rate and ECM are a fax phase's: they are filled in only
    /// when the two ends agreed on a transfer (a DCS), never from the
    /// engine's defaults on a call answered and cleared before that. The
    /// page total of a received fax is known once it completed.
    pub fn fill_from_report(&mut self, r: &CallReport, end: Timestamp) {
        let c = self;
        let answer = end - SignedDuration::try_from(r.answered_for).unwrap_or(SignedDuration::ZERO);
        c.sip_status = Some(r.sip_status());
        c.sip_signalling = r.signalling.or(c.sip_signalling);
        c.answer = Some(answer.max(c.start));
        c.sip_media = r.remote_media;
        let negotiated = r.events.iter().any(|e| matches!(e, Event::Negotiated(_)));
        if negotiated {
            c.transport = Some(if r.t38 { Transport::T38 } else { Transport::G711 });
        }
        if let Some(res) = &r.result {
            c.t30_code = Some(res.code.0);
            c.t30_text = Some(res.text.clone());
            if negotiated {
                c.bit_rate = Some(res.bit_rate);
                c.ecm = Some(res.ecm);
            }
            c.remote_station = res.remote_ident.clone().filter(|s| !s.trim().is_empty());
            c.pages = res.pages;
            match res.pages_in_file {
                Some(n) => c.pages_total = Some(n),
                None if r.incoming && res.is_ok() => c.pages_total = Some(res.pages),
                None => {}
            }
        }
        let mut page = 0;
        for (i, e) in r.events.iter().enumerate() {
            if let Event::Page(p) = e {
                let offset = r.event_offsets.get(i).copied().unwrap_or_default();
                page += 1;
                c.resolution.get_or_insert_with(|| resolution_dpi(p.x_resolution, p.y_resolution));
                c.timeline.push(PageEvent {
                    page,
                    at: answer + SignedDuration::try_from(offset).unwrap_or(SignedDuration::ZERO),
                    bad_rows: p.bad_rows,
                    ecm_retries: p.ecm_retries,
                });
            }
        }
    }
}

/// A page's resolution as fax devices name it, in dots per inch (`204x196`),
/// from the engine's pels per metre (`8040x7700`; T.4 counts 8 pels and 7.7
/// lines per millimetre).
pub fn resolution_dpi(x_per_metre: u32, y_per_metre: u32) -> String {
    let dpi = |per_metre: u32| (per_metre as f64 * 0.0254).round() as u32;
    format!("{}x{}", dpi(x_per_metre), dpi(y_per_metre))
}

impl CdrStore {
    /// The CDRs in `store`.
    pub fn open(store: &Store) -> Result<Self, Error> {
        Ok(CdrStore { tree: Arc::new(store.tree(TreeName::Cdr)?), store: store.clone() })
    }

    /// A fresh CDR id.
    pub fn new_id() -> String {
        format!("cdr-{}", uuid::Uuid::now_v7().simple())
    }

    /// Writes a CDR, sealed with its month's key, flushed before returning.
    pub fn write(&self, c: &Cdr) -> Result<(), Error> {
        let (y, m) = month_of(c.start);
        let place = place(c);
        let mut b = self.tree.batch();
        b.put_sealed_bytes(&place, &month_key(y, m)?, &encode(c)?)?;
        for n in [&c.calling, &c.called].into_iter().flatten() {
            b.put_plain(&layout::index_entry(&self.store, n, &place), b"");
        }
        self.tree.apply(b)
    }

    /// Writes many CDRs in one batch and one flush (loading, benchmarks).
    pub fn write_many(&self, cdrs: &[Cdr]) -> Result<(), Error> {
        let mut b = self.tree.batch();
        for c in cdrs {
            let (y, m) = month_of(c.start);
            let place = place(c);
            b.put_sealed_bytes(&place, &month_key(y, m)?, &encode(c)?)?;
            for n in [&c.calling, &c.called].into_iter().flatten() {
                b.put_plain(&layout::index_entry(&self.store, n, &place), b"");
            }
        }
        self.tree.apply(b)
    }

    /// The places of every CDR, in order (no key needed).
    pub fn places(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.tree.keys_with_prefix(layout::PLACES)
    }

    /// The months that hold CDRs or index entries.
    fn months(&self, filter: &CdrFilter) -> Result<Vec<(i16, i8)>, Error> {
        if let (Some(since), Some(until)) = (filter.since, filter.until) {
            let mut out = Vec::new();
            let (mut y, mut m) = month_of(since);
            let last = month_of(until);
            while (y, m) <= last {
                out.push((y, m));
                (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            }
            return Ok(out);
        }
        let mut out: Vec<(i16, i8)> = self.places()?.iter().filter_map(|p| parse_place(p).map(|(m, _)| m)).collect();
        out.dedup();
        Ok(out)
    }

    fn open_place(&self, k: &[u8]) -> Result<Option<Cdr>, Error> {
        match self.get(k) {
            Err(Error::Crypto(faxgate_retention::Error::KeyDestroyed(_))) => Ok(None),
            other => other,
        }
    }

    /// The CDRs matching `filter`, oldest first. CDRs whose month key was
    /// destroyed are erased and not listed.
    pub fn list(&self, filter: &CdrFilter) -> Result<Vec<Cdr>, Error> {
        let places = match &filter.number {
            // One number: its index entries, month by month.
            Some(n) => {
                let mut places = Vec::new();
                for month in self.months(filter)? {
                    let prefix = layout::number_index(&self.store, month, n);
                    places
                        .extend(self.tree.keys_with_prefix(&prefix)?.iter().filter_map(|k| layout::place_of_index(k)));
                }
                places.sort();
                places.dedup();
                places
            }
            None => self.places()?,
        };
        let mut out = Vec::new();
        for k in places {
            let Some((_, start)) = parse_place(&k) else { continue };
            if filter.since.is_some_and(|s| start < s) || filter.until.is_some_and(|u| start >= u) {
                continue;
            }
            let Some(c) = self.open_place(&k)? else { continue };
            if filter.tenant.as_ref().is_some_and(|t| *t != c.tenant) {
                continue;
            }
            if filter.account.is_some() && filter.account != c.account {
                continue;
            }
            if let Some(n) = &filter.number
                && c.calling.as_ref() != Some(n)
                && c.called.as_ref() != Some(n)
            {
                continue;
            }
            out.push(c);
        }
        Ok(out)
    }

    /// One page of the CDRs matching `filter` and `keep`, oldest first: at
    /// most `limit`, after the place `after` (the `next` of the page
    /// before), and the place to go on from when there are more. Only the
    /// places between `since` and `until` are read, and the reading stops
    /// when the page is full, so a page of a month costs what it holds (and
    /// the other tenants' CDRs among them), not what the store holds.
    pub fn page(
        &self,
        filter: &CdrFilter,
        after: Option<&[u8]>,
        limit: usize,
        keep: impl Fn(&Cdr) -> bool,
    ) -> Result<(Vec<Cdr>, Option<Vec<u8>>), Error> {
        let limit = limit.max(1);
        if filter.number.is_some() {
            // One number's: its index entries, month by month, are few.
            let list = self.list(filter)?;
            let mut rest = list
                .into_iter()
                .filter(|c| keep(c))
                .map(|c| (place(&c), c))
                .skip_while(|(p, _)| after.is_some_and(|a| p.as_slice() <= a));
            let items: Vec<(Vec<u8>, Cdr)> = rest.by_ref().take(limit).collect();
            let next = match rest.next() {
                Some(_) => items.last().map(|(p, _)| p.clone()),
                None => None,
            };
            return Ok((items.into_iter().map(|(_, c)| c).collect(), next));
        }
        let mut from = filter.since.map_or_else(|| layout::PLACES.to_vec(), |s| place_for(s, ""));
        if let Some(a) = after
            && a >= from.as_slice()
        {
            // Just after `after`.
            from = a.to_vec();
            from.push(0);
        }
        let to = filter.until.map_or_else(
            || {
                let mut end = layout::PLACES.to_vec();
                *end.last_mut().expect("a prefix") += 1;
                end
            },
            |u| place_for(u, ""),
        );
        let mut items: Vec<(Vec<u8>, Cdr)> = Vec::with_capacity(limit);
        if from >= to {
            return Ok((Vec::new(), None));
        }
        for k in self.tree.keys_between(&from, &to)? {
            let k = k?;
            let Some(c) = self.open_place(&k)? else { continue };
            if filter.tenant.as_ref().is_some_and(|t| *t != c.tenant)
                || (filter.account.is_some() && filter.account != c.account)
                || !keep(&c)
            {
                continue;
            }
            if items.len() == limit {
                // One more: the page is full and there is a next.
                let next = items.last().map(|(p, _)| p.clone());
                return Ok((items.into_iter().map(|(_, c)| c).collect(), next));
            }
            items.push((k, c));
        }
        Ok((items.into_iter().map(|(_, c)| c).collect(), None))
    }

    /// The CDRs of `month` whose ids are at or after `from` and before
    /// `until` (ids are time-ordered: written in that span), found by
    /// their places without opening the others.
    pub fn written_between(&self, month: (i16, i8), from: &str, until: Option<&str>) -> Result<Vec<Cdr>, Error> {
        let mut out = Vec::new();
        for k in self.tree.keys_with_prefix(&layout::month_places(month))? {
            let Some(id) = layout::id_of_place(&k) else { continue };
            if id.as_str() >= from
                && until.is_none_or(|u| id.as_str() < u)
                && let Some(c) = self.get(&k)?
            {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// The CDR at `place`.
    pub fn get(&self, place: &[u8]) -> Result<Option<Cdr>, Error> {
        self.tree.get_sealed_bytes(place)?.map(|b| decode(&b)).transpose()
    }

    /// Removes the records at `places` with their index entries (after their
    /// key was destroyed, or to erase them).
    pub fn remove(&self, places: &[Vec<u8>]) -> Result<(), Error> {
        if places.is_empty() {
            return Ok(());
        }
        let gone: std::collections::HashSet<&[u8]> = places.iter().map(Vec::as_slice).collect();
        let mut months: Vec<(i16, i8)> = places.iter().filter_map(|p| parse_place(p).map(|(m, _)| m)).collect();
        months.sort();
        months.dedup();
        let mut doomed = Vec::new();
        for month in months {
            for k in self.tree.keys_with_prefix(&layout::month_index(month))? {
                if layout::place_of_index(&k).is_some_and(|p| gone.contains(p.as_slice())) {
                    doomed.push(k);
                }
            }
        }
        doomed.extend(places.iter().cloned());
        self.remove_in_chunks(&doomed)
    }

    /// Removes keys a few thousand at a time, so that a sweep over a large
    /// month never holds the store for long (records of an erased month are
    /// unreadable already; expired ones are found again by the next sweep).
    fn remove_in_chunks(&self, keys: &[Vec<u8>]) -> Result<(), Error> {
        for chunk in keys.chunks(REMOVE_CHUNK) {
            let mut b = self.tree.batch();
            for k in chunk {
                b.remove(k);
            }
            self.tree.apply(b)?;
        }
        Ok(())
    }

    /// Removes every record and index entry of a month (after the month's
    /// key was destroyed): two key ranges, removed without opening a
    /// record, flushed once ([`Tree::remove_prefixes`]). Returns the
    /// records removed.
    ///
    /// The index entries go first: an erasure cut short leaves records
    /// without entries (unreadable, their key gone, and erased by the next
    /// sweep), never an entry without its record, which is damage.
    pub fn erase_month(&self, month: (i16, i8)) -> Result<usize, Error> {
        let places = layout::month_places(month);
        let removed = self.tree.remove_prefixes(&[&layout::month_index(month), &places])?;
        Ok(removed[1])
    }
}

/// A made-up CDR, the `i`th of a series (100,000 called numbers, two
/// tenants, 5,000 mail addresses), for tests and benchmarks.
pub fn example(i: u64, start: Timestamp) -> Cdr {
    let called = format!("+45{}", 33_900_000 + (i % 100_000));
    Cdr {
        id: CdrStore::new_id(),
        correlation_id: format!("<{i}@mail.example.dk>"),
        direction: if i.is_multiple_of(3) { Direction::FaxToMail } else { Direction::MailToFax },
        tenant: if i.is_multiple_of(2) { "alpha".parse().unwrap() } else { "beta".parse().unwrap() },
        account: None,
        calling: Some("+4570203040".parse().unwrap()),
        called: Some(E164::new_unchecked(called)),
        emails: vec![format!("user{}@customer{}.dk", i % 5000, i % 700).parse().unwrap()],
        smtp_client: Some("192.0.2.10".parse().unwrap()),
        sip_signalling: Some("198.51.100.5:5060".parse().unwrap()),
        sip_media: Some("198.51.100.5:40000".parse().unwrap()),
        start,
        answer: Some(start + SignedDuration::from_secs(3)),
        end: start + SignedDuration::from_secs(65),
        t30_code: Some(0),
        t30_text: Some("OK".into()),
        sip_status: Some(200),
        pages: 2,
        pages_total: Some(2),
        transport: Some(Transport::T38),
        bit_rate: Some(14400),
        ecm: Some(true),
        resolution: Some("204x196".into()),
        remote_station: Some("+45 33 22 11 00".into()),
        attempt: 1,
        timeline: vec![
            PageEvent { page: 1, at: start + SignedDuration::from_secs(35), bad_rows: 0, ecm_retries: 0 },
            PageEvent { page: 2, at: start + SignedDuration::from_secs(62), bad_rows: 0, ecm_retries: 1 },
        ],
        learned: None,
    }
}

/// The columns of the CSV export, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "correlation_id",
    "direction",
    "tenant",
    "account",
    "calling",
    "called",
    "emails",
    "smtp_client",
    "sip_signalling",
    "sip_media",
    "start",
    "answer",
    "end",
    "t30_code",
    "t30_text",
    "sip_status",
    "pages",
    "pages_total",
    "transport",
    "bit_rate",
    "ecm",
    "resolution",
    "remote_station",
    "attempt",
    "timeline",
    "duration_s",
    "result",
];

impl Cdr {
    /// Seconds from answer (or start) to end: what a fax is billed for.
    pub fn duration_s(&self) -> f64 {
        let from = self.answer.unwrap_or(self.start);
        (self.end.as_millisecond() - from.as_millisecond()).max(0) as f64 / 1000.0
    }

    /// "ok", or why not, in words.
    pub fn result(&self) -> String {
        match (self.t30_code, &self.t30_text, self.sip_status) {
            (Some(0), _, _) => "ok".into(),
            (Some(_), Some(t), _) => t.clone(),
            (_, _, Some(s)) if s >= 300 => format!("SIP {s}"),
            _ => "failed".into(),
        }
    }
}

/// CDRs as CSV (RFC 4180), with a header line; the timeline as JSON in its cell.
pub fn to_csv(cdrs: &[Cdr]) -> Result<String, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let codec = |e: csv::Error| Error::Invalid(format!("CSV: {e}"));
    w.write_record(CSV_COLUMNS).map_err(codec)?;
    for c in cdrs {
        let mut v = serde_json::to_value(c).map_err(|source| Error::Codec { what: "cdr".into(), source })?;
        v["duration_s"] = serde_json::json!(c.duration_s());
        v["result"] = serde_json::json!(c.result());
        let row: Vec<String> = CSV_COLUMNS
            .iter()
            .map(|col| match &v[*col] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(a) if *col == "emails" => {
                    a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" ")
                }
                other => other.to_string(),
            })
            .collect();
        w.write_record(&row).map_err(codec)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::Invalid(format!("CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Error::Invalid(format!("CSV: {e}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(start: &str, tenant: &str, called: &str) -> Cdr {
        let start: Timestamp = start.parse().unwrap();
        Cdr {
            id: CdrStore::new_id(),
            correlation_id: "<msg-1@example.dk>".into(),
            direction: Direction::MailToFax,
            tenant: tenant.parse().unwrap(),
            account: Some(AccountId::generate()),
            calling: Some("+4570203040".parse().unwrap()),
            called: Some(called.parse().unwrap()),
            emails: vec!["jens@hansen-blik.dk".parse().unwrap()],
            smtp_client: Some("192.0.2.10".parse().unwrap()),
            sip_signalling: Some("198.51.100.5:5060".parse().unwrap()),
            sip_media: Some("198.51.100.5:40000".parse().unwrap()),
            start,
            answer: Some(start + SignedDuration::from_secs(3)),
            end: start + SignedDuration::from_secs(70),
            t30_code: Some(0),
            t30_text: Some("OK".into()),
            sip_status: Some(200),
            pages: 2,
            pages_total: Some(2),
            transport: Some(Transport::T38),
            bit_rate: Some(14400),
            ecm: Some(true),
            resolution: Some("204x196".into()),
            remote_station: Some("+45 33 22 11 00".into()),
            attempt: 1,
            timeline: vec![PageEvent {
                page: 1,
                at: start + SignedDuration::from_secs(40),
                bad_rows: 0,
                ecm_retries: 0,
            }],
            learned: None,
        }
    }

    /// What the fax leg reports of an answered call: `events` and, unless
    /// `None`, phase E's code with the engine's statistics.
    fn report(incoming: bool, t38: bool, events: Vec<Event>, code: Option<i32>) -> CallReport {
        use faxgate_t38::{CompletionCode, FaxResult};
        let result = code.map(|code| FaxResult {
            code: CompletionCode(code),
            text: CompletionCode(code).text(),
            pages: events.iter().filter(|e| matches!(e, Event::Page(_))).count() as u32,
            pages_in_file: None,
            // spandsp's figures when no DCS was agreed: its fastest modem, no ECM.
            bit_rate: 14400,
            ecm: false,
            remote_ident: None,
        });
        CallReport {
            call_id: "c@x".into(),
            incoming,
            caller: "4570203040".into(),
            called: "4533221100".into(),
            result,
            t38,
            peer_hung_up: true,
            event_offsets: events.iter().enumerate().map(|(i, _)| std::time::Duration::from_secs(i as u64)).collect(),
            events,
            answered_for: std::time::Duration::from_secs(20),
            ..Default::default()
        }
    }

    fn page(n: u32, y_per_metre: u32) -> Event {
        Event::Page(faxgate_t38::PageStats {
            page: n,
            width: 1728,
            length: 2292,
            x_resolution: 8040,
            y_resolution: y_per_metre,
            image_size: 30_000,
            compression: 4,
            bad_rows: 0,
            longest_bad_row_run: 0,
            ecm_retries: 0,
            bit_rate: 9600,
        })
    }

    #[test]
    fn a_call_without_a_fax_phase_has_no_transport_rate_or_ecm() {
        let start: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        let end = start + SignedDuration::from_secs(25);
        // Answered, then cleared by the caller before any DCS: spandsp still
        // ends with phase E (call dropped) and its defaults.
        for r in [
            report(true, false, vec![], Some(faxgate_t38::CompletionCode::CALL_DROPPED.0)),
            report(false, true, vec![], None),
        ] {
            let mut c = Cdr::blank("cdr-1", "c".into(), Direction::FaxToMail, "acme".parse().unwrap(), start);
            c.fill_from_report(&r, end);
            assert_eq!((c.transport, c.bit_rate, c.ecm, c.resolution.clone()), (None, None, None, None), "{c:?}");
            assert_eq!(c.answer, Some(start + SignedDuration::from_secs(5)));
            assert_eq!((c.pages, c.pages_total), (0, None));
        }
    }

    #[test]
    fn a_received_fax_has_its_rate_resolution_in_dpi_and_page_total() {
        let start: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        let neg = Event::Negotiated(faxgate_t38::Negotiated { bit_rate: 9600, ecm: true, remote_ident: None });
        let mut r = report(true, true, vec![neg, page(1, 7700), page(2, 7700)], Some(0));
        if let Some(res) = &mut r.result {
            (res.bit_rate, res.ecm) = (9600, true);
        }
        let mut c = Cdr::blank("cdr-1", "c".into(), Direction::FaxToMail, "acme".parse().unwrap(), start);
        c.fill_from_report(&r, start + SignedDuration::from_secs(80));
        assert_eq!((c.transport, c.bit_rate, c.ecm), (Some(Transport::T38), Some(9600), Some(true)));
        assert_eq!(c.resolution.as_deref(), Some("204x196"));
        assert_eq!((c.pages, c.pages_total), (2, Some(2)));
        assert_eq!(c.timeline.len(), 2);
        // Cut short: the total is not known.
        let neg = Event::Negotiated(faxgate_t38::Negotiated { bit_rate: 9600, ecm: true, remote_ident: None });
        let r = report(true, false, vec![neg, page(1, 3850)], Some(faxgate_t38::CompletionCode::CALL_DROPPED.0));
        let mut c = Cdr::blank("cdr-2", "c".into(), Direction::FaxToMail, "acme".parse().unwrap(), start);
        c.fill_from_report(&r, start + SignedDuration::from_secs(80));
        assert_eq!((c.transport, c.resolution.as_deref()), (Some(Transport::G711), Some("204x98")));
        assert_eq!((c.pages, c.pages_total), (1, None));
        assert_eq!(resolution_dpi(8040, 15400), "204x391");
    }

    /// A CDR with every field set, times off the millisecond.
    fn full(start: &str) -> Cdr {
        let mut c = sample(start, "alpha", "+4533221100");
        let ns = SignedDuration::from_nanos(1_234_567);
        c.start += ns;
        c.answer = c.answer.map(|t| t + ns + ns);
        c.end -= ns;
        c.direction = Direction::FaxToMail;
        c.emails.push("kopi@hansen-blik.dk".parse().unwrap());
        c.smtp_client = Some("2001:db8::25".parse().unwrap());
        c.sip_signalling = Some("[2001:db8::5]:5061".parse().unwrap());
        c.t30_code = Some(-48);
        c.t30_text = Some("Call disconnected ÆØÅ".into());
        c.sip_status = Some(487);
        c.pages_total = Some(7);
        c.transport = Some(Transport::G711);
        c.ecm = Some(false);
        c.timeline.push(PageEvent { page: 2, at: c.start - ns, bad_rows: 17, ecm_retries: 3 });
        c.attempt = 4;
        c.learned = Some("audio ecm-off 9600".into());
        c
    }

    #[test]
    fn the_compact_encoding_keeps_every_field() {
        let c = full("2026-01-31T23:59:59.500Z");
        let b = encode(&c).unwrap();
        assert_eq!(b[0], COMPACT);
        assert_eq!(decode(&b).unwrap(), c);
        let json = serde_json::to_vec(&c).unwrap();
        assert!(b.len() * 2 < json.len(), "{} bytes against {} in JSON", b.len(), json.len());
        // An id not of new_id's form, and a CDR with nothing optional.
        let blank = Cdr::blank("cdr-1", "c".into(), Direction::MailToFax, "acme".parse().unwrap(), c.start);
        assert_eq!(decode(&encode(&blank).unwrap()).unwrap(), blank);
        let upper = Cdr { id: c.id.to_uppercase(), ..c.clone() };
        assert_eq!(decode(&encode(&upper).unwrap()).unwrap(), upper);
        // A record of the first layout (JSON) still reads.
        assert_eq!(decode(&json).unwrap(), c);
        // Cut short, or with bytes after it, or unknown: an error, not a CDR.
        assert!(decode(&b[..b.len() - 1]).is_err());
        assert!(decode(&[b.as_slice(), &[0]].concat()).is_err());
        assert!(decode(&[7, 1, 2]).is_err());
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn a_store_of_the_first_layout_is_rewritten_when_it_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("d");
        let (a, b, gone) = (
            full("2026-03-02T10:00:00Z"),
            sample("2026-03-05T11:00:00Z", "beta", "+4587654321"),
            sample("2025-01-05T11:00:00Z", "beta", "+4587654321"),
        );
        {
            // Written as the first layout wrote them: JSON, text keys, 32-byte blinds.
            let store = Store::open(&data, &data.join("keys")).unwrap();
            let tree = store.tree(TreeName::Cdr).unwrap();
            for c in [&a, &b, &gone] {
                let place = layout::v1::place(c.start, &c.id);
                let (y, m) = month_of(c.start);
                let mut batch = tree.batch();
                batch.put_sealed(&place, &month_key(y, m).unwrap(), c).unwrap();
                for n in [&c.calling, &c.called].into_iter().flatten() {
                    batch.put_plain(&layout::v1::index_entry(&store, n, &place), b"");
                }
                tree.apply(batch).unwrap();
            }
            // January 2025's key destroyed by a sweep cut short before its records went.
            store.vault().destroy(&month_key(2025, 1).unwrap()).unwrap();
            store.write_witness().unwrap();
        }
        // sled lets go of the database a moment after the last handle is dropped.
        let store = (0..500)
            .find_map(|_| match Store::open(&data, &data.join("keys")) {
                Ok(s) => Some(s),
                Err(_) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    None
                }
            })
            .expect("the store opens again");
        let tree = store.tree(TreeName::Cdr).unwrap();
        assert!(tree.keys_with_prefix(layout::v1::PLACES).unwrap().is_empty());
        assert!(tree.keys_with_prefix(layout::v1::INDEX).unwrap().is_empty());
        let cdrs = CdrStore::open(&store).unwrap();
        assert_eq!(cdrs.list(&CdrFilter::default()).unwrap(), vec![a.clone(), b.clone()]);
        let f = CdrFilter { number: Some("+4587654321".parse().unwrap()), ..Default::default() };
        assert_eq!(cdrs.list(&f).unwrap(), vec![b.clone()]);
        assert_eq!(tree.keys_with_prefix(layout::INDEX).unwrap().len(), 4);
        let destroyed = crate::retention::destroyed_keys(&store).unwrap();
        let report = crate::store::verify::verify(&store, &destroyed).unwrap();
        assert!(report.damage.is_empty(), "{:?}", report.damage);
        // Nothing left to rewrite at the next open.
        assert_eq!(migrate(&store).unwrap(), 0);
    }

    #[test]
    fn verification_finds_records_and_index_entries_that_do_not_agree() {
        use crate::store::verify::{Depth, verify_to};
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("d"), &tmp.path().join("d/keys")).unwrap();
        let cdrs = CdrStore::open(&store).unwrap();
        let a = sample("2026-03-02T10:00:00Z", "alpha", "+4533221100");
        let b = sample("2026-03-05T11:00:00Z", "beta", "+4587654321");
        cdrs.write_many(&[a.clone(), b.clone()]).unwrap();
        let tree = store.tree(TreeName::Cdr).unwrap();
        let verified = |depth| verify_to(&store, &Default::default(), depth).unwrap().damage;
        assert!(verified(Depth::Full).is_empty(), "{:?}", verified(Depth::Full));
        // Each damage below goes through the store's own writes, so the
        // manifest agrees with it: only the checks of the CDR tree find it.
        let named = |depth, what: &str| {
            let damage = verified(depth);
            assert!(damage.iter().any(|d| d.contains(what)), "{what:?} not in {damage:?}");
            assert_eq!(damage.len(), 1, "{damage:?}");
        };

        // An index entry of a's place under b's called number: a's count is off.
        let stray = layout::index_entry(&store, b.called.as_ref().unwrap(), &place(&a));
        let mut batch = tree.batch();
        batch.put_plain(&stray, b"");
        tree.apply(batch).unwrap();
        named(Depth::Full, "an index entry for a number not theirs");
        let mut batch = tree.batch();
        batch.remove(&stray);
        tree.apply(batch).unwrap();

        // One of b's entries missing, then pointing to no CDR.
        let entry = layout::index_entry(&store, b.called.as_ref().unwrap(), &place(&b));
        let mut batch = tree.batch();
        batch.remove(&entry);
        tree.apply(batch).unwrap();
        named(Depth::Full, "without their number index entry");
        let mut orphan = entry.clone();
        *orphan.last_mut().unwrap() ^= 1;
        let mut batch = tree.batch();
        batch.put_plain(&entry, b"");
        batch.put_plain(&orphan, b"");
        tree.apply(batch).unwrap();
        named(Depth::Start, "index entries without their CDR");
        let mut batch = tree.batch();
        batch.remove(&orphan);
        tree.apply(batch).unwrap();

        // A record that authenticates but does not decode, at every start.
        let (y, m) = month_of(a.start);
        let mut bytes = encode(&a).unwrap();
        bytes.push(0);
        let mut batch = tree.batch();
        batch.put_sealed_bytes(&place(&a), &month_key(y, m).unwrap(), &bytes).unwrap();
        tree.apply(batch).unwrap();
        named(Depth::Start, "do not open (damaged)");
        cdrs.write(&a).unwrap();
        assert!(verified(Depth::Full).is_empty(), "{:?}", verified(Depth::Full));
    }

    #[test]
    fn a_month_is_erased_by_its_key_ranges() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("d"), &tmp.path().join("d/keys")).unwrap();
        let cdrs = CdrStore::open(&store).unwrap();
        let jan: Vec<Cdr> = (0..30)
            .map(|i| {
                example(
                    i,
                    "2026-01-01T00:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_hours(i as i64 * 20),
                )
            })
            .collect();
        let feb = sample("2026-02-01T00:00:00Z", "beta", "+4587654321");
        cdrs.write_many(&jan).unwrap();
        cdrs.write(&feb).unwrap();
        assert_eq!(cdrs.erase_month((2026, 1)).unwrap(), 30);
        assert_eq!(cdrs.list(&CdrFilter::default()).unwrap(), vec![feb.clone()]);
        let tree = store.tree(TreeName::Cdr).unwrap();
        assert_eq!(tree.keys_with_prefix(layout::INDEX).unwrap().len(), 2);
        let report = crate::store::verify::verify(&store, &Default::default()).unwrap();
        assert!(report.damage.is_empty(), "{:?}", report.damage);
        assert_eq!(cdrs.erase_month((2026, 1)).unwrap(), 0);
    }

    #[test]
    fn pages_read_only_their_range_and_together_make_the_list() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("d"), &tmp.path().join("d/keys")).unwrap();
        let cdrs = CdrStore::open(&store).unwrap();
        // Three months, two tenants, one number in a fifth of them.
        for i in 0..240u32 {
            let start = format!("2026-{:02}-{:02}T{:02}:{:02}:00Z", 1 + i % 3, 1 + i % 28, i % 24, i % 60);
            let called = if i % 5 == 0 { "+4533221100" } else { "+4544556677" };
            cdrs.write(&sample(&start, if i % 4 == 0 { "beta" } else { "alpha" }, called)).unwrap();
        }
        let month = |m: i8| CdrFilter {
            tenant: Some("alpha".parse().unwrap()),
            since: Some(format!("2026-{m:02}-01T00:00:00Z").parse().unwrap()),
            until: Some(format!("2026-{:02}-01T00:00:00Z", m + 1).parse().unwrap()),
            ..Default::default()
        };
        let by_number = CdrFilter { number: Some("+4533221100".parse().unwrap()), ..month(2) };
        let everything = CdrFilter::default();
        for (filter, limit) in [(month(2), 7), (month(1), 60), (by_number.clone(), 3), (everything, 50)] {
            let whole: Vec<String> = cdrs.list(&filter).unwrap().into_iter().map(|c| c.id).collect();
            assert!(!whole.is_empty());
            let (mut got, mut after, mut pages) = (Vec::new(), None::<Vec<u8>>, 0);
            loop {
                let (items, next) = cdrs.page(&filter, after.as_deref(), limit, |_| true).unwrap();
                assert!(items.len() <= limit);
                pages += 1;
                got.extend(items.into_iter().map(|c| c.id));
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            assert_eq!(got, whole, "{filter:?}");
            assert_eq!(pages, whole.len().div_ceil(limit), "the last page has no next: {filter:?}");
        }
        // What `keep` leaves out is not on a page; a cursor past the end gives nothing.
        let (items, _) =
            cdrs.page(&month(2), None, 1000, |c| c.called.as_ref().unwrap().as_str() != "+4533221100").unwrap();
        assert_eq!(items.len(), cdrs.list(&month(2)).unwrap().len() - cdrs.list(&by_number).unwrap().len());
        let last = place(cdrs.list(&CdrFilter::default()).unwrap().last().unwrap());
        assert_eq!(cdrs.page(&CdrFilter::default(), Some(&last), 10, |_| true).unwrap(), (vec![], None));
    }

    #[test]
    fn written_listed_filtered_and_exported() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("d"), &tmp.path().join("d/keys")).unwrap();
        let cdrs = CdrStore::open(&store).unwrap();
        let a = sample("2026-01-31T23:59:59.500Z", "alpha", "+4533221100");
        let b = sample("2026-02-01T00:00:00Z", "beta", "+4587654321");
        cdrs.write(&b).unwrap();
        cdrs.write(&a).unwrap();
        let all = cdrs.list(&CdrFilter::default()).unwrap();
        assert_eq!(all, vec![a.clone(), b.clone()]);
        assert!(store.vault().get(&month_key(2026, 1).unwrap()).unwrap().is_some());
        assert!(store.vault().get(&month_key(2026, 2).unwrap()).unwrap().is_some());
        let f = CdrFilter { tenant: Some("beta".parse().unwrap()), ..Default::default() };
        assert_eq!(cdrs.list(&f).unwrap(), vec![b.clone()]);
        let f = CdrFilter { number: Some("+4533221100".parse().unwrap()), ..Default::default() };
        assert_eq!(cdrs.list(&f).unwrap(), vec![a.clone()]);
        let f = CdrFilter { since: Some("2026-02-01T00:00:00Z".parse().unwrap()), ..Default::default() };
        assert_eq!(cdrs.list(&f).unwrap(), vec![b.clone()]);
        let f = CdrFilter { until: Some("2026-02-01T00:00:00Z".parse().unwrap()), ..Default::default() };
        assert_eq!(cdrs.list(&f).unwrap(), vec![a.clone()]);
        let csv = to_csv(&all).unwrap();
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        assert_eq!(r.headers().unwrap().len(), CSV_COLUMNS.len());
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][6], "+4533221100");
        assert_eq!(&rows[1][11], "2026-02-01T00:00:00Z");
        // Destroying January's key erases January's CDR, not February's.
        store.vault().destroy(&month_key(2026, 1).unwrap()).unwrap();
        assert_eq!(cdrs.list(&CdrFilter::default()).unwrap(), vec![b]);
        let p = cdrs.places().unwrap();
        assert_eq!(parse_place(&p[0]).unwrap(), ((2026, 1), a.start.round(jiff::Unit::Millisecond).unwrap()));
    }
}
