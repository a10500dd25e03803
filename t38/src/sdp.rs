//! SDP (RFC 4566) for fax calls, and offer/answer (RFC 3264) as pure functions.
//!
//! Only what fax calls need is modelled: `m=audio` with PCMA, PCMU and
//! telephone-event, and `m=image <port> udptl t38` with the T.38 Annex D
//! attributes (ITU-T T.38 Annex D.2.3, RFC 3362). Lines we do not model are
//! kept verbatim so nothing is lost, and a missing session-level `c=` is
//! tolerated when each media has its own.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::g711::Law;
use crate::udptl::{self, ErrorCorrection};

/// Largest SDP body parsed; anything longer is refused.
pub const MAX_SDP_LEN: usize = 16 * 1024;
/// Most media sections accepted in one description.
const MAX_MEDIA: usize = 16;

/// Why an SDP body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The body is not SDP; the text says where.
    #[error("malformed SDP: {0}")]
    Malformed(&'static str),
    /// Nothing offered that a fax call can use (488 Not Acceptable Here).
    #[error("no acceptable media in the offer")]
    NotAcceptable,
    /// The only T.38 offered has an attribute out of range (488); the text
    /// names it, e.g. `T38FaxVersion:99 out of range (0-3)`.
    #[error("{0}")]
    OutOfRange(String),
}

/// RTP payload types (RFC 3551, static; telephone-event is dynamic).
pub mod pt {
    /// G.711 µ-law.
    pub const PCMU: u8 = 0;
    /// G.711 A-law.
    pub const PCMA: u8 = 8;
    /// Our telephone-event payload type in offers.
    pub const TELEPHONE_EVENT: u8 = 101;
}

/// How a T.38 boolean attribute was written: `a=T38FaxFillBitRemoval` or
/// `a=T38FaxFillBitRemoval:1`. Answers use the peer's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flag {
    /// Not present: false.
    #[default]
    Absent,
    /// Present without a value: true.
    Bare,
    /// Present with `:0` or `:1`.
    Valued(bool),
}

impl Flag {
    /// Its truth value.
    pub fn is_set(self) -> bool {
        matches!(self, Self::Bare | Self::Valued(true))
    }

    /// The answer to `self` (the offer) when we support the option if
    /// `ours`: the intersection, written as the offerer wrote it.
    pub fn answer(self, ours: bool) -> Self {
        match self {
            Self::Absent => Self::Absent,
            Self::Bare if ours => Self::Bare,
            Self::Bare => Self::Absent,
            Self::Valued(v) => Self::Valued(v && ours),
        }
    }
}

/// `T38FaxRateManagement`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RateManagement {
    /// `transferredTCF`: the TCF is sent as data (required over UDP).
    #[default]
    TransferredTcf,
    /// `localTCF`.
    LocalTcf,
    /// Anything else, kept as written.
    Other(String),
}

/// `T38FaxUdpEC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpEc {
    /// `t38UDPRedundancy`.
    Redundancy,
    /// `t38UDPFEC`.
    Fec,
    /// `t38UDPNoEC` (or an unknown value, kept as written).
    None(String),
}

/// The T.38 attributes of an `m=image` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct T38Params {
    /// `T38FaxVersion` (0 when absent).
    pub version: u8,
    /// `T38MaxBitRate` (or the alias `T38FaxMaxRate`).
    pub max_bit_rate: Option<u32>,
    /// `T38FaxRateManagement`.
    pub rate_management: Option<RateManagement>,
    /// `T38FaxMaxBuffer`.
    pub max_buffer: Option<u32>,
    /// `T38FaxMaxDatagram` as announced.
    pub max_datagram: Option<u32>,
    /// `T38FaxUdpEC`.
    pub udp_ec: Option<UdpEc>,
    /// `T38FaxFillBitRemoval`.
    pub fill_bit_removal: Flag,
    /// `T38FaxTranscodingMMR`.
    pub transcoding_mmr: Flag,
    /// `T38FaxTranscodingJBIG`.
    pub transcoding_jbig: Flag,
    /// The first numeric T.38 attribute whose value is not a number, as
    /// written (`T38FaxMaxBuffer:-1`).
    pub unreadable: Option<String>,
}

impl T38Params {
    /// The `T38FaxMaxDatagram` to believe (over 1400 means 400).
    pub fn effective_max_datagram(&self) -> usize {
        udptl::effective_max_datagram(self.max_datagram.unwrap_or(0))
    }

    /// Checks the attributes against their ranges (T.38 Annex D.2.3):
    /// `T38FaxVersion` 0-3, `T38FaxMaxBuffer` and `T38FaxMaxDatagram` above
    /// 0 (a datagram size the trunk overrides is not checked), numbers that
    /// are numbers. The error names the attribute.
    pub fn check(&self, datagram_overridden: bool) -> Result<(), String> {
        if let Some(v) = &self.unreadable {
            return Err(format!("{v} is not a number"));
        }
        if self.version > MAX_T38_VERSION {
            return Err(format!("T38FaxVersion:{} out of range (0-{MAX_T38_VERSION})", self.version));
        }
        if self.max_buffer == Some(0) {
            return Err("T38FaxMaxBuffer:0 out of range (1 or more)".into());
        }
        if self.max_datagram == Some(0) && !datagram_overridden {
            return Err("T38FaxMaxDatagram:0 out of range (1 or more)".into());
        }
        Ok(())
    }
}

