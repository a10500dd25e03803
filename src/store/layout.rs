//! The store's layout: every tree and every key encoding, with typed
//! constructors. No other file spells raw key bytes or a blinding domain.
//!
//! Keys are `<tag> 0x00 <parts>`; a part derived from personal data (a
//! number, an address, a domain, an account reference) is its keyed hash
//! (`Store::blind`) in a domain of its own, never the value. Ids (tenant
//! slugs, account, job and CDR ids) are not personal data and appear as
//! text, so that listings by prefix need no key.

use jiff::Timestamp;

use super::Store;
use crate::types::{AccountId, Domain, E164, JobId, TenantId};

/// The trees (keyspaces) of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TreeName {
    /// Tenants, accounts, numbers, routes, senders and their indexes.
    Directory,
    /// Accepted mail, its fax jobs and pages, calls being received.
    Mail,
    /// Outgoing mail and its once-markers.
    Outbox,
    /// Call detail records and their number index.
    Cdr,
    /// Legal holds.
    Holds,
    /// GDPR restrictions of processing.
    Restrictions,
    /// What calls to a destination needed, per tenant ([`crate::learned`]).
    Learned,
    /// The audit of admin changes ([`crate::admin::audit`]).
    AdminAudit,
}

impl TreeName {
    /// Every tree.
    pub const ALL: [TreeName; 8] = [
        TreeName::Directory,
        TreeName::Mail,
        TreeName::Outbox,
        TreeName::Cdr,
        TreeName::Holds,
        TreeName::Restrictions,
        TreeName::Learned,
        TreeName::AdminAudit,
    ];

    /// Its name in sled (and in the sealed records' associated data).
    pub fn as_str(self) -> &'static str {
        match self {
            TreeName::Directory => "directory",
            TreeName::Mail => "mail",
            TreeName::Outbox => "outbox",
            TreeName::Cdr => "cdr",
            TreeName::Holds => "holds",
            TreeName::Restrictions => "restrictions",
            TreeName::Learned => "learned",
            TreeName::AdminAudit => "admin-audit",
        }
    }
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&0u8)
}

/// The key of a tree's manifest entry ([`super::Manifest`]), in every
/// tree; listings never show it.
pub const MANIFEST: &[u8] = b"\xff\xff\xffmanifest";

/// The key that hashes numbers, addresses and names in log lines
/// ([`faxgate_retention::logid`]): derived from the install-wide index key
/// in a blinding domain of its own, so that it is stable across restarts,
/// needs no file of its own, and a log hash is never an index key.
pub fn log_key(store: &Store) -> faxgate_retention::Key {
    faxgate_retention::Key::from_bytes(store.blind("log-id", ""))
}

/// Whether the value under `key` in `tree` is a sealed record (otherwise a
/// plain value: an id, a time, or nothing).
pub fn is_sealed(tree: TreeName, key: &[u8]) -> bool {
    let tag = key.split(|&b| b == 0).next().unwrap_or(key);
    match tree {
        TreeName::Directory => matches!(tag, b"t" | b"a" | b"n" | b"s" | b"tk" | b"wh" | b"rt" | b"bc"),
        TreeName::Mail => matches!(tag, b"j" | b"m" | b"f" | b"p" | b"r"),
        TreeName::Outbox => tag == b"o" || tag == b"w",
        TreeName::Cdr => key.starts_with(cdr::PLACES) || key.starts_with(cdr::v1::PLACES),
        TreeName::Holds | TreeName::Restrictions | TreeName::Learned | TreeName::AdminAudit => true,
    }
}

/// The `directory` tree.
pub mod directory {
    use super::*;

    const NUMBER: &str = "number";
    const SENDER: &str = "sender";
    const DOMAIN: &str = "fax-domain";
    const REFERENCE: &str = "account-reference";

    /// A tenant's record: `t 0 <slug>`.
    pub fn tenant(id: &TenantId) -> Vec<u8> {
        key(&[b"t", id.as_str().as_bytes()])
    }

    /// The prefix of every tenant record.
    pub const TENANTS: &[u8] = b"t\0";

