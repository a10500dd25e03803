//! Keyed hashes for lookup indexes.
//!
//! An index from a fax number to its account must not hold the number. The
//! index key is `HMAC-SHA-256(index key, domain || 0x00 || value)`: a disk
//! reader without the install-wide index key cannot test guesses against it,
//! and the domain separates kinds of value (numbers, senders, references).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::vault::Key;

/// Computes index keys with the install-wide index key.
#[derive(Clone)]
pub struct Blinder {
    key: Key,
}

impl std::fmt::Debug for Blinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Blinder(..)")
    }
}

impl Blinder {
    /// A blinder using `key` (the vault's index key).
    pub fn new(key: Key) -> Self {
        Blinder { key }
    }

    /// The blinded form of `value` in `domain`.
    pub fn blind(&self, domain: &str, value: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.bytes()).expect("HMAC takes any key length");
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_keys_separate() {
        let a = Blinder::new(Key::from_bytes([1; 32]));
        let b = Blinder::new(Key::from_bytes([2; 32]));
        assert_eq!(a.blind("number", "+4533221100"), a.blind("number", "+4533221100"));
        assert_ne!(a.blind("number", "+4533221100"), a.blind("sender", "+4533221100"));
        assert_ne!(a.blind("number", "+4533221100"), b.blind("number", "+4533221100"));
    }
}