/// The highest T.38 version (T.38 (2010) is version 3).
pub const MAX_T38_VERSION: u8 = 3;

/// The media kind of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaKind {
    /// `audio`.
    Audio,
    /// `image`.
    Image,
    /// Anything else (video, application...), kept to be refused with port 0.
    Other(String),
}

/// Stream direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dir {
    /// `sendrecv` (also when absent).
    #[default]
    SendRecv,
    /// `sendonly`.
    SendOnly,
    /// `recvonly`.
    RecvOnly,
    /// `inactive`.
    Inactive,
}

/// One `a=rtpmap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written.
    pub encoding: String,
    /// Clock rate.
    pub clock: u32,
}

/// One media section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Its kind.
    pub kind: MediaKind,
    /// Port (0: refused or disabled).
    pub port: u16,
    /// Transport protocol as written (`RTP/AVP`, `udptl`, `UDPTL`...).
    pub proto: String,
    /// Formats as written (payload types, or `t38`).
    pub formats: Vec<String>,
    /// Media-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Direction.
    pub dir: Dir,
    /// `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=ptime`.
    pub ptime: Option<u32>,
    /// T.38 attributes (image sections).
    pub t38: T38Params,
    /// Other attribute lines, verbatim (without `a=`).
    pub other: Vec<String>,
}

impl Media {
    /// True for `m=image ... udptl t38` (any case).
    pub fn is_t38(&self) -> bool {
        self.kind == MediaKind::Image
            && self.proto.eq_ignore_ascii_case("udptl")
            && self.formats.iter().any(|f| f.eq_ignore_ascii_case("t38"))
    }

    /// The encoding name of payload type `pt` (from rtpmap, or the static table).
    pub fn encoding(&self, pt: u8) -> Option<String> {
        if let Some(m) = self.rtpmaps.iter().find(|m| m.pt == pt) {
            return Some(m.encoding.to_ascii_uppercase());
        }
        match pt {
            pt::PCMU => Some("PCMU".into()),
            pt::PCMA => Some("PCMA".into()),
            _ => None,
        }
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version.
    pub session_version: u64,
    /// `o=` address.
    pub origin_addr: String,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Media sections in order.
    pub media: Vec<Media>,
}

impl SessionDescription {
    /// Where to send the media of section `i`: its own `c=`, else the session's.
    pub fn remote_addr(&self, i: usize) -> Option<SocketAddr> {
        let m = self.media.get(i)?;
        let ip = m.connection.or(self.connection)?;
        (m.port != 0).then(|| SocketAddr::new(ip, m.port))
    }

    /// Parses an SDP body. Unknown lines are kept or skipped, never fatal.
    pub fn parse(body: &[u8]) -> Result<Self, SdpError> {
        if body.len() > MAX_SDP_LEN {
            return Err(SdpError::Malformed("body too large"));
        }
        let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed("not UTF-8"))?;
        let mut sd = SessionDescription {
            session_id: 0,
            session_version: 0,
            origin_addr: String::new(),
            connection: None,
            media: Vec::new(),
        };
        let mut seen_v = false;
        for raw in text.split('\n') {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            let (key, value) = match line.split_once('=') {
                Some((k, v)) if k.len() == 1 => (k.as_bytes()[0], v),
                _ => return Err(SdpError::Malformed("line is not <type>=<value>")),
            };
            if !seen_v {
                if key != b'v' || value.trim() != "0" {
                    return Err(SdpError::Malformed("does not start with v=0"));
                }
                seen_v = true;
                continue;
            }
            match key {
                b'o' => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if f.len() < 6 {
                        return Err(SdpError::Malformed("o= needs 6 fields"));
                    }
                    sd.session_id = f[1].parse().unwrap_or(0);
                    sd.session_version = f[2].parse().unwrap_or(0);
                    sd.origin_addr = f[5].to_string();
                }
                b'c' => {
                    let ip = parse_connection(value)?;
                    match sd.media.last_mut() {
                        Some(m) => m.connection = Some(ip),
                        None => sd.connection = Some(ip),
                    }
                }
                b'm' => {
                    if sd.media.len() >= MAX_MEDIA {
                        return Err(SdpError::Malformed("too many media sections"));
                    }
                    sd.media.push(parse_media(value)?);
                }
                b'a' => {
                    if let Some(m) = sd.media.last_mut() {
                        parse_attribute(m, value)?;
                    }
                }
                _ => {}
            }
        }
        if !seen_v {
            return Err(SdpError::Malformed("empty"));
        }
        Ok(sd)
    }

    /// Writes the description (CRLF line ends).
    pub fn write(&self) -> String {
        let mut s = String::with_capacity(512);
        let ipv = |a: &str| if a.contains(':') { "IP6" } else { "IP4" };
        // A peer's description without `o=` still writes a valid one.
        let origin = match (self.origin_addr.is_empty(), self.connection) {
            (false, _) => self.origin_addr.clone(),
            (true, Some(c)) => c.to_string(),
            (true, None) => "0.0.0.0".to_string(),
        };
        let _ = write!(
            s,
            "v=0\r\no=faxgate {} {} IN {} {}\r\ns=faxgate\r\n",
            self.session_id,
            self.session_version,
            ipv(&origin),
            origin
        );
        if let Some(c) = self.connection {
            let _ = write!(s, "c=IN {} {}\r\n", ipv(&c.to_string()), c);
        }
        s.push_str("t=0 0\r\n");
        for m in &self.media {
            let kind = match &m.kind {
                MediaKind::Audio => "audio",
                MediaKind::Image => "image",
                MediaKind::Other(k) => k.as_str(),
            };
            let _ = write!(s, "m={} {} {} {}\r\n", kind, m.port, m.proto, m.formats.join(" "));
            if let Some(c) = m.connection {
                let _ = write!(s, "c=IN {} {}\r\n", ipv(&c.to_string()), c);
            }
            for r in &m.rtpmaps {
                let _ = write!(s, "a=rtpmap:{} {}/{}\r\n", r.pt, r.encoding, r.clock);
            }
            if m.rtpmaps.iter().any(|r| r.encoding.eq_ignore_ascii_case("telephone-event")) {
                for r in m.rtpmaps.iter().filter(|r| r.encoding.eq_ignore_ascii_case("telephone-event")) {
                    let _ = write!(s, "a=fmtp:{} 0-15\r\n", r.pt);
                }
            }
            if let Some(p) = m.ptime {
                let _ = write!(s, "a=ptime:{p}\r\n");
            }
            if m.is_t38() {
                write_t38(&mut s, &m.t38);
            }
            for o in &m.other {
                let _ = write!(s, "a={o}\r\n");
            }
            let dir = match m.dir {
                Dir::SendRecv => "sendrecv",
                Dir::SendOnly => "sendonly",
                Dir::RecvOnly => "recvonly",
                Dir::Inactive => "inactive",
            };
            if m.port != 0 {
                let _ = write!(s, "a={dir}\r\n");
            }
        }
        s
    }
}

