//! Call detail records: one per transmission attempt, in either direction.
//!
//! A CDR is sealed with the key of its calendar month of communication (UTC
//! month of its start), so the records of a month can be erased together by
//! destroying one key once the last of them has passed its retention period.
//! Its place in the `cdr` tree is `c<YYYY-MM> 0x00 <start ms, big-endian>
//! 0x00 <id>`: time order within a month, and the month readable without a
//! key, which is all the retention sweeper and the audit need. An index
//! entry `i<YYYY-MM> 0x00 <blind(number)> <place>` per calling and called
//! number, written in the same atomic batch, finds one number's CDRs of a
//! month without opening the others; it holds no number in plaintext and
//! goes with its CDR.

use std::net::SocketAddr;
use std::sync::Arc;

use faxgate_retention::KeyId;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::store::{Store, Tree};
use crate::types::{AccountId, E164, EmailAddress, TenantId};

/// Keys removed per flushed batch when CDRs are erased.
const REMOVE_CHUNK: usize = 5_000;

/// Which way the fax went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Mail in, fax out.
    MailToFax,
    /// Fax in, mail out.
    FaxToMail,
}

/// How the fax was carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// T.38 over UDPTL.
    T38,
    /// G.711 audio over RTP.
    G711,
}

/// One page as it crossed the line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageEvent {
    /// Page number, from 1.
    pub page: u32,
    /// When the page completed.
    pub at: Timestamp,
    /// Bad rows (non-ECM), or 0.
    pub bad_rows: u32,
    /// ECM retransmissions.
    pub ecm_retries: u32,
}

/// A call detail record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    pub smtp_client: Option<std::net::IpAddr>,
    /// SIP signalling peer.
    pub sip_signalling: Option<SocketAddr>,
    /// Media peer.
    pub sip_media: Option<SocketAddr>,
    /// Start of the attempt.
    pub start: Timestamp,
    /// When the call was answered.
    pub answer: Option<Timestamp>,
    /// End of the attempt.
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
}

/// Which CDRs to list.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CdrFilter {
    /// Only this tenant's.
    pub tenant: Option<TenantId>,
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

/// The month (`YYYY-MM`, UTC) of a time.
pub fn month_of(t: Timestamp) -> (i16, i8) {
    let d = t.to_zoned(jiff::tz::TimeZone::UTC).date();
    (d.year(), d.month())
}

fn month_text((y, m): (i16, i8)) -> String {
    format!("{y:04}-{m:02}")
}

fn place(c: &Cdr) -> Vec<u8> {
    place_for(c.start, &c.id)
}

