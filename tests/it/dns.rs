//! A tiny authoritative DNS server on 127.0.0.1 for the DMARC, SPF and DKIM
//! checks: TXT records from a table, NXDOMAIN for names not in it, and an
//! empty answer for other types of names it has. Never the internet. The
//! table can be changed while it serves (a record published later).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Table = Arc<Mutex<HashMap<String, Vec<String>>>>;

pub struct DnsFixture {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    table: Table,
}

impl DnsFixture {
    /// Serves `txt` (name -> TXT strings).
    pub fn start(txt: &[(&str, &str)]) -> DnsFixture {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let addr = socket.local_addr().unwrap();
        let mut table: HashMap<String, Vec<String>> = HashMap::new();
        for (name, value) in txt {
            table.entry(name.trim_end_matches('.').to_ascii_lowercase()).or_default().push((*value).to_owned());
        }
        let table: Table = Arc::new(Mutex::new(table));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, t) = (stop.clone(), table.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else { continue };
                let reply = answer(&buf[..n], &t.lock().unwrap());
                if let Some(reply) = reply {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        DnsFixture { addr, stop, table }
    }

    /// From now on, `name` has these TXT records (none: the name is gone).
    pub fn set(&self, name: &str, txt: &[&str]) {
        let mut t = self.table.lock().unwrap();
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match txt {
            [] => t.remove(&name),
            v => t.insert(name, v.iter().map(|s| (*s).to_owned()).collect()),
        };
    }
}

impl Drop for DnsFixture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer(q: &[u8], table: &HashMap<String, Vec<String>>) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question_end = i + 4;
    let name = labels.join(".");
    let records = table.get(&name);
    let txts: &[String] = match (qtype, records) {
        (16, Some(r)) => r,
        _ => &[],
    };
    let exists = records.is_some() || table.keys().any(|k| k.ends_with(&format!(".{name}")));
    let mut r = Vec::with_capacity(512);
    r.extend_from_slice(&q[0..2]);
    let rcode = if exists { 0 } else { 3 };
    r.extend_from_slice(&[0x84 | (q[2] & 0x01), 0x80 | rcode]);
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&(txts.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&q[12..question_end]);
    for t in txts {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60]);
        let mut rdata = Vec::new();
        for chunk in t.as_bytes().chunks(255) {
            rdata.push(chunk.len() as u8);
            rdata.extend_from_slice(chunk);
        }
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(&rdata);
    }
    Some(r)
}