fn write_t38(s: &mut String, t: &T38Params) {
    let _ = write!(s, "a=T38FaxVersion:{}\r\n", t.version);
    if let Some(r) = t.max_bit_rate {
        let _ = write!(s, "a=T38MaxBitRate:{r}\r\n");
    }
    for (name, f) in [
        ("T38FaxFillBitRemoval", t.fill_bit_removal),
        ("T38FaxTranscodingMMR", t.transcoding_mmr),
        ("T38FaxTranscodingJBIG", t.transcoding_jbig),
    ] {
        match f {
            Flag::Absent => {}
            Flag::Bare => {
                let _ = write!(s, "a={name}\r\n");
            }
            Flag::Valued(v) => {
                let _ = write!(s, "a={name}:{}\r\n", u8::from(v));
            }
        }
    }
    if let Some(rm) = &t.rate_management {
        let v = match rm {
            RateManagement::TransferredTcf => "transferredTCF",
            RateManagement::LocalTcf => "localTCF",
            RateManagement::Other(o) => o.as_str(),
        };
        let _ = write!(s, "a=T38FaxRateManagement:{v}\r\n");
    }
    if let Some(b) = t.max_buffer {
        let _ = write!(s, "a=T38FaxMaxBuffer:{b}\r\n");
    }
    if let Some(d) = t.max_datagram {
        let _ = write!(s, "a=T38FaxMaxDatagram:{d}\r\n");
    }
    if let Some(ec) = &t.udp_ec {
        let v = match ec {
            UdpEc::Redundancy => "t38UDPRedundancy",
            UdpEc::Fec => "t38UDPFEC",
            UdpEc::None(o) => o.as_str(),
        };
        let _ = write!(s, "a=T38FaxUdpEC:{v}\r\n");
    }
}

fn parse_connection(value: &str) -> Result<IpAddr, SdpError> {
    let f: Vec<&str> = value.split_whitespace().collect();
    if f.len() < 3 || f[0] != "IN" {
        return Err(SdpError::Malformed("c= needs IN <IP4|IP6> <address>"));
    }
    // Multicast TTL suffixes ("/127") are not for fax; drop them.
    let addr = f[2].split('/').next().unwrap_or("");
    addr.parse().map_err(|_| SdpError::Malformed("c= address is not an IP address"))
}

fn parse_media(value: &str) -> Result<Media, SdpError> {
    let f: Vec<&str> = value.split_whitespace().collect();
    if f.len() < 3 {
        return Err(SdpError::Malformed("m= needs media, port and proto"));
    }
    let kind = match f[0] {
        k if k.eq_ignore_ascii_case("audio") => MediaKind::Audio,
        k if k.eq_ignore_ascii_case("image") => MediaKind::Image,
        k => MediaKind::Other(k.to_string()),
    };
    let port_str = f[1].split('/').next().unwrap_or("");
    let port = port_str.parse().map_err(|_| SdpError::Malformed("m= port is not a number"))?;
    Ok(Media {
        kind,
        port,
        proto: f[2].to_string(),
        formats: f[3..].iter().take(64).map(|s| s.to_string()).collect(),
        connection: None,
        dir: Dir::SendRecv,
        rtpmaps: Vec::new(),
        ptime: None,
        t38: T38Params::default(),
        other: Vec::new(),
    })
}

