//! The key vault: one small file per key, outside the store.
//!
//! A key file holds the key and what it is for: its class, its owner (a
//! tenant, an account, a month of CDRs, a job) and its deadline, the time
//! after which the sweeper may destroy it, written when the key is made and
//! moved when the deadline moves (a termination, a legal hold). A key is
//! destroyed because its own deadline passed, never because no record was
//! found that needs it. A checksum over the file finds a damaged key, which
//! is named in the error rather than replaced.
//!
//! ```text
//! "FGKEY2\n" | meta length (u16, big-endian) | meta (JSON: class, owner, deadline)
//!            | key (32 bytes) | SHA-256 of everything before (32 bytes)
//! ```
//!
//! A key is created on demand the first time a record of its class is
//! sealed: written to a temporary file (mode 0600), fsynced, linked into
//! place and the directory fsynced, so a key that sealed an acknowledged
//! record is on disk before the record is. A temporary file of a write that
//! failed is removed at once. Moving a deadline writes a new file and
//! renames it over the old one. Destroying a key first leaves a tombstone
//! (`<id>.gone`, an empty file), then
//! overwrites the file, fsyncs it, unlinks it and fsyncs the directory: once
//! that returns, the records sealed with it cannot be decrypted, wherever
//! their bytes lie. The tombstone tells "destroyed on purpose" from "lost"
//! until the key's owner has removed its records and clears it
//! ([`KeyVault::clear_tombstone`]); a tombstoned key is destroyed. Files of
//! the first format (the 32 key bytes alone) are read, and rewritten in this
//! one when the vault opens.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;

const KEY_LEN: usize = 32;
const SUFFIX: &str = ".key";
const TOMBSTONE: &str = ".gone";
const MAGIC: &[u8] = b"FGKEY2\n";
const SUM_LEN: usize = 32;

/// A 256-bit key. Its bytes are wiped from memory when it is dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key(Box<[u8; KEY_LEN]>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key from raw bytes (tests and key derivation).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Key(Box::new(bytes))
    }

    pub(crate) fn random() -> Result<Self, Error> {
        let mut k = Key(Box::new([0; KEY_LEN]));
        getrandom::getrandom(&mut k.0[..]).map_err(Error::Random)?;
        Ok(k)
    }

    /// The key's bytes.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// The name of a key. Its user chooses the names (faxgate names a key after
/// its retention class and the member of it); they must not be personal data.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// The install-wide key for blinded lookup indexes.
    pub const INDEX: &'static str = "index";

    /// Parses and validates a key id.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 100
            && !id.starts_with('.')
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if ok { Ok(KeyId(id)) } else { Err(Error::InvalidKeyId(id)) }
    }

    /// The install-wide index key.
    pub fn index() -> Self {
        KeyId(Self::INDEX.to_owned())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a key is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    /// Its retention class (`cdr`, `account`, `job`, ...).
    pub class: String,
    /// The member of the class it seals (a month, an account id, ...).
    pub owner: String,
    /// When the sweeper may destroy it; `None` while its data has no end yet.
    pub deadline: Option<Timestamp>,
}

/// Says what a key about to be made is for: the vault's user names its keys.
pub trait Describe: Send + Sync + std::fmt::Debug {
    /// The class, owner and first deadline of the key `id`.
    fn describe(&self, id: &KeyId) -> KeyMeta;
}

/// Describes a key by its name alone: the class before the first `-`, the
/// owner after it, no deadline.
#[derive(Debug, Default)]
pub struct ByName;

impl Describe for ByName {
    fn describe(&self, id: &KeyId) -> KeyMeta {
        let (class, owner) = id.as_str().split_once('-').unwrap_or((id.as_str(), ""));
        KeyMeta { class: class.to_owned(), owner: owner.to_owned(), deadline: None }
    }
}

/// What the vault knows of a key on disk.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// The key's id.
    pub id: KeyId,
    /// When its file was written.
    pub created: SystemTime,
    /// What it is for; `None` when the file is damaged (see [`KeyInfo::damage`]).
    pub meta: Option<KeyMeta>,
    /// Why the file cannot be read, when it is damaged.
    pub damage: Option<String>,
}

/// The key directory.
#[derive(Clone, Debug)]
pub struct KeyVault {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    cache: Mutex<HashMap<KeyId, (Key, KeyMeta)>>,
    dir_sync: crate::fsync::DirSync,
    describe: Arc<dyn Describe>,
}

