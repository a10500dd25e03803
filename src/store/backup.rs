//! `faxgate backup` and `faxgate restore`: a consistent copy of the store
//! and its keys, and its way back, with retention kept.
//!
//! A backup is a directory: `db/` (a sled database holding every tree as it
//! was, manifests included), `spool/` (the sealed message files), `keys/`
//! (every key with its class, owner and deadline, and the tombstones),
//! `retention-audit.jsonl`, and `backup.json`, which says when it was made
//! and the earliest deadline of the data inside it: a backup holds data that
//! must be erased then, so it must be destroyed by that time. Writes wait
//! while the copy is made (a store of a million CDRs takes some seconds).
//!
//! A restore (daemon stopped, into an empty data directory) verifies the
//! backup as `faxgate store verify` does, and refuses one whose deadlines
//! have passed unless told to erase the expired data as it restores.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Manifest, Store};
use crate::Error;

/// `backup.json`: what a backup holds and until when it may be kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupManifest {
    /// When it was made (by the daemon's clock).
    pub created: Timestamp,
    /// The faxgate version that made it.
    pub version: String,
    /// Each tree's manifest as copied.
    pub trees: std::collections::BTreeMap<String, Manifest>,
    /// The keys, with their class, owner and deadline.
    pub keys: Vec<BackupKey>,
    /// The earliest deadline of the data inside: destroy the backup by then.
    pub earliest_deadline: Option<Timestamp>,
    /// Keys whose data has no deadline yet (active accounts, faxes under way):
    /// one may be set at any time, e.g. by a termination.
    pub keys_without_deadline: usize,
    /// Sealed message files copied.
    pub files: usize,
}

/// One key in a backup.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupKey {
    /// Its id.
    pub id: String,
    /// Its class.
    pub class: String,
    /// Its deadline.
    pub deadline: Option<Timestamp>,
}

const MANIFEST: &str = "backup.json";
const AUDIT: &str = "retention-audit.jsonl";

fn io(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error + use<> {
    Error::io(context, path.to_owned())
}

fn private_dir(path: &Path, mode: u32) -> Result<(), Error> {
    fs::create_dir_all(path).map_err(io("cannot create", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io("cannot set the mode of", path))
}

fn copy_file(from: &Path, to: &Path, mode: u32) -> Result<(), Error> {
    fs::copy(from, to).map_err(io("cannot copy", from))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode)).map_err(io("cannot set the mode of", to))?;
    fs::File::open(to).and_then(|f| f.sync_all()).map_err(io("cannot fsync", to))
}

fn sync_dir(path: &Path) -> Result<(), Error> {
    fs::File::open(path).and_then(|f| f.sync_all()).map_err(io("cannot fsync", path))
}

/// Makes a backup of `store` in `out` (which must not exist or be empty),
/// at `now`. Writes to the store wait until the copy is made; the caller
/// keeps the retention sweeper from running meanwhile.
pub fn backup(store: &Store, out: &Path, now: Timestamp) -> Result<BackupManifest, Error> {
    if out.exists() && fs::read_dir(out).map_err(io("cannot read", out))?.next().is_some() {
        return Err(Error::Invalid(format!("{} is not empty; a backup goes into a new directory", out.display())));
    }
    private_dir(out, 0o700)?;
    let _paused = store.inner.writes.write().unwrap_or_else(|p| p.into_inner());
    store.flush()?;
    // The trees, with their manifests, into a new database.
    let db = sled::Config::new().path(out.join("db")).open()?;
    db.import(store.inner.db.export());
    db.flush()?;
    let mut trees = std::collections::BTreeMap::new();
    for name in super::TreeName::ALL {
        let tree = db.open_tree(name.as_str())?;
        let m = match tree.get(super::layout::MANIFEST)? {
            Some(v) => Manifest::decode(&v).unwrap_or_default(),
            None => Manifest::default(),
        };
        trees.insert(name.as_str().to_owned(), m);
    }
    // The sealed files. A message file is written before its job record,
    // so a file whose record is not in the copy belongs to a mail not yet
    // acknowledged when the copy was made: it is left out, as a start
    // removes such a file.
    let mail = db.open_tree(super::TreeName::Mail.as_str())?;
    let spool = out.join("spool");
    private_dir(&spool, 0o750)?;
    let mut files = 0;
    for name in store.files()? {
        if name.starts_with('.') {
            continue;
        }
        if let Ok(id) = name.parse::<crate::types::JobId>()
            && !mail.contains_key(super::layout::mail::job(&id))?
        {
            continue;
        }
        copy_file(&store.file_dir().join(&name), &spool.join(&name), 0o640)?;
        files += 1;
    }
    drop(mail);
    drop(db);
    sync_dir(&spool)?;
    // The keys and tombstones, after the records that name them.
    let keys_out = out.join("keys");
    private_dir(&keys_out, 0o700)?;
    for e in fs::read_dir(store.vault().dir()).map_err(io("cannot read", store.vault().dir()))? {
        let e = e.map_err(io("cannot read", store.vault().dir()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && (name.ends_with(".key") || name.ends_with(".gone")) {
            copy_file(&e.path(), &keys_out.join(&name), 0o600)?;
        }
    }
    sync_dir(&keys_out)?;
    let audit = store.data_dir().join(AUDIT);
    if audit.exists() {
        copy_file(&audit, &out.join(AUDIT), 0o640)?;
    }
    let mut keys = Vec::new();
    for k in store.vault().list()? {
        let Some(meta) = k.meta else { continue };
        keys.push(BackupKey { id: k.id.to_string(), class: meta.class, deadline: meta.deadline });
    }
    let manifest = BackupManifest {
        created: now,
        version: env!("CARGO_PKG_VERSION").into(),
        trees,
        earliest_deadline: keys.iter().filter_map(|k| k.deadline).min(),
        keys_without_deadline: keys.iter().filter(|k| k.deadline.is_none()).count(),
        keys,
        files,
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|source| Error::Codec { what: MANIFEST.into(), source })?;
    fs::write(out.join(MANIFEST), text).map_err(io("cannot write", &out.join(MANIFEST)))?;
    sync_dir(out)?;
    Ok(manifest)
}

/// Reads a backup's `backup.json`.
pub fn read_manifest(dir: &Path) -> Result<BackupManifest, Error> {
    let path = dir.join(MANIFEST);
    let bytes = fs::read(&path).map_err(io("cannot read", &path))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Codec { what: path.display().to_string(), source })
}

/// What a restore found and did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RestoreReport {
    /// The backup's manifest.
    pub backup: BackupManifest,
    /// Keys whose deadline had passed when restoring.
    pub expired: Vec<String>,
    /// Where it was restored to.
    pub data_dir: PathBuf,
}