fn flag(value: Option<&str>) -> Flag {
    match value.map(str::trim) {
        None => Flag::Bare,
        Some("0") => Flag::Valued(false),
        Some(v) if v.eq_ignore_ascii_case("false") => Flag::Valued(false),
        Some(_) => Flag::Valued(true),
    }
}

fn parse_attribute(m: &mut Media, value: &str) -> Result<(), SdpError> {
    let (name, val) = match value.split_once(':') {
        Some((n, v)) => (n.trim(), Some(v.trim())),
        None => (value.trim(), None),
    };
    let num = |v: Option<&str>| v.and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok());
    let lower = name.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "t38faxversion" | "t38maxbitrate" | "t38faxmaxrate" | "t38faxmaxbuffer" | "t38faxmaxdatagram"
    ) && num(val).is_none()
        && m.t38.unreadable.is_none()
    {
        m.t38.unreadable = Some(format!("{name}:{}", val.unwrap_or("").chars().take(20).collect::<String>()));
    }
    match lower.as_str() {
        "sendrecv" => m.dir = Dir::SendRecv,
        "sendonly" => m.dir = Dir::SendOnly,
        "recvonly" => m.dir = Dir::RecvOnly,
        "inactive" => m.dir = Dir::Inactive,
        "ptime" => m.ptime = num(val),
        "rtpmap" => {
            let v = val.ok_or(SdpError::Malformed("rtpmap without value"))?;
            let (p, rest) = v.split_once(' ').ok_or(SdpError::Malformed("rtpmap without encoding"))?;
            let pt: u8 = p.trim().parse().map_err(|_| SdpError::Malformed("rtpmap payload type"))?;
            let mut parts = rest.trim().split('/');
            let encoding = parts.next().unwrap_or("").to_string();
            let clock = parts.next().and_then(|c| c.parse().ok()).unwrap_or(8000);
            if m.rtpmaps.len() < 64 {
                m.rtpmaps.push(RtpMap { pt, encoding, clock });
            }
        }
        "fmtp" => {}
        "t38faxversion" => m.t38.version = num(val).unwrap_or(0).min(255) as u8,
        "t38maxbitrate" | "t38faxmaxrate" => m.t38.max_bit_rate = num(val),
        "t38faxmaxbuffer" => m.t38.max_buffer = num(val),
        "t38faxmaxdatagram" => m.t38.max_datagram = num(val),
        "t38faxratemanagement" => {
            let v = val.unwrap_or("");
            m.t38.rate_management = Some(if v.eq_ignore_ascii_case("transferredTCF") {
                RateManagement::TransferredTcf
            } else if v.eq_ignore_ascii_case("localTCF") {
                RateManagement::LocalTcf
            } else {
                RateManagement::Other(v.to_string())
            });
        }
        "t38faxudpec" => {
            let v = val.unwrap_or("");
            m.t38.udp_ec = Some(if v.eq_ignore_ascii_case("t38UDPRedundancy") {
                UdpEc::Redundancy
            } else if v.eq_ignore_ascii_case("t38UDPFEC") {
                UdpEc::Fec
            } else {
                UdpEc::None(v.to_string())
            });
        }
        "t38faxfillbitremoval" => m.t38.fill_bit_removal = flag(val),
        "t38faxtranscodingmmr" => m.t38.transcoding_mmr = flag(val),
        "t38faxtranscodingjbig" => m.t38.transcoding_jbig = flag(val),
        _ => {
            if m.other.len() < 64 {
                m.other.push(value.to_string());
            }
        }
    }
    Ok(())
}

/// What we are willing to do, for offers and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Accept and offer T.38.
    pub t38: bool,
    /// Accept and offer G.711 audio.
    pub audio: bool,
    /// Our preferred G.711 law (offered first).
    pub law: Law,
    /// Highest T.38 version we speak.
    pub t38_version: u8,
    /// Our T.38 maximum bit rate.
    pub max_bit_rate: u32,
    /// The `T38FaxMaxDatagram` we announce (what we accept).
    pub max_datagram: u32,
    /// Override of the peer's `T38FaxMaxDatagram` (per trunk).
    pub peer_max_datagram: Option<u32>,
    /// Redundancy depth we send with `t38UDPRedundancy`.
    pub redundancy: u8,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            t38: true,
            audio: true,
            law: Law::Alaw,
            t38_version: 0,
            max_bit_rate: 14400,
            max_datagram: 400,
            peer_max_datagram: None,
            redundancy: udptl::DEFAULT_REDUNDANCY,
        }
    }
}

/// Local media sockets as advertised (NAT: the configured public address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMedia {
    /// Address written in `c=` and `o=`.
    pub addr: IpAddr,
    /// RTP port.
    pub audio_port: u16,
    /// UDPTL port.
    pub image_port: u16,
}

/// The media a call settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Negotiated {
    /// G.711 audio.
    Audio {
        /// Where the peer wants RTP.
        remote: SocketAddr,
        /// The law.
        law: Law,
        /// Its payload type.
        pt: u8,
        /// Peer's telephone-event payload type, if any.
        telephone_event: Option<u8>,
    },
    /// T.38 over UDPTL.
    T38 {
        /// Where the peer wants UDPTL.
        remote: SocketAddr,
        /// T.38 version (the lower of both).
        version: u8,
        /// Error correction to send with.
        ec: ErrorCorrection,
        /// Largest UDPTL datagram the peer accepts (rules applied).
        max_datagram: usize,
    },
}

