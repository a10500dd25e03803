//! The store: sled behind a narrow API.
//!
//! Everything durable in faxgate goes through [`Store`] and [`Tree`], so
//! that sled can be replaced without touching the rest. The API has three
//! rules:
//! - a record holding personal data is sealed (encrypted) with the key of its
//!   retention class before it reaches sled ([`Batch::put_sealed`]); plain
//!   values ([`Batch::put_plain`]) are for ids and blinded index entries only;
//! - lookup keys derived from personal data are blinded (keyed hashes, built
//!   only by [`layout`]);
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
//!
//! Damage is found, not guessed around ([`verify`]): each tree keeps, in the
//! same atomic batch as every write, a manifest of its entries (a sequence
//! number, a count and a digest), and a copy of every tree's manifest is
//! kept beside the store (`store-manifest.json`, written at every clean stop
//! and a few seconds after writes). The index key is made only for a new
//! store: for a store with data, a missing one is damage.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use faxgate_retention::vault::Describe;
use faxgate_retention::{Blinder, KeyId, KeyVault};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

pub mod backup;
pub mod layout;
pub mod verify;

pub use layout::TreeName;

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
    /// Each tree's manifest as last written, and the lock its writers take.
    manifests: Mutex<HashMap<TreeName, Arc<Mutex<Manifest>>>>,
    /// The manifests as last copied beside the store.
    witnessed: Mutex<BTreeMap<String, Manifest>>,
    /// Writers hold it shared; a backup holds it alone while it copies.
    writes: std::sync::RwLock<()>,
    _lock: File,
}

/// What a tree holds, as its writers recorded it: kept in the tree (under
/// [`layout::MANIFEST`], in the same batch as every write) and copied beside
/// the store. [`verify`] recounts the tree and compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Batches written so far.
    pub seq: u64,
    /// Entries (the manifest not counted).
    pub count: u64,
    /// XOR of the SHA-256 of every entry ([`entry_hash`]), hex.
    #[serde(with = "hex32")]
    pub digest: [u8; 32],
}

impl Manifest {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(48);
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.count.to_be_bytes());
        v.extend_from_slice(&self.digest);
        v
    }

    fn decode(b: &[u8]) -> Option<Manifest> {
        if b.len() != 48 {
            return None;
        }
        Some(Manifest {
            seq: u64::from_be_bytes(b[..8].try_into().ok()?),
            count: u64::from_be_bytes(b[8..16].try_into().ok()?),
            digest: b[16..48].try_into().ok()?,
        })
    }

    /// Adds (or, again, takes away) one entry.
    fn toggle(&mut self, tree: &str, key: &[u8], value: &[u8]) {
        for (d, h) in self.digest.iter_mut().zip(entry_hash(tree, key, value)) {
            *d ^= h;
        }
    }
}

/// The hash of one entry of a tree, for its manifest's digest.
pub fn entry_hash(tree: &str, key: &[u8], value: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tree.as_bytes());
    h.update([0]);
    h.update((key.len() as u32).to_be_bytes());
    h.update(key);
    h.update(value);
    h.finalize().into()
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&d.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let bytes: Option<Vec<u8>> =
            (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
        bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| serde::de::Error::custom("not 32 bytes of hex"))
    }
}

/// The copy of the manifests kept beside the store.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Witness {
    /// Each tree's manifest, by tree name.
    pub trees: BTreeMap<String, Manifest>,
}

const WITNESS: &str = "store-manifest.json";

/// sled's page cache unless `storage.cache_mib` says otherwise (sled's own
/// default is 1 GiB, which a daemon reaches as its store grows).
pub const DEFAULT_CACHE_MIB: u64 = 64;

impl Store {
    /// Opens the store in `data_dir` (sled under `data_dir/db`) with keys in
    /// `key_dir`, its keys named for the default retention periods.
    pub fn open(data_dir: &Path, key_dir: &Path) -> Result<Store, Error> {
        Self::open_with(data_dir, key_dir, crate::retention::key_names(&crate::retention::Policy::default()))
    }

