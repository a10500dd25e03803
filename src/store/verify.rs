//! `faxgate store verify`: damage is found and named, never run on.
//!
//! What it checks:
//! - every tree against its manifest (the count and digest its writers kept
//!   in the same batches as their writes) and against the copy of the
//!   manifests beside the store: entries lost, added or changed since a
//!   write, and writes lost since the copy was taken (a tree whose batch
//!   number is behind the copy's);
//! - every sealed record opens: one that fails authentication is damaged;
//!   one whose key is missing, and the retention trail does not say the key
//!   was destroyed, has lost its key; every CDR decodes;
//! - every key: a damaged key file is named (a key fault: the data of its
//!   owner cannot be opened until it is restored); keys that seal nothing are
//!   listed, for an operator to look at;
//! - the indexes: every index entry points to a record and every record has
//!   its index entries (numbers, senders and accounts in the directory, CDRs
//!   by number, pending mail and pages by their mail); at full depth, a CDR
//!   has no index entry under a number not its own.
//!
//! What it cannot: writes made in the last seconds before a crash, while
//! the copy beside the store was older than them, are not known to have
//! existed; a damaged tree that sled itself cannot open is sled's error.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use faxgate_retention::KeyId;
use serde::{Deserialize, Serialize};

use super::layout::{self, TreeName};
use super::{Manifest, Store};
use crate::Error;
use crate::directory::{Account, FaxNumber, Sender};

/// Damaged records or index entries listed per problem, at most.
const FIRST_KEYS: usize = 5;

/// Counts the entries of a tree (the manifest entry not counted) and their digest.
pub(super) fn count(name: TreeName, tree: &sled::Tree) -> Result<Manifest, Error> {
    let mut m = Manifest::default();
    for kv in tree.iter() {
        let (k, v) = kv?;
        if k.as_ref() == layout::MANIFEST {
            continue;
        }
        m.count += 1;
        m.toggle(name.as_str(), &k, &v);
    }
    Ok(m)
}

/// One tree as verification found it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TreeCheck {
    /// The tree.
    pub tree: String,
    /// Entries found.
    pub entries: u64,
    /// Its manifest, if it has one.
    pub manifest: Option<Manifest>,
    /// The copy beside the store, if it has one of this tree.
    pub witnessed: Option<Manifest>,
}

/// What `faxgate store verify` found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    /// No damage (key faults and unused keys aside).
    pub ok: bool,
    /// Damage, each naming the tree or key and the first keys concerned.
    pub damage: Vec<String>,
    /// Damaged key files: the data of their owners cannot be opened.
    pub key_faults: Vec<String>,
    /// Keys that seal no record here (an interrupted write, or records lost).
    pub unused_keys: Vec<String>,
    /// The trees.
    pub trees: Vec<TreeCheck>,
    /// Sealed records opened.
    pub records: u64,
    /// Records whose key was destroyed by the sweeper or an erasure, not yet removed.
    pub erased_not_removed: u64,
}

fn show(key: &[u8]) -> String {
    key.iter().map(|&b| if b.is_ascii_graphic() { (b as char).to_string() } else { format!("\\x{b:02x}") }).collect()
}

fn first(keys: &[Vec<u8>]) -> String {
    let mut s: Vec<String> = keys.iter().take(FIRST_KEYS).map(|k| show(k)).collect();
    if keys.len() > FIRST_KEYS {
        s.push(format!("and {} more", keys.len() - FIRST_KEYS));
    }
    s.join(", ")
}

/// How thorough a verification is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Everything (`faxgate store verify`).
    Full,
    /// At every start: everything but reading each CDR for its number index
    /// entries (the entries are still checked to point to CDRs).
    Start,
}

/// Verifies `store` (see the module docs). `destroyed` holds the keys the
/// vault and the retention trail say were destroyed: records sealed with
/// them are erased, awaiting removal.
pub fn verify(store: &Store, destroyed: &HashSet<String>) -> Result<VerifyReport, Error> {
    verify_to(store, destroyed, Depth::Full)
}

