//! Personal data in log lines: a fax number, a mail address or a name is
//! written as a keyed hash of it, `n:3fa9c2d1` (number), `a:…` (address),
//! `p:…` (person or company name), unless the operator turned personal data
//! on (`log.personal_data`). The hash is `HMAC-SHA-256(log key, kind || 0 ||
//! value)`, its first four bytes in hex: stable per value for as long as the
//! log key stays, so one number can be followed through the log without the
//! log holding it, and a reader without the key cannot test guesses.
//!
//! The process installs its log key once ([`install`]); before that (or in a
//! process that never does) values are hashed with a random key of the
//! process, never written in clear. Every logging site writes such values
//! through [`LogId`] (its `Display`), never by formatting them itself.

use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::vault::Key;

/// What a value is; its letter prefixes the hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A fax or phone number: `n:`.
    Number,
    /// A mail address or login name: `a:`.
    Address,
    /// A person's or a company's name, a station id: `p:`.
    Name,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Number => 'n',
            Kind::Address => 'a',
            Kind::Name => 'p',
        }
    }
}

struct State {
    key: Key,
    personal_data: bool,
}

static STATE: RwLock<Option<State>> = RwLock::new(None);

/// Installs the log key and whether values are written in clear; later
/// calls replace both (a reload).
pub fn install(key: Key, personal_data: bool) {
    *STATE.write().unwrap_or_else(|p| p.into_inner()) = Some(State { key, personal_data });
}

/// Writes values in clear (or not), keeping the key (a process that never
/// installed one: the key of the process).
pub fn set_personal_data(on: bool) {
    let mut s = STATE.write().unwrap_or_else(|p| p.into_inner());
    s.get_or_insert_with(|| State { key: process_key(), personal_data: false }).personal_data = on;
}

/// Whether values are written in clear.
pub fn personal_data() -> bool {
    STATE.read().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|s| s.personal_data)
}

/// The hash of `value` under `key`, as it appears in the log (`n:3fa9c2d1`).
pub fn hash_with(key: &Key, kind: Kind, value: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.bytes()).expect("HMAC takes any key length");
    mac.update(&[kind.letter() as u8, 0]);
    mac.update(value.as_bytes());
    let d = mac.finalize().into_bytes();
    format!("{}:{:02x}{:02x}{:02x}{:02x}", kind.letter(), d[0], d[1], d[2], d[3])
}

fn hash(kind: Kind, value: &str) -> String {
    {
        let s = STATE.read().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = s.as_ref() {
            return hash_with(&s.key, kind, value);
        }
    }
    let mut s = STATE.write().unwrap_or_else(|p| p.into_inner());
    let state = s.get_or_insert_with(|| State { key: process_key(), personal_data: false });
    hash_with(&state.key, kind, value)
}

/// A key of this process alone: from the system's random source, or (should
/// that fail) from the standard library's per-process hash seeds.
fn process_key() -> Key {
    Key::random().unwrap_or_else(|_| {
        use std::hash::{BuildHasher, Hasher};
        let mut bytes = [0; 32];
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
        Key::from_bytes(bytes)
    })
}

/// A value as a log line shows it: its hash, or itself when personal data
/// is on.
#[derive(Clone, Copy)]
pub struct LogId<'a> {
    kind: Kind,
    value: &'a str,
}

impl std::fmt::Debug for LogId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl<'a> LogId<'a> {
    /// A fax or phone number.
    pub fn number(value: &'a (impl AsRef<str> + ?Sized)) -> Self {
        LogId { kind: Kind::Number, value: value.as_ref() }
    }

    /// A mail address (or a login name).
    pub fn address(value: &'a (impl AsRef<str> + ?Sized)) -> Self {
        LogId { kind: Kind::Address, value: value.as_ref() }
    }

    /// A person's or a company's name, or a fax station id.
    pub fn name(value: &'a (impl AsRef<str> + ?Sized)) -> Self {
        LogId { kind: Kind::Name, value: value.as_ref() }
    }
}

impl std::fmt::Display for LogId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if personal_data() { f.write_str(self.value) } else { f.write_str(&hash(self.kind, self.value)) }
    }
}

/// Free text that may quote a number or an address (an error from a peer,
/// a refusal's reason), as a log line shows it: unless personal data is
/// on, every word with an `@` is written as an address's hash and every
/// run of six or more digits (with a leading `+` and single spaces between
/// digits, not part of a longer word) as a number's.
#[derive(Clone, Copy)]
pub struct Scrubbed<T>(pub T);

