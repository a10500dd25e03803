//! AUTH failures, counted per client address and per user name.
//!
//! A failed login is answered after a delay that doubles with each failure
//! counted for its address or its user name (up to a maximum); after too
//! many, the address or the name is locked out for a while, and AUTH gets
//! `454 4.7.0` without its password being tried, as Dovecot's auth penalty
//! and OpenSSH's per-source penalties do. Failures are forgotten once a
//! lockout's length passes without one, when a lockout ends, and (for the
//! user name) when it logs in. Every call takes `now`: the counts are
//! tested on made-up instants.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How failed logins are slowed down and locked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthLimits {
    /// The delay before the answer to a first failure; doubled for each
    /// further one.
    pub delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// Failures from one client address that lock it out.
    pub max_failures_per_address: u32,
    /// Failures for one user name (from any address) that lock it out.
    pub max_failures_per_user: u32,
    /// How long a lockout lasts.
    pub lockout: Duration,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15),
            max_failures_per_address: 10,
            max_failures_per_user: 30,
            lockout: Duration::from_secs(600),
        }
    }
}

/// Entries kept per map at most: beyond it, entries of new addresses or
/// names are not made (the existing ones still count), so that a flood of
/// made-up user names cannot grow memory without bound.
const MAX_ENTRIES: usize = 100_000;

/// The longest user name kept as a key (longer ones are cut).
const MAX_USER: usize = 320;

#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl Record {
    /// The failures that still count at `now` (0 once forgotten).
    fn current(&self, now: Instant, lockout: Duration) -> u32 {
        match self.locked_until {
            Some(until) if now < until => self.failures,
            Some(_) => 0,
            None if now.saturating_duration_since(self.last) >= lockout => 0,
            None => self.failures,
        }
    }

    fn locked(&self, now: Instant) -> Option<Instant> {
        self.locked_until.filter(|&until| now < until)
    }
}

#[derive(Debug, Default)]
struct Counts {
    by_address: HashMap<IpAddr, Record>,
    by_user: HashMap<String, Record>,
}

/// What a failure earned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Failures counted for the address or the name, whichever is more.
    pub failures: u32,
    /// How long to wait before answering.
    pub delay: Duration,
    /// The address or the name is locked out until then.
    pub locked_until: Option<Instant>,
}

/// The failure counts, shared by every listener.
#[derive(Clone, Debug)]
pub struct AuthThrottle {
    limits: Arc<std::sync::RwLock<AuthLimits>>,
    counts: Arc<Mutex<Counts>>,
}

fn user_key(user: &str) -> String {
    user.chars().take(MAX_USER).collect::<String>().to_lowercase()
}

impl AuthThrottle {
    /// No failures yet.
    pub fn new(limits: AuthLimits) -> Self {
        AuthThrottle { limits: Arc::new(std::sync::RwLock::new(limits)), counts: Arc::default() }
    }

    /// The limits.
    pub fn limits(&self) -> AuthLimits {
        self.limits.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// New limits for the failures that follow (a reload); failures counted
    /// so far are kept.
    pub fn set_limits(&self, limits: AuthLimits) {
        *self.limits.write().unwrap_or_else(|p| p.into_inner()) = limits;
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Until when `peer` or `user` is locked out, if either is now.
    pub fn locked(&self, peer: IpAddr, user: &str, now: Instant) -> Option<Instant> {
        let c = self.counts();
        let a = c.by_address.get(&peer).and_then(|r| r.locked(now));
        let u = c.by_user.get(&user_key(user)).and_then(|r| r.locked(now));
        a.max(u)
    }

    /// A login of `user` from `peer` failed at `now`.
    pub fn failed(&self, peer: IpAddr, user: &str, now: Instant) -> Failure {
        let limits = &self.limits();
        let mut c = self.counts();
        let a = bump(&mut c.by_address, peer, now, limits.lockout, limits.max_failures_per_address);
        let u = bump(&mut c.by_user, user_key(user), now, limits.lockout, limits.max_failures_per_user);
        let failures = a.failures.max(u.failures);
        let doublings = failures.saturating_sub(1).min(30);
        let delay = limits.delay.saturating_mul(1 << doublings).min(limits.max_delay);
        Failure { failures, delay, locked_until: a.locked_until.max(u.locked_until) }
    }

    /// `user` logged in: its failures are forgotten (those of the address
    /// are not, so that logging in to an account of one's own does not
    /// reset the count of guesses at others').
    pub fn succeeded(&self, user: &str) {
        self.counts().by_user.remove(&user_key(user));
    }
}

/// Counts one failure for `key`; returns its record after.
fn bump<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Record>,
    key: K,
    now: Instant,
    lockout: Duration,
    max: u32,
) -> Record {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.retain(|_, r| r.current(now, lockout) > 0);
        if map.len() >= MAX_ENTRIES {
            // Not counted by this key; the other one still counts.
            return Record { failures: 0, last: now, locked_until: None };
        }
    }
    let r = map.entry(key).or_insert(Record { failures: 0, last: now, locked_until: None });
    let failures = r.current(now, lockout).saturating_add(1);
    *r = Record {
        failures,
        last: now,
        locked_until: if r.locked(now).is_some() {
            r.locked_until
        } else if failures >= max {
            Some(now + lockout)
        } else {
            None
        },
    };
    *r
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn limits() -> AuthLimits {
        AuthLimits {
            delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_failures_per_address: 5,
            max_failures_per_user: 8,
            lockout: Duration::from_secs(60),
        }
    }

