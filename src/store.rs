//! The store: sled behind a narrow API.
//!
//! Everything durable in faxgate goes through [`Store`] and [`Tree`], so
//! that sled can be replaced without touching the rest. The API has three
//! rules:
//! - a record holding personal data is sealed (encrypted) with the key of its
//!   retention class before it reaches sled ([`Batch::put_sealed`]); plain
//!   values ([`Batch::put_plain`]) are for ids and blinded index entries only;
//! - lookup keys derived from personal data are blinded ([`Store::blind`]);
//! - [`Tree::apply`] writes a batch atomically and flushes it to disk before
//!   returning, so whatever a caller acknowledges afterwards survives a crash.
//!
//! Large sealed values (an accepted mail message) are kept beside sled as
//! files under `spool/` ([`Store::put_file`]): each written to a temporary
//! file, fsynced, renamed into place and the directory fsynced. sled then
//! holds only the small records that name them, and stays small however
//! much mail waits for the fax pipeline.
//!
//! One process at a time: [`Store::open`] takes an exclusive lock on
//! `faxgate.lock` in the data directory and refuses, naming the holder's
//! pid, when another process has it.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use faxgate_retention::{Blinder, KeyId, KeyVault};
use serde::Serialize;

use crate::Error;
use serde::de::DeserializeOwned;

/// The durable store.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: sled::Db,
    vault: KeyVault,
    blinder: Blinder,
    data_dir: PathBuf,
    /// Directory fsyncs of the sealed files' directory, coalesced.
    file_sync: faxgate_retention::fsync::DirSync,
    _lock: File,
}