    /// Checks the data directory as [`Store::open_with`] does before it
    /// uses it (and `faxgate check-config` before a start): one that does
    /// not exist yet is made (mode 0750); one that exists must be a
    /// directory this process may read, write and enter.
    pub fn check_data_dir(data_dir: &Path) -> Result<(), Error> {
        let io = |context, path: &Path| Error::io(context, path.to_owned());
        let meta = match fs::metadata(data_dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io("cannot read data directory", data_dir)(e)),
        };
        if !meta.is_dir() {
            let e = std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory");
            return Err(io("cannot use data directory", data_dir)(e));
        }
        use nix::unistd::{AccessFlags, access};
        access(data_dir, AccessFlags::R_OK | AccessFlags::W_OK | AccessFlags::X_OK)
            .map_err(|e| io("cannot write in data directory", data_dir)(e.into()))
    }

    /// Opens the store; `describe` says what each new key is for (its
    /// class, owner and deadline: [`crate::retention::key_names`]). sled
    /// caches [`DEFAULT_CACHE_MIB`] of its pages.
    pub fn open_with(data_dir: &Path, key_dir: &Path, describe: Arc<dyn Describe>) -> Result<Store, Error> {
        Self::open_sized(data_dir, key_dir, describe, DEFAULT_CACHE_MIB)
    }

    /// [`Store::open_with`], sled caching `cache_mib` MiB of its pages
    /// (`storage.cache_mib`): the most of the store's pages kept in memory.
    pub fn open_sized(
        data_dir: &Path,
        key_dir: &Path,
        describe: Arc<dyn Describe>,
        cache_mib: u64,
    ) -> Result<Store, Error> {
        let io = |context, path: &Path| Error::io(context, path.to_owned());
        Self::check_data_dir(data_dir)?;
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

        let vault = KeyVault::open_with(key_dir, describe)?;
        // The index key is made with a new store, never for one with data:
        // a new one would find nothing the old one indexed.
        let new_store = !data_dir.join("db").exists();
        let index = match new_store {
            true => vault.get_or_create(&KeyId::index())?,
            false => vault.get(&KeyId::index())?.ok_or_else(|| Error::Damaged {
                what: format!(
                    "the index key {} is missing, and the store has data that it indexes; restore it from a \
                     backup (faxgate never makes a new index key for a store with data)",
                    key_dir.join("index.key").display()
                ),
            })?,
        };
        let blinder = Blinder::new(index);
        let db = sled::Config::new()
            .path(data_dir.join("db"))
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(cache_mib.max(1) << 20)
            .open()?;
        let witness_path = data_dir.join(WITNESS);
        let witnessed = match fs::read(&witness_path) {
            Ok(b) => {
                serde_json::from_slice::<Witness>(&b)
                    .map_err(|e| Error::Damaged { what: format!("{} cannot be read: {e}", witness_path.display()) })?
                    .trees
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io("cannot read", witness_path)(e)),
        };
        let store = Store {
            inner: Arc::new(Inner {
                db,
                vault,
                blinder,
                data_dir: data_dir.to_owned(),
                file_sync: faxgate_retention::fsync::DirSync::new(data_dir.join("spool")),
                manifests: Mutex::new(HashMap::new()),
                witnessed: Mutex::new(witnessed),
                writes: std::sync::RwLock::new(()),
                _lock: lock,
            }),
        };
        if new_store {
            store.write_witness()?;
        }
        crate::cdr::migrate(&store)?;
        Ok(store)
    }

    /// The state of a tree's manifest, loaded (for a store written before
    /// manifests existed, counted and written) on first use.
    fn manifest_state(&self, name: TreeName, tree: &sled::Tree) -> Result<Arc<Mutex<Manifest>>, Error> {
        let mut all = self.inner.manifests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = all.get(&name) {
            return Ok(m.clone());
        }
        let m = match tree.get(layout::MANIFEST)? {
            Some(v) => Manifest::decode(&v).ok_or_else(|| Error::Damaged {
                what: format!("tree {}: its manifest entry is not one ({} bytes)", name.as_str(), v.len()),
            })?,
            None => {
                // No manifest in the tree: an older store (nothing beside it
                // says otherwise) gets one counted now; where the copy beside
                // the store knows this tree, it is reported by `verify`.
                let known = self.inner.witnessed.lock().unwrap_or_else(|p| p.into_inner()).contains_key(name.as_str());
                let m = verify::count(name, tree)?;
                if !known && m.count > 0 {
                    tree.insert(layout::MANIFEST, Manifest { seq: 1, ..m }.encode())?;
                    tree.flush()?;
                    Manifest { seq: 1, ..m }
                } else {
                    Manifest { seq: 0, ..m }
                }
            }
        };
        let m = Arc::new(Mutex::new(m));
        all.insert(name, m.clone());
        Ok(m)
    }

    /// Copies every opened tree's manifest beside the store (written to a
    /// temporary file, fsynced, renamed, the directory fsynced), if any
    /// changed since the last copy.
    pub fn write_witness(&self) -> Result<(), Error> {
        let mut trees = BTreeMap::new();
        for name in TreeName::ALL {
            let tree = self.inner.db.open_tree(name.as_str())?;
            let m = *self.manifest_state(name, &tree)?.lock().unwrap_or_else(|p| p.into_inner());
            trees.insert(name.as_str().to_owned(), m);
        }
        let mut witnessed = self.inner.witnessed.lock().unwrap_or_else(|p| p.into_inner());
        if trees == *witnessed && self.inner.data_dir.join(WITNESS).exists() {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&Witness { trees: trees.clone() })
            .map_err(|source| Error::Codec { what: WITNESS.into(), source })?;
        let path = self.inner.data_dir.join(WITNESS);
        let tmp = self.inner.data_dir.join(format!(".{WITNESS}.tmp"));
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o640).open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.inner.data_dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("cannot write", path)(e));
        }
        *witnessed = trees;
        Ok(())
    }

    /// The manifests as last copied beside the store.
    pub fn witness(&self) -> Witness {
        Witness { trees: self.inner.witnessed.lock().unwrap_or_else(|p| p.into_inner()).clone() }
    }

    /// The store's size on disk, in bytes.
    pub fn size_on_disk(&self) -> Result<u64, Error> {
        Ok(self.inner.db.size_on_disk()?)
    }

    /// A tree (a keyspace), created if needed.
    pub fn tree(&self, name: TreeName) -> Result<Tree, Error> {
        let tree = self.inner.db.open_tree(name.as_str())?;
        let manifest = self.manifest_state(name, &tree)?;
        Ok(Tree { name, tree, store: self.clone(), manifest, staged: None })
    }

    /// The blinded index key of `value` in `domain` (see [`Blinder`]); the
    /// domains and the keys built from them are [`layout`]'s.
    pub(crate) fn blind(&self, domain: &str, value: &str) -> [u8; 32] {
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
        let _writing = self.inner.writes.read().unwrap_or_else(|p| p.into_inner());
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&path)
            .map_err(io("cannot create spool file", &path))?;
        // A file whose write failed (a full disk) is removed at once.
        let written = f.write_all(&sealed).and_then(|()| f.sync_all());
        drop(f);
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return Err(io("cannot write spool file", &path)(e));
        }
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
        let _writing = self.inner.writes.read().unwrap_or_else(|p| p.into_inner());
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
    name: TreeName,
    tree: sled::Tree,
    store: Store,
    manifest: Arc<Mutex<Manifest>>,
    /// Writes held back (see [`Tree::staged`]).
    staged: Option<Arc<Mutex<StagedWrites>>>,
}

