//! faxgate-retention: what makes deletion in faxgate final.
//!
//! The mechanism only: personal data never reaches the store in plaintext.
//! Each record is sealed with a key its user chooses by retention class;
//! erasing destroys the key, after which the records are unreadable even
//! where old copies survive on disk (sled never zeroes what it deletes). The
//! classes themselves (what is kept how long, which key seals what) are the
//! user's: this crate knows no CDR, account or mail.
//!
//! # Layout
//! - [`vault`]: the key vault, one small file per key outside the store,
//!   created on demand and destroyed by overwrite, fsync, unlink, fsync.
//! - [`seal`]: the record envelope (XChaCha20-Poly1305) naming its key.
//! - [`blind`]: keyed hashes (HMAC-SHA-256) for lookup indexes, so that an
//!   index never holds a number or an address in plaintext.
//! - [`logid`]: numbers, addresses and names in log lines as keyed hashes.
//! - [`sweeper`]: runs its user's categories at their deadlines; [`audit`]: the trail it writes.
//! - [`clock`]: the injected clock the whole workspace uses.
//! - [`Error`]: the crate's one error type.
#![forbid(unsafe_code)]

pub mod audit;
pub mod blind;
pub mod clock;
mod error;
pub mod fsync;
pub mod logid;
pub mod seal;
pub mod sweeper;
pub mod vault;

pub use blind::Blinder;
pub use error::Error;
pub use logid::{LogId, Scrubbed};
pub use seal::{open, seal, sealed_key_id};
pub use sweeper::{Category, Sweeper};
pub use vault::{Key, KeyId, KeyVault};