/// [`verify`] to `depth`.
pub fn verify_to(store: &Store, destroyed: &HashSet<String>, depth: Depth) -> Result<VerifyReport, Error> {
    let mut r = VerifyReport::default();
    let witness = store.witness();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut damaged_keys: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut lost_keys: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for name in TreeName::ALL {
        let tree = store.inner.db.open_tree(name.as_str())?;
        let stored = match tree.get(layout::MANIFEST)? {
            Some(v) => match Manifest::decode(&v) {
                Some(m) => Some(m),
                None => {
                    r.damage.push(format!("tree {}: its manifest entry is not one", name.as_str()));
                    None
                }
            },
            None => None,
        };
        let found = count(name, &tree)?;
        let witnessed = witness.trees.get(name.as_str()).copied();
        r.trees.push(TreeCheck { tree: name.as_str().into(), entries: found.count, manifest: stored, witnessed });
        match (stored, witnessed) {
            (None, Some(w)) if w.seq > 0 => r.damage.push(format!(
                "tree {}: its manifest is missing; the copy beside the store records {} entries after batch {}",
                name.as_str(),
                w.count,
                w.seq
            )),
            (None, _) if found.count > 0 => {
                r.damage.push(format!("tree {}: {} entries and no manifest", name.as_str(), found.count))
            }
            _ => {}
        }
        if let Some(m) = stored {
            if (m.count, m.digest) != (found.count, found.digest) {
                r.damage.push(format!(
                    "tree {}: holds {} entries where its manifest (batch {}) says {}{}: entries were lost or changed",
                    name.as_str(),
                    found.count,
                    m.seq,
                    m.count,
                    if m.count == found.count { " with other contents" } else { "" }
                ));
            }
            if let Some(w) = witnessed {
                if w.seq > m.seq {
                    r.damage.push(format!(
                        "tree {}: the store is at batch {} ({} entries) but the copy beside it was taken at batch {} \
                         ({} entries): writes were lost",
                        name.as_str(),
                        m.seq,
                        m.count,
                        w.seq,
                        w.count
                    ));
                } else if w.seq == m.seq && (w.count, w.digest) != (m.count, m.digest) {
                    r.damage.push(format!(
                        "tree {}: at batch {} the store and the copy beside it disagree ({} and {} entries)",
                        name.as_str(),
                        m.seq,
                        m.count,
                        w.count
                    ));
                }
            }
        }
        // Every sealed record opens.
        let t = store.tree(name)?;
        let mut unreadable = Vec::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            if k.as_ref() == layout::MANIFEST || !layout::is_sealed(name, &k) {
                continue;
            }
            let kid = match faxgate_retention::sealed_key_id(&v) {
                Ok(kid) => kid,
                Err(_) => {
                    unreadable.push(k.to_vec());
                    continue;
                }
            };
            used.insert(kid.to_string());
            r.records += 1;
            match t.get_sealed_bytes(&k) {
                // A CDR must also decode: it authenticates whatever bytes it
                // was sealed with, so a record written damaged would open.
                Ok(Some(plain)) if name == TreeName::Cdr && crate::cdr::decode(&plain).is_err() => {
                    unreadable.push(k.to_vec())
                }
                Ok(_) => {}
                Err(Error::Crypto(faxgate_retention::Error::KeyDestroyed(id))) => {
                    if destroyed.contains(&id) {
                        r.erased_not_removed += 1;
                    } else {
                        lost_keys.entry(id).or_default().push(k.to_vec());
                    }
                }
                Err(Error::Crypto(faxgate_retention::Error::DamagedKey { id, reason, .. })) => {
                    damaged_keys.entry(id).or_insert((reason, 0)).1 += 1;
                }
                Err(_) => unreadable.push(k.to_vec()),
            }
        }
        if !unreadable.is_empty() {
            r.damage.push(format!(
                "tree {}: {} records do not open (damaged): {}",
                name.as_str(),
                unreadable.len(),
                first(&unreadable)
            ));
        }
    }
    for (id, keys) in &lost_keys {
        r.damage.push(format!(
            "key {id} is missing and was never destroyed: {} records sealed with it cannot be opened ({}); restore \
             the key file from a backup",
            keys.len(),
            first(keys)
        ));
    }
    for (id, (reason, n)) in &damaged_keys {
        r.key_faults.push(format!("key {id} is damaged ({reason}): {n} records sealed with it cannot be opened"));
    }
    // Keys, damaged ones and those that seal nothing.
    for k in store.vault().list()? {
        let id = k.id.to_string();
        if let Some(reason) = &k.damage {
            if !damaged_keys.contains_key(&id) {
                r.key_faults.push(format!("key {id} is damaged ({reason})"));
            }
            continue;
        }
        let sealing_elsewhere = k.id == KeyId::index() || id.starts_with("job-");
        if !used.contains(&id) && !sealing_elsewhere {
            r.unused_keys.push(id);
        }
    }
    check_indexes(store, &mut r, depth)?;
    r.ok = r.damage.is_empty();
    Ok(r)
}