/// The writes a staged tree holds back, by key.
type StagedWrites = BTreeMap<Vec<u8>, Staged>;

/// A write held back by a staged tree.
#[derive(Clone, Debug)]
enum Staged {
    /// A plain value, or the plaintext of a record to be sealed with the key.
    Put(Vec<u8>, Option<KeyId>),
    Removed,
}

/// One write of a batch.
#[derive(Debug)]
enum Op {
    /// The value to store (a sealed record, or a plain value).
    Put(Vec<u8>),
    /// A record to be sealed with the key (a staged tree seals when it commits).
    Plaintext(Vec<u8>, KeyId),
    Remove,
}

impl Tree {
    fn aad(&self, key: &[u8]) -> Vec<u8> {
        let name = self.name.as_str();
        let mut aad = Vec::with_capacity(name.len() + 1 + key.len());
        aad.extend_from_slice(name.as_bytes());
        aad.push(0);
        aad.extend_from_slice(key);
        aad
    }

    fn codec(&self, source: serde_json::Error) -> Error {
        Error::Codec { what: format!("in {}", self.name.as_str()), source }
    }

    /// What a staged tree holds back for `key`.
    fn staged_at(&self, key: &[u8]) -> Option<Staged> {
        self.staged.as_ref()?.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    /// A view of this tree whose writes are held back until
    /// [`Tree::commit`]: reads see them, nothing reaches the store, and no
    /// key is made for them before then. Used to check a set of changes as
    /// a whole and write them in one batch, or not at all.
    pub fn staged(&self) -> Tree {
        Tree { staged: Some(Arc::default()), ..self.clone() }
    }

    /// Whether this is a staged view ([`Tree::staged`]).
    pub fn is_staged(&self) -> bool {
        self.staged.is_some()
    }

    /// Writes what a staged tree held back, in one atomic, flushed batch.
    pub fn commit(&self) -> Result<(), Error> {
        let Some(staged) = &self.staged else { return Ok(()) };
        let held = std::mem::take(&mut *staged.lock().unwrap_or_else(|p| p.into_inner()));
        let base = Tree { staged: None, ..self.clone() };
        let mut b = base.batch();
        for (k, s) in held {
            match s {
                Staged::Put(v, None) => b.put_plain(&k, &v),
                Staged::Put(v, Some(kid)) => b.put_sealed_bytes(&k, &kid, &v)?,
                Staged::Removed => b.remove(&k),
            }
        }
        base.apply(b)
    }

    /// The raw value under `key`: a staged write first, then the store.
    fn raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    /// Reads and opens a sealed record.
    pub fn get_sealed<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, Error> {
        let Some(plain) = self.get_sealed_bytes(key)? else { return Ok(None) };
        serde_json::from_slice(&plain).map(Some).map_err(|e| self.codec(e))
    }

    /// Reads and opens a sealed record stored as raw bytes ([`Batch::put_sealed_bytes`]).
    pub fn get_sealed_bytes(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        match self.staged_at(key) {
            Some(Staged::Put(v, Some(_))) => return Ok(Some(v)),
            Some(Staged::Put(_, None)) => return Err(Error::Invalid("a plain value read as a sealed record".into())),
            Some(Staged::Removed) => return Ok(None),
            None => {}
        }
        let Some(sealed) = self.raw(key)? else { return Ok(None) };
        Ok(Some(faxgate_retention::open(self.store.vault(), &self.aad(key), &sealed)?))
    }

    /// Reads a plain (non-personal) value.
    pub fn get_plain(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        match self.staged_at(key) {
            Some(Staged::Put(v, None)) => Ok(Some(v)),
            Some(Staged::Put(_, Some(_))) => Err(Error::Invalid("a sealed record read as a plain value".into())),
            Some(Staged::Removed) => Ok(None),
            None => self.raw(key),
        }
    }

    /// Whether `key` exists.
    pub fn contains(&self, key: &[u8]) -> Result<bool, Error> {
        match self.staged_at(key) {
            Some(Staged::Put(..)) => Ok(true),
            Some(Staged::Removed) => Ok(false),
            None => Ok(self.tree.contains_key(key)?),
        }
    }

    /// The keys under `prefix`, in order.
    pub fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        let mut keys: Vec<Vec<u8>> = self
            .tree
            .scan_prefix(prefix)
            .keys()
            .filter(|k| k.as_ref().map_or(true, |k| k.as_ref() != layout::MANIFEST))
            .map(|k| Ok(k?.to_vec()))
            .collect::<Result<_, Error>>()?;
        if let Some(staged) = &self.staged {
            let staged = staged.lock().unwrap_or_else(|p| p.into_inner());
            if !staged.is_empty() {
                let mut set: std::collections::BTreeSet<Vec<u8>> = keys.into_iter().collect();
                for (k, s) in staged.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)) {
                    match s {
                        Staged::Put(..) => set.insert(k.clone()),
                        Staged::Removed => set.remove(k),
                    };
                }
                keys = set.into_iter().collect();
            }
        }
        Ok(keys)
    }

    /// The keys from `from` (inclusive) to `to` (exclusive), in order, read
    /// as the caller goes (not on a staged view).
    pub fn keys_between(&self, from: &[u8], to: &[u8]) -> Result<impl Iterator<Item = Result<Vec<u8>, Error>>, Error> {
        if self.staged.is_some() {
            return Err(Error::Invalid("a range read from a staged tree".into()));
        }
        Ok(self
            .tree
            .range(from.to_vec()..to.to_vec())
            .keys()
            .filter(|k| k.as_ref().map_or(true, |k| k.as_ref() != layout::MANIFEST))
            .map(|k| Ok(k?.to_vec())))
    }

    /// The key id a sealed record under `key` names, if the record exists.
    pub fn sealed_key_id(&self, key: &[u8]) -> Result<Option<KeyId>, Error> {
        match self.staged_at(key) {
            Some(Staged::Put(_, kid)) => return Ok(kid),
            Some(Staged::Removed) => return Ok(None),
            None => {}
        }
        match self.raw(key)? {
            Some(v) => Ok(Some(faxgate_retention::sealed_key_id(&v)?)),
            None => Ok(None),
        }
    }

    /// A new, empty batch of writes for this tree.
    pub fn batch(&self) -> Batch<'_> {
        Batch { tree: self, ops: Vec::new() }
    }

    /// Applies `batch` atomically, with the tree's manifest, and flushes it
    /// to disk. On a staged tree, holds the writes back instead.
    pub fn apply(&self, batch: Batch<'_>) -> Result<(), Error> {
        if let Some(staged) = &self.staged {
            let mut staged = staged.lock().unwrap_or_else(|p| p.into_inner());
            for (k, op) in batch.ops {
                let s = match op {
                    Op::Put(v) => Staged::Put(v, None),
                    Op::Plaintext(v, kid) => Staged::Put(v, Some(kid)),
                    Op::Remove => Staged::Removed,
                };
                staged.insert(k, s);
            }
            return Ok(());
        }
        let _writing = self.store.inner.writes.read().unwrap_or_else(|p| p.into_inner());
        {
            // The manifest follows every write, in the same batch: writers
            // of a tree take its lock for this (not for the flush below,
            // which concurrent writers share).
            let mut state = self.manifest.lock().unwrap_or_else(|p| p.into_inner());
            let mut m = *state;
            let mut current: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
            let mut sled_batch = sled::Batch::default();
            let name = self.name.as_str();
            for (k, op) in batch.ops {
                let old = match current.get(&k) {
                    Some(v) => v.clone(),
                    None => self.raw(&k)?,
                };
                if let Some(old) = &old {
                    m.toggle(name, &k, old);
                    m.count -= 1;
                }
                let new = match op {
                    Op::Put(v) => Some(v),
                    Op::Plaintext(v, kid) => {
                        Some(faxgate_retention::seal(self.store.vault(), &kid, &self.aad(&k), &v)?)
                    }
                    Op::Remove => None,
                };
                match &new {
                    Some(v) => {
                        m.toggle(name, &k, v);
                        m.count += 1;
                        sled_batch.insert(k.as_slice(), v.as_slice());
                    }
                    None => sled_batch.remove(k.as_slice()),
                }
                current.insert(k, new);
            }
            m.seq += 1;
            sled_batch.insert(layout::MANIFEST, m.encode());
            self.tree.apply_batch(sled_batch)?;
            *state = m;
        }
        self.store.flush()
    }
}