    /// A tenant's claims waiting for proof (sealed, the tenant's key): `tc 0 <slug>`.
    pub fn claims(id: &TenantId) -> Vec<u8> {
        key(&[b"tc", id.as_str().as_bytes()])
    }

    /// The owner of a fax domain (plain value: the tenant's slug): `d 0 <blind>`.
    pub fn domain(store: &Store, d: &Domain) -> Vec<u8> {
        key(&[b"d", &store.blind(DOMAIN, d.as_str())])
    }

    /// An account's record: `a 0 <tenant> 0 <account>`.
    pub fn account(tenant: &TenantId, id: &AccountId) -> Vec<u8> {
        key(&[b"a", tenant.as_str().as_bytes(), id.to_text().as_bytes()])
    }

    /// The prefix of a tenant's account records, or of every account's.
    pub fn accounts(tenant: Option<&TenantId>) -> Vec<u8> {
        match tenant {
            Some(t) => key(&[b"a", t.as_str().as_bytes(), b""]),
            None => b"a\0".to_vec(),
        }
    }

    /// Which tenant an account belongs to (plain value: the slug): `ai 0 <account>`.
    pub fn account_tenant(id: &AccountId) -> Vec<u8> {
        key(&[b"ai", id.to_text().as_bytes()])
    }

    /// The prefix of every account reference.
    pub const REFERENCES: &[u8] = b"ar\0";

    /// An account reference, unique within its tenant (plain value: the account id): `ar 0 <blind>`.
    pub fn reference(store: &Store, tenant: &TenantId, reference: &str) -> Vec<u8> {
        key(&[b"ar", &store.blind(REFERENCE, &format!("{tenant}\0{reference}"))])
    }

    /// An API token's record: `tk 0 <tenant> 0 <account, or nothing> 0 <token id>`
    /// (an operator token: `tk 0 0 0 <token id>`; no tenant id is empty).
    pub fn token(tenant: Option<&TenantId>, account: Option<&AccountId>, id: &str) -> Vec<u8> {
        let account = account.map(|a| a.to_text()).unwrap_or_default();
        let tenant = tenant.map(TenantId::as_str).unwrap_or_default();
        key(&[b"tk", tenant.as_bytes(), account.as_bytes(), id.as_bytes()])
    }

    /// The prefix of a tenant's tokens (its accounts' too), or of one account's.
    pub fn tokens(tenant: &TenantId, account: Option<&AccountId>) -> Vec<u8> {
        match account {
            Some(a) => key(&[b"tk", tenant.as_str().as_bytes(), a.to_text().as_bytes(), b""]),
            None => key(&[b"tk", tenant.as_str().as_bytes(), b""]),
        }
    }

    /// The prefix of every token.
    pub const TOKENS: &[u8] = b"tk\0";

    /// Where a token's record is (plain value: the record's key): `ti 0 <token id>`.
    pub fn token_index(id: &str) -> Vec<u8> {
        key(&[b"ti", id.as_bytes()])
    }

    /// A webhook's record: `wh 0 <tenant> 0 <account, or nothing> 0 <webhook id>`.
    pub fn webhook(tenant: &TenantId, account: Option<&AccountId>, id: &str) -> Vec<u8> {
        let account = account.map(|a| a.to_text()).unwrap_or_default();
        key(&[b"wh", tenant.as_str().as_bytes(), account.as_bytes(), id.as_bytes()])
    }

    /// The prefix of a tenant's webhooks (its accounts' too), or of one account's.
    pub fn webhooks(tenant: &TenantId, account: Option<&AccountId>) -> Vec<u8> {
        match account {
            Some(a) => key(&[b"wh", tenant.as_str().as_bytes(), a.to_text().as_bytes(), b""]),
            None => key(&[b"wh", tenant.as_str().as_bytes(), b""]),
        }
    }

    /// The prefix of every webhook.
    pub const WEBHOOKS: &[u8] = b"wh\0";

    /// A tenant's rating rules (billing): `rt 0 <tenant>`.
    pub fn rating(tenant: &TenantId) -> Vec<u8> {
        key(&[b"rt", tenant.as_str().as_bytes()])
    }

