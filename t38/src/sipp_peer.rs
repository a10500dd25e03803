//! SIPp as a peer in tests (Debian package `sip-tester`): the port it
//! took, read back from the process.

use std::time::{Duration, Instant};

/// The SIP port a SIPp process bound on `ip`. Started without `-p`, SIPp
/// takes the first free port from 5060 up itself (and its media ports from
/// 6000 up); the port is read back from the process's own sockets in
/// /proc, so no test picks a port and releases it for SIPp to take.
pub fn sipp_port(child: &std::process::Child, ip: std::net::Ipv4Addr) -> u16 {
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(p) = udp_ports_of(pid, ip).into_iter().filter(|p| (5060..6000).contains(p)).min() {
            return p;
        }
        assert!(Instant::now() < deadline, "SIPp (pid {pid}) bound no SIP port on {ip}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The UDP ports process `pid` has sockets bound to on `ip`.
fn udp_ports_of(pid: u32, ip: std::net::Ipv4Addr) -> Vec<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    l.to_str().and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/udp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (addr, port) = f.get(1)?.split_once(':')?;
            // The address as the kernel holds it: network order, printed as a host-order word.
            let a = u32::from_str_radix(addr, 16).ok()?;
            let bound = std::net::Ipv4Addr::from(a.to_le_bytes());
            (inodes.contains(*f.get(9)?) && bound == ip).then(|| u16::from_str_radix(port, 16).ok()).flatten()
        })
        .collect()
}