impl Store {
    /// Opens the store in `data_dir` (sled under `data_dir/db`) with keys in `key_dir`.
    pub fn open(data_dir: &Path, key_dir: &Path) -> Result<Store, Error> {
        let io = |context, path: &Path| Error::io(context, path.to_owned());
        if !data_dir.exists() {
            fs::create_dir_all(data_dir).map_err(io("cannot create data directory", data_dir))?;
            fs::set_permissions(data_dir, fs::Permissions::from_mode(0o750))
                .map_err(io("cannot set mode of data directory", data_dir))?;
        }
        let lock_path = data_dir.join("faxgate.lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(&lock_path)
            .map_err(io("cannot open lock file", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut s = String::new();
                let _ = lock.read_to_string(&mut s);
                return Err(Error::InUse { dir: data_dir.to_owned(), pid: s.trim().parse().ok() });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io("cannot lock", &lock_path)(e)),
        }
        lock.set_len(0).map_err(io("cannot write lock file", &lock_path))?;
        lock.rewind().map_err(io("cannot write lock file", &lock_path))?;
        writeln!(lock, "{}", std::process::id()).map_err(io("cannot write lock file", &lock_path))?;

        let vault = KeyVault::open(key_dir)?;
        let blinder = Blinder::new(vault.get_or_create(&KeyId::index())?);
        let db = sled::Config::new().path(data_dir.join("db")).mode(sled::Mode::HighThroughput).open()?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                vault,
                blinder,
                data_dir: data_dir.to_owned(),
                file_sync: faxgate_retention::fsync::DirSync::new(data_dir.join("spool")),
                _lock: lock,
            }),
        })
    }

    /// The named tree (a keyspace), created if needed.
    pub fn tree(&self, name: &str) -> Result<Tree, Error> {
        Ok(Tree { name: name.to_owned(), tree: self.inner.db.open_tree(name)?, store: self.clone() })
    }

    /// The blinded index key of `value` in `domain` (see [`Blinder`]).
    pub fn blind(&self, domain: &str, value: &str) -> [u8; 32] {
        self.inner.blinder.blind(domain, value)
    }

    /// The key vault.
    pub fn vault(&self) -> &KeyVault {
        &self.inner.vault
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Flushes everything written so far to disk.
    pub fn flush(&self) -> Result<(), Error> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// The directory of sealed files.
    pub fn file_dir(&self) -> PathBuf {
        self.inner.file_sync.dir().to_owned()
    }

    fn file_path(&self, name: &str) -> Result<PathBuf, Error> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(Error::Invalid(format!("not a spool file name: {name:?}")));
        }
        Ok(self.file_dir().join(name))
    }

    /// Seals `value` with `key_id` into a new file `name` (letters, digits,
    /// `-` and `_`) in the file directory, fsyncs it and then the directory
    /// entry, so that the file is durable when this returns. Never replaces
    /// a file. Written in place, without a rename: a file cut short by a
    /// crash is one whose owner never recorded it (the spool removes message
    /// files without a job record at start), and the AEAD refuses any
    /// damaged file that is read.
    pub fn put_file(&self, name: &str, key_id: &KeyId, value: &[u8]) -> Result<(), Error> {
        let path = self.file_path(name)?;
        let dir = self.file_dir();
        let io = |context, path: &Path| Error::io(context, path.to_owned());
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(io("cannot create spool directory", &dir))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o750))
                .map_err(io("cannot set mode of spool directory", &dir))?;
        }
        let sealed = faxgate_retention::seal(self.vault(), key_id, &file_aad(name), value)?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&path)
            .map_err(io("cannot create spool file", &path))?;
        f.write_all(&sealed).map_err(io("cannot write spool file", &path))?;
        f.sync_all().map_err(io("cannot fsync spool file", &path))?;
        self.inner.file_sync.sync().map_err(io("cannot fsync spool directory", &dir))
    }

    /// Reads and opens the sealed file `name`.
    pub fn get_file(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let path = self.file_path(name)?;
        let sealed = match fs::read(&path) {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot read spool file", path)(e)),
        };
        Ok(Some(faxgate_retention::open(self.vault(), &file_aad(name), &sealed)?))
    }

    /// Removes the file `name` (and fsyncs the directory); true if it was there.
    pub fn remove_file(&self, name: &str) -> Result<bool, Error> {
        let path = self.file_path(name)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("cannot remove spool file", path)(e)),
        }
        self.inner.file_sync.sync().map_err(Error::io("cannot fsync spool directory", self.file_dir()))?;
        Ok(true)
    }

    /// The names of the sealed files, and of temporary files left by a
    /// crash in the middle of a write (starting with `.`).
    pub fn files(&self) -> Result<Vec<String>, Error> {
        let dir = self.file_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot list spool directory", dir)(e)),
        };
        let mut names = Vec::new();
        for e in entries {
            let e = e.map_err(Error::io("cannot list spool directory", dir.clone()))?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Removes a temporary file left by a crash (a name from [`Store::files`] starting with `.`).
    pub fn remove_temporary(&self, name: &str) -> Result<(), Error> {
        if !name.starts_with('.') || name.contains('/') {
            return Err(Error::Invalid(format!("not a temporary spool file: {name:?}")));
        }
        let path = self.file_dir().join(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot remove spool file", path)(e)),
        }
    }
}

fn file_aad(name: &str) -> Vec<u8> {
    [b"spool\0".as_slice(), name.as_bytes()].concat()
}

/// One keyspace of the store.
#[derive(Clone, Debug)]
pub struct Tree {
    name: String,
    tree: sled::Tree,
    store: Store,
}

impl Tree {
    fn aad(&self, key: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(self.name.len() + 1 + key.len());
        aad.extend_from_slice(self.name.as_bytes());
        aad.push(0);
        aad.extend_from_slice(key);
        aad
    }