/// Where the CDR with this start and id is kept: writing the same CDR again
/// replaces it, so a retried write never duplicates a CDR.
pub fn place_for(start: Timestamp, id: &str) -> Vec<u8> {
    let mut k = b"c".to_vec();
    k.extend_from_slice(month_text(month_of(start)).as_bytes());
    k.push(0);
    k.extend_from_slice(&(start.as_millisecond() as u64).to_be_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The month and start time a CDR's place names.
pub fn parse_place(key: &[u8]) -> Option<((i16, i8), Timestamp)> {
    let key = key.strip_prefix(b"c")?;
    let month = std::str::from_utf8(key.get(..7)?).ok()?;
    let y: i16 = month.get(..4)?.parse().ok()?;
    let m: i8 = month.get(5..7)?.parse().ok()?;
    let ms: [u8; 8] = key.get(8..16)?.try_into().ok()?;
    let t = Timestamp::from_millisecond(u64::from_be_bytes(ms) as i64).ok()?;
    Some(((y, m), t))
}

impl CdrStore {
    /// The CDRs in `store`.
    pub fn open(store: &Store) -> Result<Self, Error> {
        Ok(CdrStore { tree: Arc::new(store.tree("cdr")?), store: store.clone() })
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
        b.put_sealed(&place, &KeyId::cdr_month(y, m)?, c)?;
        for n in [&c.calling, &c.called].into_iter().flatten() {
            b.put_plain(&self.index_key((y, m), n, &place), b"");
        }
        self.tree.apply(b)
    }

    fn index_prefix(&self, month: (i16, i8), n: &E164) -> Vec<u8> {
        let mut k = b"i".to_vec();
        k.extend_from_slice(month_text(month).as_bytes());
        k.push(0);
        k.extend_from_slice(&self.store.blind("cdr-number", n.as_str()));
        k
    }

    fn index_key(&self, month: (i16, i8), n: &E164, place: &[u8]) -> Vec<u8> {
        let mut k = self.index_prefix(month, n);
        k.extend_from_slice(place);
        k
    }

    /// Writes many CDRs in one batch and one flush (loading, benchmarks).
    pub fn write_many(&self, cdrs: &[Cdr]) -> Result<(), Error> {
        let mut b = self.tree.batch();
        for c in cdrs {
            let (y, m) = month_of(c.start);
            let place = place(c);
            b.put_sealed(&place, &KeyId::cdr_month(y, m)?, c)?;
            for n in [&c.calling, &c.called].into_iter().flatten() {
                b.put_plain(&self.index_key((y, m), n, &place), b"");
            }
        }
        self.tree.apply(b)
    }

    /// The places of every CDR, in order (no key needed).
    pub fn places(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.tree.keys_with_prefix(b"c")
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
        match self.tree.get_sealed(k) {
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
                    let prefix = self.index_prefix(month, n);
                    for k in self.tree.keys_with_prefix(&prefix)? {
                        places.push(k[prefix.len()..].to_vec());
                    }
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

    /// The CDR at `place`.
    pub fn get(&self, place: &[u8]) -> Result<Option<Cdr>, Error> {
        self.tree.get_sealed(place)
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
            let mut prefix = b"i".to_vec();
            prefix.extend_from_slice(month_text(month).as_bytes());
            prefix.push(0);
            for k in self.tree.keys_with_prefix(&prefix)? {
                // index entry: prefix, 32-byte blind, place
                if k.get(prefix.len() + 32..).is_some_and(|p| gone.contains(p)) {
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

    /// Index entries of a month whose CDRs are all gone (after the month's key was destroyed).
    pub fn remove_month_index(&self, month: (i16, i8)) -> Result<usize, Error> {
        let mut prefix = b"i".to_vec();
        prefix.extend_from_slice(month_text(month).as_bytes());
        prefix.push(0);
        let keys = self.tree.keys_with_prefix(&prefix)?;
        self.remove_in_chunks(&keys)?;
        Ok(keys.len())
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
        answer: Some(start + jiff::SignedDuration::from_secs(3)),
        end: start + jiff::SignedDuration::from_secs(65),
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
            PageEvent { page: 1, at: start + jiff::SignedDuration::from_secs(35), bad_rows: 0, ecm_retries: 0 },
            PageEvent { page: 2, at: start + jiff::SignedDuration::from_secs(62), bad_rows: 0, ecm_retries: 1 },
        ],
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
            answer: Some(start + jiff::SignedDuration::from_secs(3)),
            end: start + jiff::SignedDuration::from_secs(70),
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
                at: start + jiff::SignedDuration::from_secs(40),
                bad_rows: 0,
                ecm_retries: 0,
            }],
        }
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
        assert!(store.vault().get(&KeyId::cdr_month(2026, 1).unwrap()).unwrap().is_some());
        assert!(store.vault().get(&KeyId::cdr_month(2026, 2).unwrap()).unwrap().is_some());
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
        store.vault().destroy(&KeyId::cdr_month(2026, 1).unwrap()).unwrap();
        assert_eq!(cdrs.list(&CdrFilter::default()).unwrap(), vec![b]);
        let p = cdrs.places().unwrap();
        assert_eq!(parse_place(&p[0]).unwrap(), ((2026, 1), a.start.round(jiff::Unit::Millisecond).unwrap()));
    }
}