/// Makes each temporary key file's name unique within the process.
static TMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn encode(key: &Key, meta: &KeyMeta) -> Vec<u8> {
    let meta = serde_json::to_vec(meta).expect("key metadata serialises");
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + meta.len() + KEY_LEN + SUM_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(meta.len() as u16).to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(key.bytes());
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// A key file's key and metadata, or why it is damaged. A file of the
/// first format (32 bytes, no metadata) gives `None` for the metadata.
fn decode(bytes: &[u8]) -> Result<(Key, Option<KeyMeta>), String> {
    if bytes.len() == KEY_LEN {
        let mut k = Key(Box::new([0; KEY_LEN]));
        k.0.copy_from_slice(bytes);
        return Ok((k, None));
    }
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(|| format!("not a key file ({} bytes, no header)", bytes.len()))?;
    if rest.len() < 2 + KEY_LEN + SUM_LEN {
        return Err(format!("cut short ({} bytes)", bytes.len()));
    }
    let (body, sum) = bytes.split_at(bytes.len() - SUM_LEN);
    if Sha256::digest(body).as_slice() != sum {
        return Err("its checksum does not match: the file was changed or damaged".into());
    }
    let meta_len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
    if rest.len() != 2 + meta_len + KEY_LEN + SUM_LEN {
        return Err("its length does not match its header".into());
    }
    let meta: KeyMeta =
        serde_json::from_slice(&rest[2..2 + meta_len]).map_err(|e| format!("its metadata cannot be read: {e}"))?;
    let mut k = Key(Box::new([0; KEY_LEN]));
    k.0.copy_from_slice(&rest[2 + meta_len..2 + meta_len + KEY_LEN]);
    Ok((k, Some(meta)))
}

/// Checks the key directory `dir` as [`KeyVault::open_with`] does before
/// it uses it (and `faxgate check-config` before a start): a directory that
/// does not exist yet is fine (it is made, mode 0700); one that exists must
/// be a directory, listable, and not accessible to group or others.
pub fn check_key_dir(dir: &Path) -> Result<(), Error> {
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("cannot read key directory", dir, e)),
    };
    if !meta.is_dir() {
        let e = std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory");
        return Err(Error::io("cannot use key directory", dir, e));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::InsecureKeyDir(dir.to_owned()));
    }
    fs::read_dir(dir).map_err(|e| Error::io("cannot read key directory", dir, e))?;
    Ok(())
}