/// Index entries without records, and records without their index entries.
fn check_indexes(store: &Store, r: &mut VerifyReport, depth: Depth) -> Result<(), Error> {
    let mut problem = |what: &str, keys: Vec<Vec<u8>>| {
        if !keys.is_empty() {
            r.damage.push(format!("{what}: {} ({})", keys.len(), first(&keys)));
        }
    };
    // The directory.
    let d = store.tree(TreeName::Directory)?;
    let all = d.keys_with_prefix(b"")?;
    let mut dangling = Vec::new();
    let mut unindexed = Vec::new();
    for k in &all {
        let tag = k.split(|&b| b == 0).next().unwrap_or(k);
        match tag {
            b"n" | b"s" => {
                let owner = match tag {
                    b"n" => d.get_sealed::<FaxNumber>(k).map(|o| o.map(|n| n.account)),
                    _ => d.get_sealed::<Sender>(k).map(|o| o.map(|s| s.account)),
                };
                if let Ok(Some(account)) = owner {
                    let kind =
                        if tag == b"n" { layout::directory::Owned::Numbers } else { layout::directory::Owned::Senders };
                    let blind = &k[2..];
                    let index = [kind.index_prefix(&account), blind.to_vec()].concat();
                    if !d.contains(&index)? {
                        unindexed.push(k.clone());
                    }
                }
            }
            b"an" | b"as" => {
                let main: &[u8] = if tag == b"an" { b"n" } else { b"s" };
                // `an 0 <account> 0 <blind>`: the record is `n 0 <blind>`.
                if let Some(pos) = k.iter().rposition(|&b| b == 0).filter(|&p| k.len() - p - 1 == 32) {
                    let record = [main, b"\0", &k[pos + 1..]].concat();
                    if !d.contains(&record)? {
                        dangling.push(k.clone());
                    }
                }
            }
            b"a" => {
                if let Ok(Some(a)) = d.get_sealed::<Account>(k)
                    && !d.contains(&layout::directory::account_tenant(&a.id))?
                {
                    unindexed.push(k.clone());
                }
            }
            b"ai" => {
                let id = String::from_utf8_lossy(&k[3..]).parse();
                let tenant = d.get_plain(k)?.map(|t| String::from_utf8_lossy(&t).parse());
                match (id, tenant) {
                    (Ok(id), Some(Ok(t))) => {
                        if !d.contains(&layout::directory::account(&t, &id))? {
                            dangling.push(k.clone());
                        }
                    }
                    _ => dangling.push(k.clone()),
                }
            }
            b"d" => {
                let tenant = d.get_plain(k)?.map(|t| String::from_utf8_lossy(&t).parse());
                match tenant {
                    Some(Ok(t)) if d.contains(&layout::directory::tenant(&t))? => {}
                    _ => dangling.push(k.clone()),
                }
            }
            _ => {}
        }
    }
    problem("directory: index entries without their record", dangling);
    problem("directory: records without their index entry", unindexed);
    // CDRs by number (and those of the first layout, left by the rewrite at
    // open). Every index entry points to a CDR; at full depth, every CDR
    // that opens has an entry under each of its numbers and no other: an
    // entry naming another number under an existing CDR (its 8-byte blind
    // changed) is found by the count of entries per CDR.
    let c = store.tree(TreeName::Cdr)?;
    let mut entries: HashMap<Vec<u8>, u32> =
        c.keys_with_prefix(layout::cdr::PLACES)?.into_iter().map(|p| (p, 0)).collect();
    let old_places: HashSet<Vec<u8>> = c.keys_with_prefix(layout::cdr::v1::PLACES)?.into_iter().collect();
    let mut dangling = Vec::new();
    let mut unindexed = Vec::new();
    let mut misindexed = Vec::new();
    for k in c.keys_with_prefix(layout::cdr::INDEX)? {
        match layout::cdr::place_of_index(&k).and_then(|p| entries.get_mut(&p)) {
            Some(n) => *n += 1,
            None => dangling.push(k),
        }
    }
    for k in c.keys_with_prefix(layout::cdr::v1::INDEX)? {
        if !layout::cdr::v1::place_of_index(&k).is_some_and(|p| old_places.contains(p)) {
            dangling.push(k);
        }
    }
    if depth == Depth::Full {
        let mut places: Vec<(&Vec<u8>, &u32)> = entries.iter().collect();
        places.sort();
        for (p, &found) in places {
            // Records that do not open or decode are damage named above;
            // those of a destroyed key await removal.
            let Ok(Some(cdr)) = c.get_sealed_bytes(p).map(|b| b.and_then(|b| crate::cdr::decode(&b).ok())) else {
                continue;
            };
            let mut want: Vec<Vec<u8>> = [&cdr.calling, &cdr.called]
                .into_iter()
                .flatten()
                .map(|n| layout::cdr::index_entry(store, n, p))
                .collect();
            want.sort();
            want.dedup();
            let mut present = 0;
            for e in &want {
                if c.contains(e)? {
                    present += 1;
                } else {
                    unindexed.push(p.clone());
                }
            }
            if found > present {
                misindexed.push(p.clone());
            }
        }
    }
    unindexed.dedup();
    problem("CDRs: index entries without their CDR", dangling);
    problem("CDRs: CDRs without their number index entry", unindexed);
    problem("CDRs: CDRs with an index entry for a number not theirs", misindexed);
    // Mail: pending mail and rendered pages belong to a stored mail.
    let m = store.tree(TreeName::Mail)?;
    let mut dangling = Vec::new();
    for k in m.keys_with_prefix(layout::mail::PENDING)? {
        if let Ok(id) = layout::mail::pending_id(&k)
            && !m.contains(&layout::mail::job(&id))?
        {
            dangling.push(k);
        }
    }
    problem("mail: pending entries without their mail", dangling);
    Ok(())
}