impl Negotiated {
    /// True for T.38.
    pub fn is_t38(&self) -> bool {
        matches!(self, Self::T38 { .. })
    }

    /// The peer's media address.
    pub fn remote(&self) -> SocketAddr {
        match self {
            Self::Audio { remote, .. } | Self::T38 { remote, .. } => *remote,
        }
    }
}

fn base(local: &LocalMedia, session_id: u64, version: u64) -> SessionDescription {
    SessionDescription {
        session_id,
        session_version: version,
        origin_addr: local.addr.to_string(),
        connection: Some(local.addr),
        media: Vec::new(),
    }
}

fn audio_media(local: &LocalMedia, formats: &[(u8, &str)]) -> Media {
    Media {
        kind: MediaKind::Audio,
        port: local.audio_port,
        proto: "RTP/AVP".into(),
        formats: formats.iter().map(|(p, _)| p.to_string()).collect(),
        connection: None,
        dir: Dir::SendRecv,
        rtpmaps: formats.iter().map(|(p, e)| RtpMap { pt: *p, encoding: (*e).to_string(), clock: 8000 }).collect(),
        ptime: Some(20),
        t38: T38Params::default(),
        other: Vec::new(),
    }
}

fn our_t38(caps: &Capabilities) -> T38Params {
    T38Params {
        version: caps.t38_version,
        max_bit_rate: Some(caps.max_bit_rate),
        rate_management: Some(RateManagement::TransferredTcf),
        max_buffer: Some(800),
        max_datagram: Some(caps.max_datagram),
        udp_ec: Some(UdpEc::Redundancy),
        fill_bit_removal: Flag::Absent,
        transcoding_mmr: Flag::Absent,
        transcoding_jbig: Flag::Absent,
        unreadable: None,
    }
}

fn image_media(local: &LocalMedia, t38: T38Params) -> Media {
    Media {
        kind: MediaKind::Image,
        port: local.image_port,
        proto: "udptl".into(),
        formats: vec!["t38".into()],
        connection: None,
        dir: Dir::SendRecv,
        rtpmaps: Vec::new(),
        ptime: None,
        t38,
        other: Vec::new(),
    }
}

/// An audio offer: our preferred law first, then the other, then telephone-event.
pub fn offer_audio(caps: &Capabilities, local: &LocalMedia, session_id: u64, version: u64) -> SessionDescription {
    let mut sd = base(local, session_id, version);
    let (a, b) = match caps.law {
        Law::Alaw => ((pt::PCMA, "PCMA"), (pt::PCMU, "PCMU")),
        Law::Ulaw => ((pt::PCMU, "PCMU"), (pt::PCMA, "PCMA")),
    };
    sd.media.push(audio_media(local, &[a, b, (pt::TELEPHONE_EVENT, "telephone-event")]));
    sd
}

/// A T.38 offer (a re-INVITE, or an initial INVITE straight to T.38).
pub fn offer_t38(caps: &Capabilities, local: &LocalMedia, session_id: u64, version: u64) -> SessionDescription {
    let mut sd = base(local, session_id, version);
    sd.media.push(image_media(local, our_t38(caps)));
    sd
}

/// The T.38 of section `i`, or why its attributes are refused (`Err`), or
/// None when it has no address.
fn negotiate_t38(
    caps: &Capabilities,
    sd: &SessionDescription,
    i: usize,
    theirs: &T38Params,
) -> Result<Option<Negotiated>, String> {
    theirs.check(caps.peer_max_datagram.is_some())?;
    let Some(remote) = sd.remote_addr(i) else { return Ok(None) };
    let ec = match theirs.udp_ec {
        Some(UdpEc::Redundancy) => ErrorCorrection::Redundancy { depth: caps.redundancy },
        Some(UdpEc::Fec) => ErrorCorrection::Fec { span: 3, entries: 3 },
        _ => ErrorCorrection::None,
    };
    let max_datagram = match caps.peer_max_datagram {
        Some(d) => udptl::effective_max_datagram(d),
        None => theirs.effective_max_datagram(),
    };
    Ok(Some(Negotiated::T38 { remote, version: theirs.version.min(caps.t38_version), ec, max_datagram }))
}

/// Interprets the peer's answer to our offer.
pub fn accept_answer(caps: &Capabilities, answer: &SessionDescription) -> Result<Negotiated, SdpError> {
    let mut out_of_range = None;
    for (i, m) in answer.media.iter().enumerate() {
        if m.port == 0 {
            continue;
        }
        if m.is_t38() && caps.t38 {
            match negotiate_t38(caps, answer, i, &m.t38) {
                Ok(Some(n)) => return Ok(n),
                Ok(None) => {}
                Err(e) => out_of_range = out_of_range.or(Some(e)),
            }
        }
        if m.kind == MediaKind::Audio
            && caps.audio
            && let Some(n) = pick_audio(caps, answer, i)
        {
            return Ok(n);
        }
    }
    Err(out_of_range.map_or(SdpError::NotAcceptable, SdpError::OutOfRange))
}