    /// A closed billing month: `bc 0 <tenant> 0 <level> 0 <YYYY-MM>`.
    pub fn closure(tenant: &TenantId, level: &str, month: &str) -> Vec<u8> {
        key(&[b"bc", tenant.as_str().as_bytes(), level.as_bytes(), month.as_bytes()])
    }

    /// The prefix of a tenant's closed billing months.
    pub fn closures(tenant: &TenantId) -> Vec<u8> {
        key(&[b"bc", tenant.as_str().as_bytes(), b""])
    }

    /// Where a webhook's record is (plain value: the record's key): `wi 0 <webhook id>`.
    pub fn webhook_index(id: &str) -> Vec<u8> {
        key(&[b"wi", id.as_bytes()])
    }

    /// The token (or webhook) id a record's key ends in.
    pub fn token_id_of(record: &[u8]) -> Option<&[u8]> {
        record.rsplit(|&b| b == 0).next()
    }

    /// What is filed under an account: its numbers and its senders.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Owned {
        /// Fax numbers: `n 0 <blind>`, indexed by `an 0 <account> 0 <blind>`.
        Numbers,
        /// Senders: `s 0 <blind>`, indexed by `as 0 <account> 0 <blind>`.
        Senders,
    }

    impl Owned {
        fn tags(self) -> (&'static [u8], &'static [u8]) {
            match self {
                Owned::Numbers => (b"n", b"an"),
                Owned::Senders => (b"s", b"as"),
            }
        }

        /// The prefix of an account's index entries of this kind.
        pub fn index_prefix(self, account: &AccountId) -> Vec<u8> {
            key(&[self.tags().1, account.to_text().as_bytes(), b""])
        }

        /// The record an index entry (found under [`Self::index_prefix`]) points to.
        pub fn record_of_index(self, account: &AccountId, index: &[u8]) -> Option<Vec<u8>> {
            let blind = index.strip_prefix(self.index_prefix(account).as_slice())?;
            Some(key(&[self.tags().0, blind]))
        }
    }

    fn pair(kind: Owned, account: &AccountId, blind: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (main, idx) = kind.tags();
        (key(&[main, blind]), key(&[idx, account.to_text().as_bytes(), blind]))
    }

    /// A number's record, and its entry in its account's index.
    pub fn number(store: &Store, account: &AccountId, n: &E164) -> (Vec<u8>, Vec<u8>) {
        pair(Owned::Numbers, account, &store.blind(NUMBER, n.as_str()))
    }

    /// A number's record, whoever owns it.
    pub fn number_record(store: &Store, n: &E164) -> Vec<u8> {
        key(&[b"n", &store.blind(NUMBER, n.as_str())])
    }

    /// A sender's record (by its canonical pattern), and its entry in its account's index.
    pub fn sender(store: &Store, account: &AccountId, pattern: &str) -> (Vec<u8>, Vec<u8>) {
        pair(Owned::Senders, account, &store.blind(SENDER, pattern))
    }

    /// A sender's record, whoever owns it.
    pub fn sender_record(store: &Store, pattern: &str) -> Vec<u8> {
        key(&[b"s", &store.blind(SENDER, pattern)])
    }
}

/// The `mail` tree: mail accepted over SMTP and what becomes of it.
pub mod mail {
    use super::*;

    const DEDUPE: &str = "mail-dedupe";

    /// An accepted mail's job record: `j 0 <mail id>`.
    pub fn job(id: &JobId) -> Vec<u8> {
        key(&[b"j", id.to_text().as_bytes()])
    }

    /// A message kept in sled (stores written before messages moved to
    /// sealed files beside it): `m 0 <mail id>`.
    pub fn message(id: &JobId) -> Vec<u8> {
        key(&[b"m", id.to_text().as_bytes()])
    }

    /// A mail waiting to be taken up by the gateway: `q 0 <mail id>`.
    pub fn pending(id: &JobId) -> Vec<u8> {
        key(&[b"q", id.to_text().as_bytes()])
    }

    /// The prefix of the pending mails.
    pub const PENDING: &[u8] = b"q\0";

    /// The mail id a [`pending`] key names.
    pub fn pending_id(k: &[u8]) -> Result<JobId, String> {
        String::from_utf8_lossy(k.strip_prefix(PENDING).unwrap_or(k)).parse()
    }

