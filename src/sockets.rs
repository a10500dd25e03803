//! Sockets handed over by the service manager (`LISTEN_FDS`, systemd's
//! socket activation): an SMTP listener or a trunk whose configured address
//! is the address of one of them uses that socket instead of binding its
//! own. The sockets stay open across a restart of the daemon (no mail or
//! SIP packet refused while it starts), a port below 1024 needs no
//! privilege, and a test can hand the daemon sockets it bound to port 0.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Mutex;

/// The sockets the process was given, by type and local address.
#[derive(Debug, Default)]
pub struct Inherited {
    tcp: Mutex<HashMap<SocketAddr, TcpListener>>,
    udp: Mutex<HashMap<SocketAddr, UdpSocket>>,
}

impl Inherited {
    /// Takes the sockets `LISTEN_FDS` names (`LISTEN_PID`, when set, must be
    /// this process): TCP listeners and UDP sockets, by their address.
    pub fn from_env() -> std::io::Result<Inherited> {
        let me = Inherited::default();
        let mut fds = listenfd::ListenFd::from_env();
        for i in 0..fds.len() {
            if let Ok(Some(l)) = fds.take_tcp_listener(i) {
                me.tcp.lock().unwrap_or_else(|p| p.into_inner()).insert(l.local_addr()?, l);
            } else if let Ok(Some(u)) = fds.take_udp_socket(i) {
                me.udp.lock().unwrap_or_else(|p| p.into_inner()).insert(u.local_addr()?, u);
            } else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "passed socket {} (descriptor {}) is neither a TCP listener nor a UDP socket",
                        i + 1,
                        i + 3
                    ),
                ));
            }
        }
        Ok(me)
    }
    /// The inherited TCP listener bound to `addr`, if there is one.
    pub fn take_tcp(&self, addr: SocketAddr) -> Option<TcpListener> {
        self.tcp.lock().unwrap_or_else(|p| p.into_inner()).remove(&addr)
    }

    /// The inherited UDP socket bound to `addr`, if there is one.
    pub fn take_udp(&self, addr: SocketAddr) -> Option<UdpSocket> {
        self.udp.lock().unwrap_or_else(|p| p.into_inner()).remove(&addr)
    }

    /// Inherited sockets no listener took, as `tcp 127.0.0.1:25`.
    pub fn unused(&self) -> Vec<String> {
        let tcp = self.tcp.lock().unwrap_or_else(|p| p.into_inner());
        let udp = self.udp.lock().unwrap_or_else(|p| p.into_inner());
        tcp.keys().map(|a| format!("tcp {a}")).chain(udp.keys().map(|a| format!("udp {a}"))).collect()
    }
}