fn pick_audio(caps: &Capabilities, sd: &SessionDescription, i: usize) -> Option<Negotiated> {
    let m = &sd.media[i];
    let remote = sd.remote_addr(i)?;
    let te = m.rtpmaps.iter().find(|r| r.encoding.eq_ignore_ascii_case("telephone-event")).map(|r| r.pt);
    // The offerer's order wins (RFC 3264 6.1); we only skip what we lack.
    for f in &m.formats {
        let Ok(p) = f.parse::<u8>() else { continue };
        match m.encoding(p).as_deref() {
            Some("PCMA") => return Some(Negotiated::Audio { remote, law: Law::Alaw, pt: p, telephone_event: te }),
            Some("PCMU") => return Some(Negotiated::Audio { remote, law: Law::Ulaw, pt: p, telephone_event: te }),
            _ => {}
        }
    }
    let _ = caps;
    None
}

/// Answers an offer: T.38 if offered and enabled, else G.711. Every offered
/// media section gets a line in the answer (refused ones with port 0).
pub fn answer(
    caps: &Capabilities,
    offer: &SessionDescription,
    local: &LocalMedia,
    session_id: u64,
    version: u64,
) -> Result<(SessionDescription, Negotiated), SdpError> {
    // Choose: the first usable T.38 section, else the first usable audio section.
    let mut chosen: Option<(usize, Negotiated)> = None;
    let mut out_of_range = None;
    if caps.t38 {
        for (i, m) in offer.media.iter().enumerate() {
            if m.port != 0 && m.is_t38() {
                match negotiate_t38(caps, offer, i, &m.t38) {
                    Ok(Some(n)) => {
                        chosen = Some((i, n));
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => out_of_range = out_of_range.or(Some(e)),
                }
            }
        }
    }
    if chosen.is_none() && caps.audio {
        for (i, m) in offer.media.iter().enumerate() {
            if m.port != 0
                && m.kind == MediaKind::Audio
                && let Some(n) = pick_audio(caps, offer, i)
            {
                chosen = Some((i, n));
                break;
            }
        }
    }
    let (ci, neg) = chosen.ok_or_else(|| out_of_range.map_or(SdpError::NotAcceptable, SdpError::OutOfRange))?;
    let mut sd = base(local, session_id, version);
    for (i, m) in offer.media.iter().enumerate() {
        if i != ci {
            sd.media.push(declined(m));
            continue;
        }
        match &neg {
            Negotiated::T38 { version, .. } => {
                let theirs = &m.t38;
                let mut t = our_t38(caps);
                t.version = *version;
                t.max_bit_rate = Some(theirs.max_bit_rate.unwrap_or(caps.max_bit_rate).min(caps.max_bit_rate));
                t.rate_management = Some(match &theirs.rate_management {
                    Some(RateManagement::LocalTcf) => RateManagement::LocalTcf,
                    _ => RateManagement::TransferredTcf,
                });
                t.udp_ec = Some(match theirs.udp_ec {
                    Some(UdpEc::Redundancy) => UdpEc::Redundancy,
                    Some(UdpEc::Fec) => UdpEc::Fec,
                    _ => UdpEc::None("t38UDPNoEC".into()),
                });
                // We do none of these: answer the intersection, in their syntax.
                t.fill_bit_removal = theirs.fill_bit_removal.answer(false);
                t.transcoding_mmr = theirs.transcoding_mmr.answer(false);
                t.transcoding_jbig = theirs.transcoding_jbig.answer(false);
                let mut im = image_media(local, t);
                im.proto = m.proto.clone();
                sd.media.push(im);
            }
            Negotiated::Audio { law, pt: p, telephone_event, .. } => {
                let name = match law {
                    Law::Alaw => "PCMA",
                    Law::Ulaw => "PCMU",
                };
                let mut f: Vec<(u8, &str)> = vec![(*p, name)];
                if let Some(te) = telephone_event {
                    f.push((*te, "telephone-event"));
                }
                sd.media.push(audio_media(local, &f));
            }
        }
    }
    Ok((sd, neg))
}

/// A media section answered with port 0 (RFC 3264 6).
fn declined(m: &Media) -> Media {
    let mut refused = m.clone();
    refused.port = 0;
    refused.connection = None;
    refused.other.clear();
    refused.rtpmaps.clear();
    refused.t38 = T38Params::default();
    refused
}

/// The answer to an offer that declines every stream (port 0), as a peer
/// sends when it gives up T.38 while it winds a call down: each stream
/// declined back (RFC 3264 8.2). None when the offer keeps some stream.
pub fn decline_all(
    offer: &SessionDescription,
    local: &LocalMedia,
    session_id: u64,
    version: u64,
) -> Option<SessionDescription> {
    if offer.media.is_empty() || offer.media.iter().any(|m| m.port != 0) {
        return None;
    }
    let mut sd = base(local, session_id, version);
    sd.media = offer.media.iter().map(declined).collect();
    Some(sd)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: LocalMedia =
        LocalMedia { addr: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10)), audio_port: 20000, image_port: 20002 };

    fn parse(s: &str) -> SessionDescription {
        SessionDescription::parse(s.as_bytes()).unwrap()
    }

    const ASTERISK_T38: &str = "v=0\r\no=- 1 2 IN IP4 198.51.100.7\r\ns=Asterisk\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
