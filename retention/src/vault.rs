//! The key vault: one small file per key, outside the store.
//!
//! A key is created on demand the first time a record of its class is
//! sealed, written to a temporary file (mode 0600), fsynced, renamed into
//! place and the directory fsynced, so a key that sealed an acknowledged
//! record is on disk before the record is. Destroying a key overwrites the
//! file, fsyncs it, unlinks it and fsyncs the directory: once that returns,
//! the records sealed with it cannot be decrypted, wherever their bytes lie.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;

const KEY_LEN: usize = 32;
const SUFFIX: &str = ".key";

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

    fn random() -> Result<Self, Error> {
        let mut k = Key(Box::new([0; KEY_LEN]));
        getrandom::getrandom(&mut k.0[..]).map_err(Error::Random)?;
        Ok(k)
    }

    /// The key's bytes.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// The name of a key: which retention class and which member of it.
///
/// Key ids are not personal data: they name tenants by their slug, accounts
/// and jobs by random ids, and CDR months by year and month.
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

    /// The key of one account's directory data.
    pub fn account(account: &str) -> Result<Self, Error> {
        Self::new(format!("account-{account}"))
    }

    /// The key of one tenant's directory data.
    pub fn tenant(tenant: &str) -> Result<Self, Error> {
        Self::new(format!("tenant-{tenant}"))
    }

    /// The key of the CDRs of one calendar month (UTC) of communication.
    pub fn cdr_month(year: i16, month: i8) -> Result<Self, Error> {
        Self::new(format!("cdr-{year:04}-{month:02}"))
    }

    /// The key of one job's fax documents.
    pub fn job(job: &str) -> Result<Self, Error> {
        Self::new(format!("job-{job}"))
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

/// What the vault knows of a key on disk.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// The key's id.
    pub id: KeyId,
    /// When its file was written.
    pub created: SystemTime,
}

/// The key directory.
#[derive(Clone, Debug)]
pub struct KeyVault {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    cache: Mutex<HashMap<KeyId, Key>>,
    dir_sync: crate::fsync::DirSync,
}

/// Makes each temporary key file's name unique within the process.
static TMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl KeyVault {
    /// Opens (creating if needed, mode 0700) the key directory `dir`.
    ///
    /// Refuses a directory that group or others can access.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create key directory", &dir, e))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io("cannot set mode of key directory", &dir, e))?;
        }
        let meta = fs::metadata(&dir).map_err(|e| Error::io("cannot read key directory", &dir, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::InsecureKeyDir(dir));
        }
        // Leftovers of a creation interrupted before its rename hold no key
        // that sealed anything: remove them.
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let dir_sync = crate::fsync::DirSync::new(&dir);
        Ok(KeyVault { inner: Arc::new(Inner { dir, cache: Mutex::new(HashMap::new()), dir_sync }) })
    }

    /// The key directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn path(&self, id: &KeyId) -> PathBuf {
        self.inner.dir.join(format!("{}{SUFFIX}", id.as_str()))
    }

    /// The key `id`, if it exists.
    pub fn get(&self, id: &KeyId) -> Result<Option<Key>, Error> {
        let mut cache = self.inner.cache.lock().expect("key cache poisoned");
        if let Some(k) = cache.get(id) {
            return Ok(Some(k.clone()));
        }
        let path = self.path(id);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot open key file", path, e)),
        };
        let len = f.metadata().map_err(|e| Error::io("cannot stat key file", &path, e))?.len();
        if len != KEY_LEN as u64 {
            return Err(Error::DamagedKey { path, len });
        }
        let mut key = Key(Box::new([0; KEY_LEN]));
        f.read_exact(&mut key.0[..]).map_err(|e| Error::io("cannot read key file", &path, e))?;
        cache.insert(id.clone(), key.clone());
        Ok(Some(key))
    }

    /// The key `id`, created (and durably written) if it does not exist yet.
    pub fn get_or_create(&self, id: &KeyId) -> Result<Key, Error> {
        if let Some(k) = self.get(id)? {
            return Ok(k);
        }
        // No lock is held over the file work, so that keys of different
        // jobs are created in parallel. Two creators of the same key race
        // safely: each writes its own temporary file, only one link wins,
        // and the other reads the winner's key.
        let key = Key::random()?;
        let path = self.path(id);
        let seq = TMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.inner.dir.join(format!(".tmp-{}-{}-{seq}", id.as_str(), std::process::id()));
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| Error::io("cannot create key file", &tmp, e))?;
            f.write_all(key.bytes()).map_err(|e| Error::io("cannot write key file", &tmp, e))?;
            f.sync_all().map_err(|e| Error::io("cannot fsync key file", &tmp, e))?;
        }
        // Never replace a key that appeared meanwhile: it may have sealed data.
        match fs::hard_link(&tmp, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&tmp);
                self.sync_dir()?;
                return self.get(id)?.ok_or_else(|| Error::KeyDestroyed(id.to_string()));
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(Error::io("cannot install key file", path, e));
            }
        }
        fs::remove_file(&tmp).map_err(|e| Error::io("cannot remove temporary key file", &tmp, e))?;
        self.sync_dir()?;
        self.inner.cache.lock().expect("key cache poisoned").insert(id.clone(), key.clone());
        Ok(key)
    }

    /// Destroys the key `id`: overwrites its file, fsyncs it, unlinks it and
    /// fsyncs the directory. Returns whether there was a key to destroy.
    pub fn destroy(&self, id: &KeyId) -> Result<bool, Error> {
        let mut cache = self.inner.cache.lock().expect("key cache poisoned");
        cache.remove(id);
        let path = self.path(id);
        let mut f = match OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("cannot open key file to destroy it", path, e)),
        };
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

    /// Every key on disk.
    pub fn list(&self) -> Result<Vec<KeyInfo>, Error> {
        let dir = &self.inner.dir;
        let mut out = Vec::new();
        for e in fs::read_dir(dir).map_err(|e| Error::io("cannot list key directory", dir, e))? {
            let e = e.map_err(|e| Error::io("cannot list key directory", dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(SUFFIX) else { continue };
            let Ok(id) = KeyId::new(stem) else { continue };
            let created = e
                .metadata()
                .and_then(|m| m.modified())
                .map_err(|err| Error::io("cannot stat key file", e.path(), err))?;
            out.push(KeyInfo { id, created });
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
        let id = KeyId::account("a1").unwrap();
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
}