    #[test]
    fn delays_double_then_the_address_is_locked_out_until_the_lockout_ends() {
        let t = AuthThrottle::new(limits());
        let t0 = Instant::now();
        let delays: Vec<_> = (0..4).map(|i| t.failed(A, &format!("user{i}"), t0).delay.as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800]);
        assert_eq!(t.locked(A, "someone", t0), None);
        let f = t.failed(A, "user9", t0);
        assert_eq!(
            (f.failures, f.delay, f.locked_until),
            (5, Duration::from_secs(1), Some(t0 + Duration::from_secs(60)))
        );
        assert_eq!(t.locked(A, "anyone", t0 + Duration::from_secs(59)), Some(t0 + Duration::from_secs(60)));
        assert_eq!(t.locked(B, "anyone", t0), None, "another address is not locked out");
        // More failures during the lockout do not make it longer.
        assert_eq!(t.failed(A, "x", t0 + Duration::from_secs(30)).locked_until, Some(t0 + Duration::from_secs(60)));
        // After it, the count starts over.
        let after = t0 + Duration::from_secs(60);
        assert_eq!(t.locked(A, "anyone", after), None);
        assert_eq!(t.failed(A, "y", after).failures, 1);
    }

    #[test]
    fn one_user_name_guessed_from_many_addresses_is_locked_out() {
        let t = AuthThrottle::new(limits());
        let t0 = Instant::now();
        for i in 0..7u8 {
            let peer = IpAddr::V4(Ipv4Addr::new(198, 51, 100, i));
            assert_eq!(t.failed(peer, "Boss@Customer.test", t0).failures, u32::from(i) + 1);
        }
        assert_eq!(t.locked(B, "boss@customer.test", t0), None);
        t.failed(B, "boss@customer.TEST", t0);
        assert!(t.locked(IpAddr::V4(Ipv4Addr::LOCALHOST), "boss@customer.test", t0).is_some(), "names in any case");
        assert_eq!(t.locked(IpAddr::V4(Ipv4Addr::LOCALHOST), "other@customer.test", t0), None);
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_lockout_length_and_a_login_forgets_the_name() {
        let t = AuthThrottle::new(limits());
        let t0 = Instant::now();
        t.failed(A, "u", t0);
        t.failed(A, "u", t0 + Duration::from_secs(10));
        assert_eq!(
            t.failed(A, "v", t0 + Duration::from_secs(69)).failures,
            3,
            "60 s since the last one has not passed"
        );
        assert_eq!(t.failed(A, "v", t0 + Duration::from_secs(130)).failures, 1);
        t.failed(B, "w", t0);
        t.failed(B, "w", t0);
        t.succeeded("w");
        let f = t.failed(IpAddr::V4(Ipv4Addr::LOCALHOST), "w", t0);
        assert_eq!(f.failures, 1, "the name's count went with the login");
        assert_eq!(t.failed(B, "z", t0).failures, 3, "the address's did not");
    }

    #[test]
    fn made_up_names_do_not_grow_memory_without_bound() {
        let t = AuthThrottle::new(limits());
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES + 10 {
            t.failed(B, &format!("n{i}"), t0);
        }
        assert_eq!(t.counts().by_user.len(), MAX_ENTRIES);
        // Once old entries are forgotten, new ones are counted again.
        let later = t0 + Duration::from_secs(600);
        t.failed(B, "fresh", later);
        assert!(t.counts().by_user.len() < 10);
    }
}
