//! The envelope of a sealed record.
//!
//! ```text
//! 0x01 | key id length (1 byte) | key id | nonce (24 bytes) | ciphertext+tag
//! ```
//!
//! XChaCha20-Poly1305 with a random 192-bit nonce. The caller's associated
//! data (the record's place in the store) is authenticated, so a sealed
//! value moved to another key fails to open. The key id is in the clear: it
//! names a retention class member, never a person.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::Error;
use crate::vault::{KeyId, KeyVault};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// Seals `plaintext` with the key `key_id` (created if needed).
pub fn seal(vault: &KeyVault, key_id: &KeyId, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let key = vault.get_or_create(key_id)?;
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).map_err(Error::Random)?;
    let ct = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .map_err(|_| Error::Corrupt("encryption failed"))?;
    let id = key_id.as_str().as_bytes();
    let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + ct.len());
    out.push(VERSION);
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// The key id a sealed record names.
pub fn sealed_key_id(sealed: &[u8]) -> Result<KeyId, Error> {
    let (&version, rest) = sealed.split_first().ok_or(Error::Corrupt("empty"))?;
    if version != VERSION {
        return Err(Error::Corrupt("unknown envelope version"));
    }
    let (&n, rest) = rest.split_first().ok_or(Error::Corrupt("truncated header"))?;
    let id = rest.get(..n as usize).ok_or(Error::Corrupt("truncated key id"))?;
    let id = std::str::from_utf8(id).map_err(|_| Error::Corrupt("key id is not text"))?;
    KeyId::new(id).map_err(|_| Error::Corrupt("invalid key id"))
}

/// Opens a sealed record. A destroyed key gives [`Error::KeyDestroyed`].
pub fn open(vault: &KeyVault, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
    let key_id = sealed_key_id(sealed)?;
    let body = &sealed[2 + key_id.as_str().len()..];
    if body.len() < NONCE_LEN + 16 {
        return Err(Error::Corrupt("truncated ciphertext"));
    }
    let key = vault.get(&key_id)?.ok_or_else(|| Error::KeyDestroyed(key_id.to_string()))?;
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let (nonce, ct) = body.split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| Error::Corrupt("authentication failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_erasure() {
        let tmp = tempfile::tempdir().unwrap();
        let v = KeyVault::open(tmp.path().join("k")).unwrap();
        let id = KeyId::new("job-j1").unwrap();
        let s = seal(&v, &id, b"place", b"+4533221100").unwrap();
        assert!(!s.windows(11).any(|w| w == b"+4533221100"));
        assert_eq!(sealed_key_id(&s).unwrap(), id);
        assert_eq!(open(&v, b"place", &s).unwrap(), b"+4533221100");
        assert!(matches!(open(&v, b"elsewhere", &s), Err(Error::Corrupt(_))));
        let mut bad = s.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(open(&v, b"place", &bad).is_err());
        assert!(open(&v, b"place", &s[..10]).is_err());
        v.destroy(&id).unwrap();
        assert!(matches!(open(&v, b"place", &s), Err(Error::KeyDestroyed(_))));
    }
}