    /// A duplicate-detection entry (plain value: `<job id> <ms>`): `d 0 <blind>`.
    pub fn dedupe(store: &Store, mail_from: &str, message_id: Option<&str>, sha256: &str) -> Vec<u8> {
        let blinded =
            store.blind(DEDUPE, &format!("{}\0{}\0{sha256}", mail_from.to_lowercase(), message_id.unwrap_or("")));
        key(&[b"d", &blinded])
    }

    /// The prefix of the duplicate-detection entries.
    pub const DEDUPES: &[u8] = b"d\0";

    /// A fax job (one recipient of a mail): `f 0 <job id>`.
    pub fn fax_job(id: &JobId) -> Vec<u8> {
        key(&[b"f", id.to_text().as_bytes()])
    }

    /// The prefix of the fax jobs.
    pub const FAX_JOBS: &[u8] = b"f\0";

    /// A mail's rendered pages: `p 0 <mail id>`.
    pub fn pages(mail: &JobId) -> Vec<u8> {
        key(&[b"p", mail.to_text().as_bytes()])
    }

    /// A call being received: `r 0 <cdr id>`.
    pub fn rx(cdr_id: &str) -> Vec<u8> {
        key(&[b"r", cdr_id.as_bytes()])
    }

    /// The prefix of the calls being received.
    pub const RX: &[u8] = b"r\0";
}

/// The `outbox` tree: faxgate's own outgoing mail.
pub mod outbox {
    use super::*;

    const ONCE: &str = "outbox-once";

    /// An outgoing message: `o 0 <id>`.
    pub fn message(id: &JobId) -> Vec<u8> {
        key(&[b"o", id.to_text().as_bytes()])
    }

    /// The prefix of the outgoing messages.
    pub const MESSAGES: &[u8] = b"o\0";

    /// A marker that a message was queued once (plain value: a time): `n 0 <blind>`.
    pub fn once(store: &Store, what: &str) -> Vec<u8> {
        key(&[b"n", &store.blind(ONCE, what)])
    }

    /// The prefix of the once-markers.
    pub const ONCES: &[u8] = b"n\0";
}

/// The `cdr` tree (layout 2; layout 1 is [`cdr::v1`], rewritten at open).
///
/// A CDR's place is `p <year u16> <month u8> <start ms u64> <id>`, all
/// big-endian binary (29 bytes for an id of [`crate::cdr::CdrStore::new_id`]):
/// time order within a month, and the month and start readable without a
/// key, which is all the retention sweeper and the audit need. An index
/// entry `n <year> <month> <blind(number), 8 bytes> <start ms> <id>` (37
/// bytes, empty value) per calling and called number finds one number's
/// CDRs of a month without opening the others. A month's places and index
/// entries are each one contiguous key range, removed by prefix.
///
/// The blinded number is truncated to 8 bytes of its keyed hash: a reader
/// opens every CDR an entry points to and keeps it only if its calling or
/// called number is the one asked for, so two numbers sharing 64 bits (for
/// 100,000 numbers in a month, a chance of about 3 in 10^10) cost one
/// extra record opened, never a wrong answer; and the hash stays keyed, so
/// the shorter form tells no more about the number than the full one.
pub mod cdr {
    use super::*;

    const NUMBER: &str = "cdr-number";
    /// Bytes of the blinded number kept in an index entry.
    pub const BLIND_LEN: usize = 8;
    const PLACE_TAG: u8 = b'p';
    const INDEX_TAG: u8 = b'n';
    /// `tag year month`.
    const MONTH_LEN: usize = 4;
    /// An id of [`crate::cdr::CdrStore::new_id`] (`cdr-` and a UUID's 32
    /// hex digits) is kept as `1` and its 16 bytes; another as `0` and its text.
    const ID_UUID: u8 = 1;
    const ID_TEXT: u8 = 0;

    /// The month (`YYYY-MM`, UTC) of a time.
    pub fn month_of(t: Timestamp) -> (i16, i8) {
        let d = t.to_zoned(jiff::tz::TimeZone::UTC).date();
        (d.year(), d.month())
    }

