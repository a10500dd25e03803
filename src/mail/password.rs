//! SMTP AUTH passwords: stored only as argon2id PHC strings (RFC 9106),
//! sealed with the account's key inside its sender entry.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};

use crate::Error;

/// The PHC string of `password` with a fresh salt.
pub fn hash(password: &str) -> Result<String, Error> {
    if password.len() < 8 {
        return Err(Error::Invalid("an SMTP password must have at least 8 characters".into()));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Invalid(format!("cannot hash password: {e}")))
}

/// Whether `password` matches the PHC string `phc`.
pub fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let h = super::hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify(&h, "correct horse"));
        assert!(!super::verify(&h, "correct horsf"));
        assert!(!super::verify("garbage", "x"));
        assert!(super::hash("short").is_err());
    }
}