impl KeyVault {
    /// Opens (creating if needed, mode 0700) the key directory `dir`; keys
    /// made from now on are described by name ([`ByName`]).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::open_with(dir, Arc::new(ByName))
    }

    /// Opens the key directory `dir`; `describe` says what each new key is for.
    ///
    /// Refuses a directory that group or others can access. Removes
    /// temporary files of creations cut short, and rewrites key files of the
    /// first format with their metadata.
    pub fn open_with(dir: impl Into<PathBuf>, describe: Arc<dyn Describe>) -> Result<Self, Error> {
        let dir = dir.into();
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create key directory", &dir, e))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io("cannot set mode of key directory", &dir, e))?;
        }
        check_key_dir(&dir)?;
        // Leftovers of a creation interrupted before its link hold no key
        // that sealed anything: remove them.
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let dir_sync = crate::fsync::DirSync::new(&dir);
        let vault = KeyVault { inner: Arc::new(Inner { dir, cache: Mutex::new(HashMap::new()), dir_sync, describe }) };
        for info in vault.list()? {
            if info.meta.is_none() && info.damage.is_none() {
                // The first format: give it its metadata.
                let (key, _) = vault.read(&info.id)?.expect("listed");
                let meta = vault.inner.describe.describe(&info.id);
                vault.replace(&info.id, &key, &meta)?;
            }
        }
        Ok(vault)
    }

    /// The key directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn path(&self, id: &KeyId) -> PathBuf {
        self.inner.dir.join(format!("{}{SUFFIX}", id.as_str()))
    }

    /// Reads a key file: `None` if there is none; a damaged one is an error naming it.
    fn read(&self, id: &KeyId) -> Result<Option<(Key, Option<KeyMeta>)>, Error> {
        let path = self.path(id);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot open key file", path, e)),
        };
        let mut bytes = Vec::with_capacity(256);
        Read::by_ref(&mut f)
            .take(64 * 1024)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("cannot read key file", &path, e))?;
        let (key, meta) = decode(&bytes).map_err(|reason| Error::DamagedKey { id: id.to_string(), path, reason })?;
        bytes.zeroize();
        Ok(Some((key, meta)))
    }

    fn cached(&self, id: &KeyId) -> Result<Option<(Key, KeyMeta)>, Error> {
        let mut cache = self.inner.cache.lock().expect("key cache poisoned");
        if let Some(k) = cache.get(id) {
            return Ok(Some(k.clone()));
        }
        let Some((key, meta)) = self.read(id)? else { return Ok(None) };
        let meta = meta.unwrap_or_else(|| self.inner.describe.describe(id));
        cache.insert(id.clone(), (key.clone(), meta.clone()));
        Ok(Some((key, meta)))
    }

    /// The key `id`, if it exists (a tombstoned key does not).
    pub fn get(&self, id: &KeyId) -> Result<Option<Key>, Error> {
        if self.is_tombstoned(id) {
            return Ok(None);
        }
        Ok(self.cached(id)?.map(|(k, _)| k))
    }

    fn tombstone_path(&self, id: &KeyId) -> PathBuf {
        self.inner.dir.join(format!("{}{TOMBSTONE}", id.as_str()))
    }

    /// Whether `id` was destroyed and its owner has not yet cleared the tombstone.
    pub fn is_tombstoned(&self, id: &KeyId) -> bool {
        self.tombstone_path(id).exists()
    }

    /// The keys destroyed whose owners have not yet removed their records.
    pub fn tombstones(&self) -> Result<Vec<KeyId>, Error> {
        let dir = &self.inner.dir;
        let mut out = Vec::new();
        for e in fs::read_dir(dir).map_err(|e| Error::io("cannot list key directory", dir, e))? {
            let e = e.map_err(|e| Error::io("cannot list key directory", dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(TOMBSTONE).and_then(|s| KeyId::new(s).ok()) {
                out.push(id);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Forgets that `id` was destroyed, once its records are gone.
    pub fn clear_tombstone(&self, id: &KeyId) -> Result<(), Error> {
        let path = self.tombstone_path(id);
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot remove tombstone", path, e)),
        }
    }

    /// What the key `id` is for, if it exists.
    pub fn meta(&self, id: &KeyId) -> Result<Option<KeyMeta>, Error> {
        Ok(self.cached(id)?.map(|(_, m)| m))
    }

    /// Writes `bytes` to a new temporary file in the key directory, fsynced;
    /// on failure the temporary file is removed before returning.
    fn write_temporary(&self, id: &KeyId, bytes: &[u8]) -> Result<PathBuf, Error> {
        let seq = TMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.inner.dir.join(format!(".tmp-{}-{}-{seq}", id.as_str(), std::process::id()));
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        match written {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(Error::io("cannot write key file", &tmp, e))
            }
        }
    }

    /// Replaces the file of `id` with `key` and `meta` (a new file renamed over the old).
    fn replace(&self, id: &KeyId, key: &Key, meta: &KeyMeta) -> Result<(), Error> {
        let mut bytes = encode(key, meta);
        let tmp = self.write_temporary(id, &bytes);
        bytes.zeroize();
        let tmp = tmp?;
        let path = self.path(id);
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("cannot install key file", path, e));
        }
        self.sync_dir()?;
        self.inner.cache.lock().expect("key cache poisoned").insert(id.clone(), (key.clone(), meta.clone()));
        Ok(())
    }

    /// The key `id`, created (and durably written, with what [`Describe`]
    /// says of it) if it does not exist yet. A damaged key is an error: it
    /// is never replaced by a new one.
    pub fn get_or_create(&self, id: &KeyId) -> Result<Key, Error> {
        if let Some(k) = self.get(id)? {
            return Ok(k);
        }
        self.create(id).map(|(k, _)| k)
    }

    fn create(&self, id: &KeyId) -> Result<(Key, KeyMeta), Error> {
        // No lock is held over the file work, so that keys of different
        // jobs are created in parallel. Two creators of the same key race
        // safely: each writes its own temporary file, only one link wins,
        // and the other reads the winner's key.
        let key = Key::random()?;
        let meta = self.inner.describe.describe(id);
        let mut bytes = encode(&key, &meta);
        let tmp = self.write_temporary(id, &bytes);
        bytes.zeroize();
        let tmp = tmp?;
        let path = self.path(id);
        // Never replace a key that appeared meanwhile: it may have sealed data.
        let linked = fs::hard_link(&tmp, &path);
        let removed = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.sync_dir()?;
                return self.cached(id)?.ok_or_else(|| Error::KeyDestroyed(id.to_string()));
            }
            Err(e) => return Err(Error::io("cannot install key file", path, e)),
        }
        removed.map_err(|e| Error::io("cannot remove temporary key file", &tmp, e))?;
        self.sync_dir()?;
        self.inner.cache.lock().expect("key cache poisoned").insert(id.clone(), (key.clone(), meta.clone()));
        Ok((key, meta))
    }

    /// Moves the deadline of the key `id` (false if there is no such key).
    pub fn set_deadline(&self, id: &KeyId, deadline: Option<Timestamp>) -> Result<bool, Error> {
        let Some((key, mut meta)) = self.cached(id)? else { return Ok(false) };
        if meta.deadline == deadline {
            return Ok(true);
        }
        meta.deadline = deadline;
        self.replace(id, &key, &meta)?;
        Ok(true)
    }

    /// Destroys the key `id`: leaves its tombstone, then overwrites its
    /// file, fsyncs it, unlinks it and fsyncs the directory. Returns whether
    /// there was a key to destroy.
    pub fn destroy(&self, id: &KeyId) -> Result<bool, Error> {
        let mut cache = self.inner.cache.lock().expect("key cache poisoned");
        cache.remove(id);
        let path = self.path(id);
        let mut f = match OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("cannot open key file to destroy it", path, e)),
        };
        if !self.is_tombstoned(id) {
            let stone = self.tombstone_path(id);
            let written =
                (|| OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&stone)?.sync_all())();
            if let Err(e) = written {
                let _ = fs::remove_file(&stone);
                return Err(Error::io("cannot write tombstone", stone, e));
            }
            self.sync_dir()?;
        }
        let len = f.metadata().map_err(|e| Error::io("cannot stat key file", &path, e))?.len();
        let mut noise = vec![0u8; len.max(KEY_LEN as u64) as usize];
        getrandom::getrandom(&mut noise).map_err(Error::Random)?;
        f.write_all(&noise).map_err(|e| Error::io("cannot overwrite key file", &path, e))?;
        f.sync_all().map_err(|e| Error::io("cannot fsync key file", &path, e))?;
        drop(f);
        fs::remove_file(&path).map_err(|e| Error::io("cannot unlink key file", &path, e))?;
        self.sync_dir()?;
        Ok(true)
    }

    /// Makes the key directory's entries durable (group-committed with
    /// other creators and destroyers).
    fn sync_dir(&self) -> Result<(), Error> {
        self.inner.dir_sync.sync().map_err(|e| Error::io("cannot fsync key directory", &self.inner.dir, e))
    }

    /// Every key on disk, with what it is for (a damaged one with why it
    /// cannot be read).
    pub fn list(&self) -> Result<Vec<KeyInfo>, Error> {
        let dir = &self.inner.dir;
        let mut out = Vec::new();
        for e in fs::read_dir(dir).map_err(|e| Error::io("cannot list key directory", dir, e))? {
            let e = e.map_err(|e| Error::io("cannot list key directory", dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(SUFFIX) else { continue };
            let Ok(id) = KeyId::new(stem) else { continue };
            let created = match e.metadata().and_then(|m| m.modified()) {
                Ok(t) => t,
                // Destroyed since the directory was read (a delivered
                // outbox message's key, say): not a key any more.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(Error::io("cannot stat key file", e.path(), err)),
            };
            let (meta, damage) = match self.read(&id) {
                Ok(Some((_, meta))) => (meta, None),
                Ok(None) => continue,
                Err(Error::DamagedKey { reason, .. }) => (None, Some(reason)),
                Err(e) => return Err(e),
            };
            out.push(KeyInfo { id, created, meta, damage });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_get_destroy() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let v = KeyVault::open(&dir).unwrap();
        let id = KeyId::new("account-a1").unwrap();
        assert!(v.get(&id).unwrap().is_none());
        let k = v.get_or_create(&id).unwrap();
        let mode = fs::metadata(dir.join("account-a1.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A second vault on the same directory reads the same key.
        let v2 = KeyVault::open(&dir).unwrap();
        assert_eq!(v2.get(&id).unwrap().unwrap().bytes(), k.bytes());
        assert!(v.destroy(&id).unwrap());
        assert!(!dir.join("account-a1.key").exists());
        assert!(v.get(&id).unwrap().is_none());
        assert!(!v.destroy(&id).unwrap());
        assert!(v.list().unwrap().is_empty());
        // Destroyed on purpose, until its owner says its records are gone.
        assert_eq!(v.tombstones().unwrap(), vec![id.clone()]);
        v.clear_tombstone(&id).unwrap();
        assert!(v.tombstones().unwrap().is_empty() && !v.is_tombstoned(&id));
    }

    #[test]
    fn refuses_bad_ids_and_open_dirs() {
        assert!(KeyId::new("../etc/passwd").is_err());
        assert!(KeyId::new("Upper").is_err());
        assert!(KeyId::new("").is_err());
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(KeyVault::open(tmp.path()), Err(Error::InsecureKeyDir(_))));
    }

    #[derive(Debug)]
    struct Months;
    impl Describe for Months {
        fn describe(&self, id: &KeyId) -> KeyMeta {
            KeyMeta {
                class: "cdr".into(),
                owner: id.as_str().trim_start_matches("cdr-").into(),
                deadline: Some("2027-04-01T00:00:00Z".parse().unwrap()),
            }
        }
    }

    #[test]
    fn metadata_is_kept_with_the_key_and_its_deadline_moves() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let v = KeyVault::open_with(&dir, Arc::new(Months)).unwrap();
        let id = KeyId::new("cdr-2026-03").unwrap();
        let k = v.get_or_create(&id).unwrap();
        let m = v.meta(&id).unwrap().unwrap();
        assert_eq!((m.class.as_str(), m.owner.as_str()), ("cdr", "2026-03"));
        assert_eq!(m.deadline.unwrap().to_string(), "2027-04-01T00:00:00Z");
        let later: Timestamp = "2027-06-01T00:00:00Z".parse().unwrap();
        assert!(v.set_deadline(&id, Some(later)).unwrap());
        // Another vault (a restart) reads the moved deadline and the same key.
        let v2 = KeyVault::open(&dir).unwrap();
        assert_eq!(v2.meta(&id).unwrap().unwrap().deadline, Some(later));
        assert_eq!(v2.get(&id).unwrap().unwrap().bytes(), k.bytes());
        assert!(!v2.set_deadline(&KeyId::new("cdr-1999-01").unwrap(), None).unwrap());
        let names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, vec!["cdr-2026-03.key".to_owned()], "no temporary file is left");
    }

    #[test]
    fn a_damaged_or_changed_key_is_named_and_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let v = KeyVault::open(&dir).unwrap();
        let id = KeyId::new("account-a1").unwrap();
        v.get_or_create(&id).unwrap();
        let path = dir.join("account-a1.key");
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.len() - 40; // a byte of the key itself
        bytes[at] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let v = KeyVault::open(&dir).unwrap();
        match v.get(&id) {
            Err(Error::DamagedKey { id: named, reason, .. }) => {
                assert_eq!(named, "account-a1");
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(v.get_or_create(&id), Err(Error::DamagedKey { .. })), "never a new key");
        assert_eq!(fs::read(&path).unwrap(), bytes, "the damaged file is left as it is");
        let listed = v.list().unwrap();
        assert!(listed[0].meta.is_none() && listed[0].damage.is_some(), "{listed:?}");
        fs::write(&path, &bytes[..10]).unwrap();
        assert!(matches!(v.get(&id), Err(Error::DamagedKey { .. })));
    }

    #[test]
    fn first_format_keys_get_their_metadata_on_open() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(dir.join("cdr-2026-03.key"), [7u8; 32]).unwrap();
        let v = KeyVault::open_with(&dir, Arc::new(Months)).unwrap();
        let id = KeyId::new("cdr-2026-03").unwrap();
        assert_eq!(v.get(&id).unwrap().unwrap().bytes(), &[7u8; 32]);
        assert_eq!(v.meta(&id).unwrap().unwrap().owner, "2026-03");
        assert!(fs::read(dir.join("cdr-2026-03.key")).unwrap().starts_with(MAGIC));
    }
}