    /// Reads and opens a sealed record.
    pub fn get_sealed<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, Error> {
        let Some(sealed) = self.tree.get(key)? else { return Ok(None) };
        let plain = faxgate_retention::open(self.store.vault(), &self.aad(key), &sealed)?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|source| Error::Codec { what: format!("in {}", self.name), source })
    }

    /// Reads and opens a sealed record stored as raw bytes ([`Batch::put_sealed_bytes`]).
    pub fn get_sealed_bytes(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let Some(sealed) = self.tree.get(key)? else { return Ok(None) };
        Ok(Some(faxgate_retention::open(self.store.vault(), &self.aad(key), &sealed)?))
    }

    /// Reads a plain (non-personal) value.
    pub fn get_plain(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    /// Whether `key` exists.
    pub fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        Ok(self.tree.contains_key(key)?)
    }

    /// The keys under `prefix`, in order.
    pub fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        self.tree.scan_prefix(prefix).keys().map(|k| Ok(k?.to_vec())).collect()
    }

    /// The key id a sealed record under `key` names, if the record exists.
    pub fn sealed_key_id(&self, key: &[u8]) -> Result<Option<KeyId>, Error> {
        match self.tree.get(key)? {
            Some(v) => Ok(Some(faxgate_retention::sealed_key_id(&v)?)),
            None => Ok(None),
        }
    }

    /// A new, empty batch of writes for this tree.
    pub fn batch(&self) -> Batch<'_> {
        Batch { tree: self, batch: sled::Batch::default() }
    }

    /// Applies `batch` atomically and flushes it to disk.
    pub fn apply(&self, batch: Batch<'_>) -> Result<(), Error> {
        self.tree.apply_batch(batch.batch)?;
        self.store.flush()
    }
}

/// Writes to one tree, applied all or nothing by [`Tree::apply`].
#[derive(Debug)]
pub struct Batch<'t> {
    tree: &'t Tree,
    batch: sled::Batch,
}

impl Batch<'_> {
    /// Seals `value` with the key `key_id` and stores it under `key`.
    pub fn put_sealed<T: Serialize>(&mut self, key: &[u8], key_id: &KeyId, value: &T) -> Result<(), Error> {
        let plain = serde_json::to_vec(value)
            .map_err(|source| Error::Codec { what: format!("in {}", self.tree.name), source })?;
        let sealed = faxgate_retention::seal(self.tree.store.vault(), key_id, &self.tree.aad(key), &plain)?;
        self.batch.insert(key, sealed);
        Ok(())
    }

    /// Seals raw bytes (a mail message, a document) with `key_id` and stores them under `key`.
    pub fn put_sealed_bytes(&mut self, key: &[u8], key_id: &KeyId, value: &[u8]) -> Result<(), Error> {
        let sealed = faxgate_retention::seal(self.tree.store.vault(), key_id, &self.tree.aad(key), value)?;
        self.batch.insert(key, sealed);
        Ok(())
    }

    /// Stores a plain value: only ids and blinded index entries, never personal data.
    pub fn put_plain(&mut self, key: &[u8], value: &[u8]) {
        self.batch.insert(key, value);
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &[u8]) {
        self.batch.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_round_trip_and_one_process() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let store = Store::open(&data, &data.join("keys")).unwrap();
        let t = store.tree("t").unwrap();
        let kid = KeyId::account("x").unwrap();
        let mut b = t.batch();
        b.put_sealed(b"k1", &kid, &"+4533221100").unwrap();
        b.put_plain(b"i1", b"acc");
        t.apply(b).unwrap();
        assert_eq!(t.get_sealed::<String>(b"k1").unwrap().unwrap(), "+4533221100");
        assert_eq!(t.sealed_key_id(b"k1").unwrap().unwrap(), kid);
        match Store::open(&data, &data.join("keys")) {
            Err(Error::InUse { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("second open: {other:?}"),
        }
        drop(t);
        drop(store);
        // sled's flusher thread lets go of the database a moment after the
        // last handle is dropped.
        let store = (0..500)
            .find_map(|_| match Store::open(&data, &data.join("keys")) {
                Ok(s) => Some(s),
                Err(_) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    None
                }
            })
            .expect("the store opens again once the first is closed");
        let t = store.tree("t").unwrap();
        assert_eq!(t.get_sealed::<String>(b"k1").unwrap().unwrap(), "+4533221100");
        store.vault().destroy(&kid).unwrap();
        assert!(matches!(t.get_sealed::<String>(b"k1"), Err(Error::Crypto(_))));
    }
}
