//! The DNS resolvers faxgate asks: `[smtp] dns_servers` (UDP and TCP), or
//! the system's when none are set. DMARC checks ([`crate::mail::dmarc`])
//! and claim verification ([`txt_records`]) use the same ones.

use std::net::SocketAddr;
use std::time::Duration;

use mail_auth::hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::name_server::TokioConnectionProvider;
use mail_auth::hickory_resolver::system_conf::read_system_conf;
use mail_auth::hickory_resolver::{Name, TokioResolver};

use crate::Error;

/// The resolver configuration for `servers`, or the system's when empty.
pub fn resolver_config(servers: &[SocketAddr]) -> Result<(ResolverConfig, ResolverOpts), Error> {
    if servers.is_empty() {
        return read_system_conf().map_err(|e| Error::Invalid(format!("the system's DNS resolvers: {e}")));
    }
    let mut group = NameServerConfigGroup::with_capacity(2 * servers.len());
    for s in servers {
        group.merge(NameServerConfigGroup::from_ips_clear(&[s.ip()], s.port(), true));
    }
    let mut opts = ResolverOpts::default();
    opts.attempts = 1;
    Ok((ResolverConfig::from_parts(None, vec![], group), opts))
}

/// The TXT records at `name` (each record's strings joined), asked of
/// `servers` with a fresh resolver (so no answer cached from before a
/// record was published), within `deadline`. A name that does not exist,
/// or has no TXT record, has none.
///
/// It blocks: it runs its own small runtime on a thread of its own, so it
/// may be called from the blocking pool or from a thread with no runtime,
/// but never holding a lock others wait on.
pub fn txt_records(servers: &[SocketAddr], name: &str, deadline: Duration) -> Result<Vec<String>, Error> {
    let (config, mut opts) = resolver_config(servers)?;
    opts.timeout = opts.timeout.min(deadline);
    opts.cache_size = 0;
    let fqdn = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
        .map_err(|e| Error::Invalid(format!("{name} is not a DNS name: {e}")))?;
    let failed = |why: String| Error::Conflict(format!("the DNS lookup of TXT {name} failed ({why}); try again later"));
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| failed(format!("no runtime: {e}")))?;
            rt.block_on(async {
                let resolver = TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                    .with_options(opts)
                    .build();
                match tokio::time::timeout(deadline, resolver.txt_lookup(fqdn)).await {
                    Err(_) => Err(failed(format!("no answer within {} s", deadline.as_secs()))),
                    Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
                    Ok(Err(e)) => Err(failed(e.to_string())),
                    Ok(Ok(found)) => Ok(found
                        .iter()
                        .map(|txt| txt.txt_data().iter().map(|s| String::from_utf8_lossy(s)).collect::<String>())
                        .collect()),
                }
            })
        })
        .join()
        .unwrap_or_else(|_| Err(failed("the lookup panicked".into())))
    })
}