impl Tree {
    /// Removes every entry under each of `prefixes` (not on a staged view):
    /// each entry read once, as the scan passes it, for the manifest; a few
    /// thousand removals per atomic batch with the manifest; one flush at
    /// the end. The tree's writers wait meanwhile, so the manifest copied
    /// beside the store is never one the disk does not have yet. Returns
    /// the entries removed under each prefix. (A test build can be told to
    /// pause after the first batch: [`crate::test_pause::MONTH_ERASE_BEGUN`].)
    pub fn remove_prefixes(&self, prefixes: &[&[u8]]) -> Result<Vec<usize>, Error> {
        const CHUNK: usize = 20_000;
        if self.staged.is_some() {
            return Err(Error::Invalid("a range removed from a staged tree".into()));
        }
        let _writing = self.store.inner.writes.read().unwrap_or_else(|p| p.into_inner());
        let mut state = self.manifest.lock().unwrap_or_else(|p| p.into_inner());
        let name = self.name.as_str();
        let mut removed = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            let mut n = 0;
            let mut m = *state;
            let mut batch = sled::Batch::default();
            let mut in_batch = 0;
            for kv in self.tree.scan_prefix(prefix) {
                let (k, v) = kv?;
                if k.as_ref() == layout::MANIFEST {
                    continue;
                }
                m.toggle(name, &k, &v);
                m.count -= 1;
                batch.remove(k);
                in_batch += 1;
                n += 1;
                if in_batch == CHUNK {
                    m.seq += 1;
                    batch.insert(layout::MANIFEST, m.encode());
                    self.tree.apply_batch(std::mem::take(&mut batch))?;
                    *state = m;
                    in_batch = 0;
                    crate::test_pause::pause(crate::test_pause::MONTH_ERASE_BEGUN, || {
                        let _ = self.store.flush();
                    });
                }
            }
            if in_batch > 0 {
                m.seq += 1;
                batch.insert(layout::MANIFEST, m.encode());
                self.tree.apply_batch(batch)?;
                *state = m;
            }
            removed.push(n);
        }
        self.store.flush()?;
        Ok(removed)
    }
}