m=image 4000 udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\na=T38FaxRateManagement:transferredTCF\r\n\
a=T38FaxMaxDatagram:400\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n";

    #[test]
    fn parses_t38_offer() {
        let sd = parse(ASTERISK_T38);
        assert_eq!(sd.media.len(), 1);
        let m = &sd.media[0];
        assert!(m.is_t38());
        assert_eq!(m.t38.max_bit_rate, Some(14400));
        assert_eq!(m.t38.max_datagram, Some(400));
        assert_eq!(m.t38.udp_ec, Some(UdpEc::Redundancy));
        assert_eq!(sd.remote_addr(0), Some("198.51.100.7:4000".parse().unwrap()));
    }

    #[test]
    fn alias_and_valued_flags_answered_in_peer_syntax() {
        let offer = parse(
            "v=0\no=x 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=image 5000 UDPTL t38\nc=IN IP4 10.0.0.1\n\
a=T38FaxVersion:3\na=T38FaxMaxRate:9600\na=T38FaxFillBitRemoval:1\na=T38FaxTranscodingMMR:0\n\
a=T38FaxTranscodingJBIG\na=T38FaxUdpEC:t38UDPFEC\n",
        );
        let (ans, neg) = answer(&Capabilities::default(), &offer, &LOCAL, 7, 1).unwrap();
        let Negotiated::T38 { remote, version, max_datagram, ec } = neg else { panic!("{neg:?}") };
        assert_eq!(remote, "10.0.0.1:5000".parse().unwrap());
        assert_eq!(version, 0, "min of 3 and ours (0)");
        assert_eq!(max_datagram, 400, "absent means 400 (0 is refused: t38_attributes_out_of_range_are_named)");
        assert!(matches!(ec, ErrorCorrection::Fec { .. }));
        let text = ans.write();
        assert!(text.contains("m=image 20002 UDPTL t38\r\n"), "{text}");
        assert!(text.contains("a=T38MaxBitRate:9600\r\n"), "{text}");
        assert!(text.contains("a=T38FaxFillBitRemoval:0\r\n"), "{text}");
        assert!(text.contains("a=T38FaxTranscodingMMR:0\r\n"), "{text}");
        assert!(!text.contains("T38FaxTranscodingJBIG"), "{text}");
        assert!(text.contains("a=T38FaxUdpEC:t38UDPFEC\r\n"), "{text}");
        // Round trip: our answer parses back to the same values.
        let back = parse(&text);
        assert_eq!(back.media[0].t38.fill_bit_removal, Flag::Valued(false));
        assert_eq!(back.media[0].t38.version, 0);
    }

    #[test]
    fn oversized_datagram_means_400_and_trunk_override_wins() {
        let offer = parse(&ASTERISK_T38.replace("T38FaxMaxDatagram:400", "T38FaxMaxDatagram:72000"));
        let (_, neg) = answer(&Capabilities::default(), &offer, &LOCAL, 1, 1).unwrap();
        assert!(matches!(neg, Negotiated::T38 { max_datagram: 400, .. }));
        let caps = Capabilities { peer_max_datagram: Some(272), ..Capabilities::default() };
        let (_, neg) = answer(&caps, &offer, &LOCAL, 1, 1).unwrap();
        assert!(matches!(neg, Negotiated::T38 { max_datagram: 272, .. }));
    }

    /// T.38 attributes out of range are refused with the attribute named;
    /// with audio beside them the call takes the audio; a datagram size the
    /// trunk overrides is not held against the peer.
    #[test]
    fn t38_attributes_out_of_range_are_named() {
        for (attr, bad, says) in [
            ("T38FaxVersion:0", "T38FaxVersion:99", "T38FaxVersion:99 out of range (0-3)"),
            ("T38FaxMaxDatagram:400", "T38FaxMaxDatagram:0", "T38FaxMaxDatagram:0 out of range"),
            (
                "T38FaxMaxDatagram:400",
                "T38FaxMaxDatagram:400\r\na=T38FaxMaxBuffer:-1",
                "T38FaxMaxBuffer:-1 is not a number",
            ),
            ("T38FaxMaxDatagram:400", "T38FaxMaxDatagram:400\r\na=T38FaxMaxBuffer:0", "T38FaxMaxBuffer:0 out of range"),
        ] {
            let offer = parse(&ASTERISK_T38.replace(attr, bad));
            match answer(&Capabilities::default(), &offer, &LOCAL, 1, 1) {
                Err(SdpError::OutOfRange(e)) => assert!(e.contains(says), "{e}"),
                other => panic!("{bad}: {other:?}"),
            }
            match accept_answer(&Capabilities::default(), &offer) {
                Err(SdpError::OutOfRange(e)) => assert!(e.contains(says), "{e}"),
                other => panic!("{bad}: {other:?}"),
            }
            let with_audio = parse(&format!("{}m=audio 4004 RTP/AVP 8\r\n", ASTERISK_T38.replace(attr, bad)));
            let (_, neg) = answer(&Capabilities::default(), &with_audio, &LOCAL, 1, 1).unwrap();
            assert!(matches!(neg, Negotiated::Audio { .. }), "{bad}");
        }
        let zero = parse(&ASTERISK_T38.replace("T38FaxMaxDatagram:400", "T38FaxMaxDatagram:0"));
        let caps = Capabilities { peer_max_datagram: Some(300), ..Capabilities::default() };
        let (_, neg) = answer(&caps, &zero, &LOCAL, 1, 1).unwrap();
        assert!(matches!(neg, Negotiated::T38 { max_datagram: 300, .. }));
    }

    /// An offer that declines every stream is answered by declining them
    /// back; one that keeps a stream is not for `decline_all`.
    #[test]
    fn declining_every_stream() {
        let offer = parse(
            "v=0\r\no=- 1 3 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=image 0 udptl t38\r\n",
        );
        let ans = decline_all(&offer, &LOCAL, 7, 4).unwrap();
        assert_eq!(ans.media.len(), 1);
        assert!(ans.media[0].is_t38() && ans.media[0].port == 0);
        assert!(ans.write().contains("m=image 0 udptl t38\r\n"), "{}", ans.write());
        assert!(decline_all(&parse(ASTERISK_T38), &LOCAL, 7, 4).is_none());
        // `answer` itself refuses it: nothing to use.
        assert_eq!(answer(&Capabilities::default(), &offer, &LOCAL, 1, 1).unwrap_err(), SdpError::NotAcceptable);
    }

    #[test]
    fn version_is_min_of_both() {
        let caps = Capabilities { t38_version: 2, ..Capabilities::default() };
        let offer = parse(&ASTERISK_T38.replace("T38FaxVersion:0", "T38FaxVersion:1"));
        let (ans, neg) = answer(&caps, &offer, &LOCAL, 1, 1).unwrap();
        assert!(matches!(neg, Negotiated::T38 { version: 1, .. }));
        assert!(ans.write().contains("a=T38FaxVersion:1\r\n"));
    }

    #[test]
    fn audio_without_session_connection() {
        let offer = parse(
            "v=0\r\no=- 5 5 IN IP4 203.0.113.5\r\ns=-\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 8 101\r\n\
c=IN IP4 203.0.113.9\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
        );
        assert_eq!(offer.connection, None);
        let (ans, neg) = answer(&Capabilities::default(), &offer, &LOCAL, 1, 1).unwrap();
        assert_eq!(
            neg,
            Negotiated::Audio {
                remote: "203.0.113.9:30000".parse().unwrap(),
                law: Law::Ulaw,
                pt: 0,
                telephone_event: Some(101)
            }
        );
        let t = ans.write();
        assert!(t.contains("m=audio 20000 RTP/AVP 0 101\r\n"), "{t}");
        assert!(t.contains("c=IN IP4 192.0.2.10\r\n"), "{t}");
    }

    #[test]
    fn t38_preferred_over_audio_and_refused_media_kept() {
        let offer = parse(
            "v=0\r\no=- 5 5 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 8\r\nm=image 30002 udptl t38\r\na=T38FaxVersion:0\r\n",
        );
        let (ans, neg) = answer(&Capabilities::default(), &offer, &LOCAL, 1, 1).unwrap();
        assert!(neg.is_t38());
        assert_eq!(ans.media.len(), 2);
        assert_eq!(ans.media[0].port, 0);
        assert_eq!(ans.media[1].port, LOCAL.image_port);
        let audio_only = Capabilities { t38: false, ..Capabilities::default() };
        let (ans, neg) = answer(&audio_only, &offer, &LOCAL, 1, 1).unwrap();
        assert!(!neg.is_t38());
        assert_eq!(ans.media[1].port, 0);
    }

    #[test]
    fn nothing_usable_is_not_acceptable() {
        let offer =
            parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4 RTP/AVP 18\r\n");
        assert_eq!(answer(&Capabilities::default(), &offer, &LOCAL, 1, 1).unwrap_err(), SdpError::NotAcceptable);
        let no_addr = parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4 RTP/AVP 8\r\n");
        assert!(answer(&Capabilities::default(), &no_addr, &LOCAL, 1, 1).is_err());
    }

    #[test]
    fn malformed_is_refused() {
        for bad in ["", "hello", "x=0\r\n", "v=0\r\nm=audio notaport RTP/AVP 0\r\n", "v=0\r\nc=IN IP4 nonsense\r\n"] {
            assert!(SessionDescription::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(SessionDescription::parse(&[0xff, 0xfe]).is_err());
    }

    /// Found by the `sdp_parse` fuzz target: a description without `o=`.
    #[test]
    fn minimal_description_writes_back_valid() {
        let sd = parse("v=0");
        assert_eq!(parse(&sd.write()).media.len(), 0);
    }

    #[test]
    fn offers_round_trip() {
        let caps = Capabilities::default();
        let a = offer_audio(&caps, &LOCAL, 9, 1);
        let back = parse(&a.write());
        assert_eq!(back.media[0].formats, ["8", "0", "101"]);
        let n = accept_answer(&caps, &back).unwrap();
        assert!(matches!(n, Negotiated::Audio { law: Law::Alaw, pt: 8, .. }));
        let t = offer_t38(&caps, &LOCAL, 9, 2);
        let back = parse(&t.write());
        assert_eq!(back.media[0].t38, t.media[0].t38);
        assert!(accept_answer(&caps, &back).unwrap().is_t38());
    }
}
