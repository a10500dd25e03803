//! Who may do what over the admin socket: the peer's credentials
//! (SO_PEERCRED), not what the client says.
//!
//! Root and the daemon's own user act as the operator, and so do the users
//! and groups in `[admin.operators]`. The users and groups in
//! `[admin.tenants.<id>]` act as that tenant's admin. Anyone else who can
//! open the socket (its group, `admin.group`) is refused. A request names a
//! scope; the server narrows the peer's [`Principal`] to it: a tenant's peer
//! asking as the operator gets its tenant's view, and asking as another
//! tenant is refused. What each principal may then do is decided in
//! [`super::principal`].

use super::principal::Principal;
use crate::Error;
use crate::config::AdminConfig;
use crate::directory::Scope;
use crate::types::TenantId;

/// The configured users and groups, resolved to ids at start.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// uid of the daemon.
    daemon_uid: u32,
    operators: Ids,
    tenants: Vec<(TenantId, Ids)>,
}

#[derive(Clone, Debug, Default)]
struct Ids {
    users: Vec<u32>,
    groups: Vec<u32>,
}

impl Ids {
    fn matches(&self, uid: u32, gids: &[u32]) -> bool {
        self.users.contains(&uid) || gids.iter().any(|g| self.groups.contains(g))
    }
}

/// The peer of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// Its user.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// Its process, when the kernel says.
    pub pid: Option<i32>,
}

impl Access {
    /// Resolves `[admin]`'s names; a name that does not exist is an error.
    pub fn from_config(c: &AdminConfig) -> Result<Access, Error> {
        let ids =
            |what: &str, p: &crate::config::Principals| -> Result<Ids, Error> {
                let mut ids = Ids::default();
                for u in &p.users {
                    let user = nix::unistd::User::from_name(u).ok().flatten().ok_or_else(|| {
                        Error::Invalid(format!("{what}.users: there is no user {u:?} on this machine"))
                    })?;
                    ids.users.push(user.uid.as_raw());
                }
                for g in &p.groups {
                    let group = nix::unistd::Group::from_name(g).ok().flatten().ok_or_else(|| {
                        Error::Invalid(format!("{what}.groups: there is no group {g:?} on this machine"))
                    })?;
                    ids.groups.push(group.gid.as_raw());
                }
                Ok(ids)
            };
        let mut tenants = Vec::new();
        for (t, p) in &c.tenants {
            let id: TenantId = t.parse().map_err(|e| Error::Invalid(format!("admin.tenants.{t}: {e}")))?;
            tenants.push((id, ids(&format!("admin.tenants.{t}"), p)?));
        }
        Ok(Access {
            daemon_uid: nix::unistd::geteuid().as_raw(),
            operators: ids("admin.operators", &c.operators)?,
            tenants,
        })
    }

    /// The principal `peer` acts as, or why it may not use the socket.
    pub fn principal(&self, peer: &Peer) -> Result<Principal, Error> {
        if peer.uid == 0 || peer.uid == self.daemon_uid {
            return Ok(Principal::Operator);
        }
        let gids = groups_of(peer);
        if self.operators.matches(peer.uid, &gids) {
            return Ok(Principal::Operator);
        }
        let mut mapped = self.tenants.iter().filter(|(_, ids)| ids.matches(peer.uid, &gids)).map(|(t, _)| t);
        match (mapped.next(), mapped.next()) {
            (Some(t), None) => Ok(Principal::TenantAdmin { tenant: t.clone() }),
            (Some(_), Some(_)) => Err(Error::Forbidden(format!(
                "user {} is configured for more than one tenant in [admin.tenants]; it may not use the admin socket",
                peer.uid
            ))),
            (None, _) => Err(Error::Forbidden(format!(
                "user {} is neither an operator nor configured for a tenant ([admin.operators], \
                 [admin.tenants]); it may not use the admin socket",
                peer.uid
            ))),
        }
    }
}

/// The principal a request runs as: the peer's, narrowed to the scope
/// the request asked for (never widened).
pub fn narrow(principal: &Principal, asked: &Scope) -> Result<Principal, Error> {
    match (principal, asked) {
        (p, Scope::Operator) => Ok(p.clone()),
        (Principal::Operator, Scope::Tenant(t)) => Ok(Principal::TenantAdmin { tenant: t.clone() }),
        (p, Scope::Tenant(t)) if p.tenant() == Some(t) => Ok(p.clone()),
        (_, Scope::Tenant(_)) => Err(Error::Forbidden("this connection may act only for its own tenant".into())),
    }
}

/// The peer's primary and supplementary groups (the latter from
/// /proc/PID/status while the process runs).
fn groups_of(peer: &Peer) -> Vec<u32> {
    let mut gids = vec![peer.gid];
    if let Some(pid) = peer.pid
        && let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
        && let Some(line) = status.lines().find_map(|l| l.strip_prefix("Groups:"))
    {
        gids.extend(line.split_whitespace().filter_map(|g| g.parse::<u32>().ok()));
    }
    gids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access {
            daemon_uid: 999,
            operators: Ids { users: vec![1000], groups: vec![50] },
            tenants: vec![
                ("acme".parse().unwrap(), Ids { users: vec![2000], groups: vec![60] }),
                ("beta".parse().unwrap(), Ids { users: vec![3000], groups: vec![] }),
            ],
        }
    }

    fn peer(uid: u32, gid: u32) -> Peer {
        Peer { uid, gid, pid: None }
    }

    #[test]
    fn peers_map_to_their_principal_and_others_are_refused() {
        let a = access();
        let acme = Principal::TenantAdmin { tenant: "acme".parse().unwrap() };
        assert_eq!(a.principal(&peer(0, 0)).unwrap(), Principal::Operator);
        assert_eq!(a.principal(&peer(999, 999)).unwrap(), Principal::Operator);
        assert_eq!(a.principal(&peer(1000, 1000)).unwrap(), Principal::Operator);
        assert_eq!(a.principal(&peer(4000, 50)).unwrap(), Principal::Operator, "an operators' group");
        assert_eq!(a.principal(&peer(2000, 2000)).unwrap(), acme);
        assert_eq!(a.principal(&peer(4000, 60)).unwrap(), acme);
        let e = a.principal(&peer(4000, 4000)).unwrap_err();
        assert!(e.to_string().contains("may not use the admin socket"), "{e}");
    }

    #[test]
    fn a_tenant_may_only_narrow_its_scope() {
        let acme = Scope::Tenant("acme".parse().unwrap());
        let beta = Scope::Tenant("beta".parse().unwrap());
        let acme_admin = Principal::TenantAdmin { tenant: "acme".parse().unwrap() };
        let beta_admin = Principal::TenantAdmin { tenant: "beta".parse().unwrap() };
        assert_eq!(narrow(&acme_admin, &Scope::Operator).unwrap(), acme_admin);
        assert_eq!(narrow(&acme_admin, &acme).unwrap(), acme_admin);
        assert!(narrow(&acme_admin, &beta).is_err());
        assert_eq!(narrow(&Principal::Operator, &beta).unwrap(), beta_admin);
    }
}