    fn month_prefix(tag: u8, (y, m): (i16, i8)) -> Vec<u8> {
        let mut k = Vec::with_capacity(40);
        k.push(tag);
        k.extend_from_slice(&(y as u16).to_be_bytes());
        k.push(m as u8);
        k
    }

    fn id_bytes(id: &str, k: &mut Vec<u8>) {
        match id.strip_prefix("cdr-").filter(|h| h.len() == 32).and_then(|h| uuid::Uuid::try_parse(h).ok()) {
            Some(u) if id == format!("cdr-{}", u.simple()) => {
                k.push(ID_UUID);
                k.extend_from_slice(u.as_bytes());
            }
            _ => {
                k.push(ID_TEXT);
                k.extend_from_slice(id.as_bytes());
            }
        }
    }

    /// Where the CDR with this start and id is kept: writing the same CDR
    /// again replaces it, so a retried write never duplicates a CDR.
    pub fn place(start: Timestamp, id: &str) -> Vec<u8> {
        let mut k = month_prefix(PLACE_TAG, month_of(start));
        k.extend_from_slice(&(start.as_millisecond() as u64).to_be_bytes());
        id_bytes(id, &mut k);
        k
    }

    /// The prefix of every place.
    pub const PLACES: &[u8] = b"p";

    /// The prefix of a month's places.
    pub fn month_places(month: (i16, i8)) -> Vec<u8> {
        month_prefix(PLACE_TAG, month)
    }

    fn parse_month(key: &[u8]) -> Option<(i16, i8)> {
        let y = u16::from_be_bytes(key.get(1..3)?.try_into().ok()?) as i16;
        let m = *key.get(3)? as i8;
        (1..=12).contains(&m).then_some((y, m))
    }

    /// The month and start time a place names.
    pub fn parse_place(key: &[u8]) -> Option<((i16, i8), Timestamp)> {
        if key.first() != Some(&PLACE_TAG) {
            return None;
        }
        let month = parse_month(key)?;
        let ms: [u8; 8] = key.get(MONTH_LEN..MONTH_LEN + 8)?.try_into().ok()?;
        let t = Timestamp::from_millisecond(u64::from_be_bytes(ms) as i64).ok()?;
        Some((month, t))
    }

    /// The CDR id a place names.
    pub fn id_of_place(key: &[u8]) -> Option<String> {
        let rest = key.get(MONTH_LEN + 8..)?;
        match rest.split_first()? {
            (&ID_UUID, b) => Some(format!("cdr-{}", uuid::Uuid::from_slice(b).ok()?.simple())),
            (&ID_TEXT, b) => String::from_utf8(b.to_vec()).ok(),
            _ => None,
        }
    }

    /// The prefix of a month's index entries.
    pub fn month_index(month: (i16, i8)) -> Vec<u8> {
        month_prefix(INDEX_TAG, month)
    }

    /// The prefix of every index entry.
    pub const INDEX: &[u8] = b"n";

    /// The prefix of one number's index entries in a month.
    pub fn number_index(store: &Store, month: (i16, i8), n: &E164) -> Vec<u8> {
        let mut k = month_index(month);
        k.extend_from_slice(&store.blind(NUMBER, n.as_str())[..BLIND_LEN]);
        k
    }

    /// The index entry of `place` under one of its numbers.
    pub fn index_entry(store: &Store, n: &E164, place: &[u8]) -> Vec<u8> {
        let month = parse_month(place).unwrap_or((0, 0));
        let mut k = number_index(store, month, n);
        k.extend_from_slice(place.get(MONTH_LEN..).unwrap_or_default());
        k
    }

    /// The place an index entry points to.
    pub fn place_of_index(entry: &[u8]) -> Option<Vec<u8>> {
        if entry.first() != Some(&INDEX_TAG) || entry.len() <= MONTH_LEN + BLIND_LEN + 8 {
            return None;
        }
        parse_month(entry)?;
        let mut p = vec![PLACE_TAG];
        p.extend_from_slice(&entry[1..MONTH_LEN]);
        p.extend_from_slice(&entry[MONTH_LEN + BLIND_LEN..]);
        Some(p)
    }