/// Writes to one tree, applied all or nothing by [`Tree::apply`].
#[derive(Debug)]
pub struct Batch<'t> {
    tree: &'t Tree,
    ops: Vec<(Vec<u8>, Op)>,
}

impl Batch<'_> {
    /// Seals `value` with the key `key_id` and stores it under `key`.
    pub fn put_sealed<T: Serialize>(&mut self, key: &[u8], key_id: &KeyId, value: &T) -> Result<(), Error> {
        let plain = serde_json::to_vec(value).map_err(|e| self.tree.codec(e))?;
        self.put_sealed_bytes(key, key_id, &plain)
    }

    /// Seals raw bytes (a mail message, a document) with `key_id` and stores them under `key`.
    pub fn put_sealed_bytes(&mut self, key: &[u8], key_id: &KeyId, value: &[u8]) -> Result<(), Error> {
        let op = match self.tree.staged {
            Some(_) => Op::Plaintext(value.to_vec(), key_id.clone()),
            None => Op::Put(faxgate_retention::seal(self.tree.store.vault(), key_id, &self.tree.aad(key), value)?),
        };
        self.ops.push((key.to_vec(), op));
        Ok(())
    }

    /// Stores a plain value: only ids and blinded index entries, never personal data.
    pub fn put_plain(&mut self, key: &[u8], value: &[u8]) {
        self.ops.push((key.to_vec(), Op::Put(value.to_vec())));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &[u8]) {
        self.ops.push((key.to_vec(), Op::Remove));
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
        let t = store.tree(TreeName::Holds).unwrap();
        let kid = KeyId::new("account-x").unwrap();
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
        let t = store.tree(TreeName::Holds).unwrap();
        assert_eq!(t.get_sealed::<String>(b"k1").unwrap().unwrap(), "+4533221100");
        store.vault().destroy(&kid).unwrap();
        assert!(matches!(t.get_sealed::<String>(b"k1"), Err(Error::Crypto(_))));
    }
}