impl<T: std::fmt::Display> std::fmt::Debug for Scrubbed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl<T: std::fmt::Display> std::fmt::Display for Scrubbed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.to_string();
        if personal_data() { f.write_str(&text) } else { f.write_str(&scrub(&text)) }
    }
}

fn scrub(text: &str) -> String {
    let is_addr = |c: char| c.is_ascii_alphanumeric() || "._%+-@".contains(c);
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        // A word around an '@'.
        if is_addr(chars[i]) {
            let start = i;
            let mut end = i;
            while end < chars.len() && is_addr(chars[end]) {
                end += 1;
            }
            let word: String = chars[start..end].iter().collect();
            let trimmed = word.trim_matches(|c: char| c == '.' || c == '-');
            if let Some(at) = trimmed.find('@')
                && at > 0
                && at + 1 < trimmed.len()
            {
                let lead = word.find(trimmed).unwrap_or(0);
                out.push_str(&word[..lead]);
                out.push_str(&hash(Kind::Address, trimmed));
                out.push_str(&word[lead + trimmed.len()..]);
                i = end;
                continue;
            }
        }
        // A number: '+'? digit (separator? digit)*, six digits or more.
        if chars[i].is_ascii_digit() || (chars[i] == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            let mut end = if chars[i] == '+' { i + 1 } else { i };
            let mut digits = 0;
            while end < chars.len() {
                if chars[end].is_ascii_digit() {
                    digits += 1;
                    end += 1;
                } else if chars[end] == ' '
                    && chars.get(end + 1).is_some_and(char::is_ascii_digit)
                    && chars[end - 1].is_ascii_digit()
                {
                    end += 1;
                } else {
                    break;
                }
            }
            let glued = start > 0 && chars[start - 1].is_ascii_alphanumeric()
                || end < chars.len() && chars[end].is_ascii_alphanumeric();
            if digits >= 6 && !glued {
                let value: String = chars[start..end].iter().filter(|c| **c != ' ').collect();
                out.push_str(&hash(Kind::Number, &value));
            } else {
                out.extend(&chars[start..end]);
            }
            i = end;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_per_value_and_kind_and_key() {
        let k = Key::from_bytes([7; 32]);
        let n = hash_with(&k, Kind::Number, "+4533221100");
        assert_eq!(n, hash_with(&k, Kind::Number, "+4533221100"));
        assert!(n.starts_with("n:") && n.len() == 10, "{n}");
        assert_ne!(n, hash_with(&k, Kind::Number, "+4533221101"));
        assert_ne!(n[2..], hash_with(&k, Kind::Address, "+4533221100")[2..]);
        assert_ne!(n, hash_with(&Key::from_bytes([8; 32]), Kind::Number, "+4533221100"));
    }

    #[test]
    fn free_text_is_scrubbed_of_numbers_and_addresses() {
        let t = scrub(
            "550 5.1.1 <inbox@customer.test>: no such user; call to +45 33 22 11 00 (33221100) at 2026-12-03T17:52:14Z, 120 bytes",
        );
        assert!(!t.contains("inbox") && !t.contains("customer.test"), "{t}");
        assert!(!t.contains("33 22") && !t.contains("33221100"), "{t}");
        assert!(t.starts_with("550 5.1.1 <a:") && t.contains(">: no such user; call to n:"), "{t}");
        assert!(t.contains("at 2026-12-03T17:52:14Z, 120 bytes"), "{t}");
        assert_eq!(scrub("+4533221100"), scrub("+45 33 22 11 00"));
        assert_eq!(scrub("sip:+4533221100@10.0.0.1"), format!("sip:{}", scrub("+4533221100@10.0.0.1")));
    }

    #[test]
    fn hashed_unless_personal_data_is_on() {
        let k = Key::from_bytes([9; 32]);
        install(k.clone(), false);
        assert_eq!(
            LogId::address("boss@customer.test").to_string(),
            hash_with(&k, Kind::Address, "boss@customer.test")
        );
        assert_eq!(format!("{:?}", LogId::number("+4533221100")), hash_with(&k, Kind::Number, "+4533221100"));
        install(k, true);
        assert_eq!(LogId::name("Acme").to_string(), "Acme");
        install(Key::from_bytes([9; 32]), false);
    }
}