    /// Layout 1, of stores written before CDRs were kept in binary:
    /// places `c <YYYY-MM> 0 <start ms> 0 <id>` holding the CDR as JSON,
    /// index entries `i <YYYY-MM> 0 <blind(number), 32 bytes> <place>`.
    /// Only the rewrite at open reads it ([`crate::cdr::migrate`]).
    pub mod v1 {
        use super::*;

        /// The prefix of every place.
        pub const PLACES: &[u8] = b"c";
        /// The prefix of every index entry.
        pub const INDEX: &[u8] = b"i";

        /// Where a CDR was kept.
        pub fn place(start: Timestamp, id: &str) -> Vec<u8> {
            let (y, m) = month_of(start);
            let mut k = format!("c{y:04}-{m:02}").into_bytes();
            k.push(0);
            k.extend_from_slice(&(start.as_millisecond() as u64).to_be_bytes());
            k.push(0);
            k.extend_from_slice(id.as_bytes());
            k
        }

        /// The index entry of `place` under one of its numbers.
        pub fn index_entry(store: &Store, n: &E164, place: &[u8]) -> Vec<u8> {
            let mut k = b"i".to_vec();
            k.extend_from_slice(place.get(1..9).unwrap_or_default());
            k.extend_from_slice(&store.blind(NUMBER, n.as_str()));
            k.extend_from_slice(place);
            k
        }

        /// The place an index entry points to.
        pub fn place_of_index(entry: &[u8]) -> Option<&[u8]> {
            entry.get(9 + 32..).filter(|p| p.starts_with(PLACES))
        }
    }
}

/// The `holds` tree: a hold's record under its id.
pub mod holds {
    /// A hold's record.
    pub fn hold(id: &str) -> Vec<u8> {
        id.as_bytes().to_vec()
    }

    /// Every hold.
    pub const ALL: &[u8] = b"";
}

/// The `restrictions` tree: a restricted subject's record under its keyed hash.
pub mod restrictions {
    use super::Store;

    const SUBJECT: &str = "restriction";

    /// A subject's restriction (the subject as text: a number or an address).
    pub fn subject(store: &Store, subject: &str) -> Vec<u8> {
        store.blind(SUBJECT, subject).to_vec()
    }

    /// Every restriction.
    pub const ALL: &[u8] = b"";
}

/// The `learned` tree: what calls to a destination needed, per tenant.
///
/// An entry is `<tenant> 0 <blind(tenant, number)>`: a tenant's entries
/// list by prefix, and the same number has unrelated keys in two tenants.
pub mod learned {
    use super::*;

    const DESTINATION: &str = "learned-destination";

    /// A destination's entry in a tenant.
    pub fn entry(store: &Store, tenant: &TenantId, n: &E164) -> Vec<u8> {
        key(&[tenant.as_str().as_bytes(), &store.blind(DESTINATION, &format!("{tenant}\0{}", n.as_str()))])
    }

    /// The prefix of a tenant's entries, or of every entry.
    pub fn tenant(tenant: Option<&TenantId>) -> Vec<u8> {
        match tenant {
            Some(t) => key(&[t.as_str().as_bytes(), b""]),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_round_trip_and_sort_by_time() {
        let t1: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        let t2: Timestamp = "2026-03-01T10:00:00.001Z".parse().unwrap();
        let p1 = cdr::place(t1, "cdr-b");
        let p2 = cdr::place(t2, "cdr-a");
        assert!(p1 < p2);
        assert_eq!(cdr::parse_place(&p1), Some(((2026, 3), t1)));
        assert_eq!(cdr::parse_place(b"x"), None);
        // An id of the usual form is kept as its 16 bytes.
        let id = "cdr-0190f2a3b4c57d8e9f00112233445566";
        let p = cdr::place(t1, id);
        assert_eq!(p.len(), 29);
        assert!(p.starts_with(&cdr::month_places((2026, 3))));
        assert_ne!(p, cdr::place(t1, "cdr-0190f2a3b4c57d8e9f00112233445567"));
        // Not in lowercase: not the usual form, kept as text, a place of its own.
        assert_ne!(cdr::place(t1, &id.to_uppercase().replace("CDR-", "cdr-")), p);
        let id: JobId = JobId::generate();
        assert_eq!(mail::pending_id(&mail::pending(&id)).unwrap(), id);
    }
}