fn is_empty_or_missing(dir: &Path) -> Result<bool, Error> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io("cannot read", dir.to_owned())(e)),
    }
}

/// Copies a backup into an empty `data_dir` (and `key_dir`). The backup is
/// checked first: its manifest's trees against its database, and its
/// expired keys: refused when some deadline has passed at `now`, unless
/// `erase_expired` (the caller then sweeps the restored store before
/// anything else uses it).
pub fn restore(
    from: &Path,
    data_dir: &Path,
    key_dir: &Path,
    now: Timestamp,
    erase_expired: bool,
) -> Result<RestoreReport, Error> {
    let backup = read_manifest(from)?;
    for dir in [data_dir, key_dir] {
        let usable = is_empty_or_missing(dir)? || (dir == data_dir && only_key_dir(data_dir, key_dir)?);
        if !usable {
            return Err(Error::Invalid(format!(
                "{} is not empty; restore into an empty data directory (move the old one away first)",
                dir.display()
            )));
        }
    }
    let expired: Vec<String> =
        backup.keys.iter().filter(|k| k.deadline.is_some_and(|d| d <= now)).map(|k| k.id.clone()).collect();
    if !expired.is_empty() && !erase_expired {
        return Err(Error::Invalid(format!(
            "the backup of {} holds data past its deadline ({} key(s), the earliest due {}); it may not be \
             restored as it is: restore it with --erase-expired to erase that data as it is restored, or destroy it",
            backup.created,
            expired.len(),
            backup.earliest_deadline.map(|t| t.to_string()).unwrap_or_default()
        )));
    }
    private_dir(data_dir, 0o750)?;
    private_dir(key_dir, 0o700)?;
    // The database: files of a closed sled database, copied as they are.
    copy_tree(&from.join("db"), &data_dir.join("db"))?;
    let spool = data_dir.join("spool");
    private_dir(&spool, 0o750)?;
    for e in fs::read_dir(from.join("spool")).map_err(io("cannot read", &from.join("spool")))? {
        let e = e.map_err(io("cannot read", &from.join("spool")))?;
        copy_file(&e.path(), &spool.join(e.file_name()), 0o640)?;
    }
    sync_dir(&spool)?;
    for e in fs::read_dir(from.join("keys")).map_err(io("cannot read", &from.join("keys")))? {
        let e = e.map_err(io("cannot read", &from.join("keys")))?;
        copy_file(&e.path(), &key_dir.join(e.file_name()), 0o600)?;
    }
    sync_dir(key_dir)?;
    if from.join(AUDIT).exists() {
        copy_file(&from.join(AUDIT), &data_dir.join(AUDIT), 0o640)?;
    }
    // The copy beside the store: the trees as backed up.
    let witness = super::Witness { trees: backup.trees.clone() };
    let text = serde_json::to_vec_pretty(&witness).map_err(|source| Error::Codec { what: "witness".into(), source })?;
    fs::write(data_dir.join(super::WITNESS), text).map_err(io("cannot write", data_dir))?;
    sync_dir(data_dir)?;
    Ok(RestoreReport { backup, expired, data_dir: data_dir.to_owned() })
}

/// Whether `data_dir` holds nothing but an empty `key_dir`.
fn only_key_dir(data_dir: &Path, key_dir: &Path) -> Result<bool, Error> {
    let mut entries = fs::read_dir(data_dir).map_err(io("cannot read", data_dir))?;
    Ok(entries.all(|e| e.is_ok_and(|e| e.path() == key_dir)) && is_empty_or_missing(key_dir)?)
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    private_dir(to, 0o750)?;
    for e in fs::read_dir(from).map_err(io("cannot read", from))? {
        let e = e.map_err(io("cannot read", from))?;
        let kind = e.file_type().map_err(io("cannot read", &e.path()))?;
        if kind.is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        } else {
            copy_file(&e.path(), &to.join(e.file_name()), 0o640)?;
        }
    }
    sync_dir(to)
}
