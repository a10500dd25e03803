//! Parsing with every problem reported, each with its key path and line.
//!
//! serde stops at the first error. To report them all, a problem's key is
//! removed from a copy of the document and deserialising is tried again,
//! until it succeeds or nothing more can be removed; lines are looked up in
//! the original text by key path. Checks serde cannot make (a log filter
//! that does not parse, a group that does not exist) run afterwards.

use toml_edit::{DocumentMut, ImDocument, Item};

use super::{Config, Problem};

const MAX_PROBLEMS: usize = 50;

pub(super) fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    match check(text) {
        (Some(c), problems) if problems.is_empty() => Ok(c),
        (_, problems) => Err(problems),
    }
}

/// The configuration with the keys in error removed (when what is left
/// parses), and every problem.
pub(super) fn check(text: &str) -> (Option<Config>, Vec<Problem>) {
    let original = match ImDocument::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let line = e.span().map(|s| line_at(text, s.start));
            let message = e.message().trim().to_owned();
            let p = Problem { path: String::new(), line, message: format!("TOML syntax: {message}"), warning: false };
            return (None, vec![p]);
        }
    };
    let mut doc: DocumentMut = text.parse().expect("parsed once already");
    let mut problems = Vec::new();
    let config = loop {
        let de = toml_edit::de::Deserializer::from(doc.clone());
        match serde_path_to_error::deserialize::<_, Config>(de) {
            Ok(c) => break Some(c),
            Err(e) => {
                let segments: Vec<String> = e
                    .path()
                    .iter()
                    .map(|s| match s {
                        serde_path_to_error::Segment::Seq { index } => index.to_string(),
                        serde_path_to_error::Segment::Map { key } => key.clone(),
                        serde_path_to_error::Segment::Enum { variant } => variant.clone(),
                        serde_path_to_error::Segment::Unknown => "?".into(),
                    })
                    .collect();
                let mut message = e.inner().message().trim().to_owned();
                // serde names unknown keys in the message; put them in the path.
                let mut segs = segments.clone();
                if let Some(unknown) = unknown_field(&message) {
                    if segs.last().map(String::as_str) != Some(unknown.as_str()) {
                        segs.push(unknown);
                    }
                    message = format!("unknown key ({message})");
                }
                let line = line_of(&original, &segs);
                let p = Problem { path: segs.join("."), line, message, warning: false };
                let removed = remove(&mut doc, &segs);
                let repeat = problems.contains(&p);
                if !repeat {
                    problems.push(p);
                }
                if !removed || repeat || problems.len() >= MAX_PROBLEMS {
                    break None;
                }
            }
        }
    };
    if let Some(c) = &config {
        semantic(c, &original, &mut problems);
    }
    (config, problems)
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

/// The line in `text` (TOML) of the deepest part of `path` found in it.
pub(crate) fn toml_line(text: &str, path: &[String]) -> Option<usize> {
    line_of(&ImDocument::parse(text).ok()?, path)
}

/// The line of the deepest part of `path` found in the document.
fn line_of(doc: &ImDocument<&str>, path: &[String]) -> Option<usize> {
    use toml_edit::{Table, Value};
    enum Node<'a> {
        Table(&'a Table),
        Item(&'a Item),
        Value(&'a Value),
    }
    fn child<'a>(node: Node<'a>, seg: &str) -> Option<(Option<std::ops::Range<usize>>, Node<'a>)> {
        let index = seg.parse::<usize>().ok();
        match node {
            Node::Table(t) => t.get_key_value(seg).map(|(k, v)| (k.span(), Node::Item(v))),
            Node::Item(Item::Table(t)) => child(Node::Table(t), seg),
            Node::Item(Item::ArrayOfTables(a)) => a.get(index?).map(|t| (t.span(), Node::Table(t))),
            Node::Item(Item::Value(v)) => child(Node::Value(v), seg),
            Node::Value(Value::InlineTable(t)) => t.get_key_value(seg).map(|(k, v)| (k.span(), Node::Item(v))),
            Node::Value(Value::Array(a)) => a.get(index?).map(|v| (v.span(), Node::Value(v))),
            _ => None,
        }
    }
    let text = doc.raw();
    let mut node = Node::Table(doc.as_table());
    let mut best = None;
    for seg in path {
        let Some((span, next)) = child(node, seg) else { break };
        if let Some(s) = span {
            best = Some(line_at(text, s.start));
        }
        node = next;
    }
    best
}

/// Removes the item at `path` (or its deepest existing parent's offending
/// key) from the document; returns whether anything was removed.
fn remove(doc: &mut DocumentMut, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else { return false };
    let mut item: &mut Item = doc.as_item_mut();
    for seg in parents {
        item = match item {
            Item::Table(t) => match t.get_mut(seg) {
                Some(i) => i,
                None => return false,
            },
            _ => return false,
        };
    }
    match item {
        Item::Table(t) => t.remove(last).is_some(),
        Item::Value(toml_edit::Value::InlineTable(t)) => t.remove(last).is_some(),
        _ => false,
    }
}

fn semantic(c: &Config, doc: &ImDocument<&str>, problems: &mut Vec<Problem>) {
    let mut push = |path: &[&str], message: String| {
        let segs: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        problems.push(Problem { path: path.join("."), line: line_of(doc, &segs), message, warning: false });
    };
    if let Err(e) = super::check_log_filter(&c.log.level) {
        push(&["log", "level"], format!("not a log filter: {e}"));
    }
    if let Some(g) = &c.admin.group {
        match nix::unistd::Group::from_name(g) {
            Ok(Some(_)) => {}
            Ok(None) => push(&["admin", "group"], format!("group {g:?} does not exist")),
            Err(e) => push(&["admin", "group"], format!("cannot look up group {g:?}: {e}")),
        }
    }
    if c.storage.cache_mib == 0 {
        push(&["storage", "cache_mib"], "must be at least 1".into());
    }
    for (key, message) in c.api.problems() {
        let segs: Vec<&str> = key.split('.').collect();
        push(&segs, message);
    }
    if c.api.listen.is_some() && c.api.certificate.is_none() && c.smtp.certificate.is_none() {
        push(&["api", "listen"], "the API is served over TLS only: set api.certificate and api.key (or smtp's)".into());
    }
    if c.admin.socket.as_os_str().len() > 100 {
        push(&["admin", "socket"], "path is too long for a Unix socket (at most 100 bytes)".into());
    }
    if let Err(e) = c.retention.check() {
        // Filed under the key the message names (`retention.sweep_window = ...`).
        let message = e.to_string();
        let key = message
            .split_once("retention.")
            .and_then(|(_, rest)| rest.split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_')).next())
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        match key {
            Some(k) => push(&["retention", &k], message),
            None => push(&["retention"], message),
        }
    }
    if c.smtp.certificate.is_some() != c.smtp.key.is_some() {
        push(&["smtp", "certificate"], "certificate and key go together: set both or neither".into());
    }
    for (i, l) in c.smtp.listen.iter().enumerate() {
        if l.mode != super::SmtpMode::Smtp && c.smtp.certificate.is_none() {
            push(
                &["smtp", "listen", &i.to_string(), "mode"],
                format!("{:?} needs TLS: set smtp.certificate and smtp.key", l.mode).to_lowercase(),
            );
        }
    }
    if c.smtp.max_recipients == 0 || c.smtp.max_errors == 0 || c.smtp.idle_timeout == 0 {
        push(&["smtp"], "max_recipients, max_errors and idle_timeout must be at least 1".into());
    }
    let s = &c.smtp;
    for (key, value) in [
        ("tls_handshake_timeout", s.tls_handshake_timeout),
        ("rate_window", s.rate_window),
        ("max_connections_per_address", s.max_connections_per_address as u64),
        ("max_connections", s.max_connections.unwrap_or(1) as u64),
        ("auth_max_failures_per_address", u64::from(s.auth_max_failures_per_address)),
        ("auth_max_failures_per_user", u64::from(s.auth_max_failures_per_user)),
        ("auth_lockout", s.auth_lockout),
    ] {
        if value == 0 {
            push(&["smtp", key], "must be at least 1".into());
        }
    }
    for (key, value) in [("auth_delay", s.auth_delay), ("auth_max_delay", s.auth_max_delay)] {
        if !(0.0..=300.0).contains(&value) {
            push(&["smtp", key], "must be 0 to 300 seconds".into());
        }
    }
    if s.auth_delay > s.auth_max_delay {
        push(&["smtp", "auth_delay"], "must not be more than auth_max_delay".into());
    }
    for (i, l) in s.listen.iter().enumerate() {
        if l.max_connections == Some(0) {
            push(&["smtp", "listen", &i.to_string(), "max_connections"], "must be at least 1".into());
        }
    }
    if c.mail.transport == super::MailTransport::Relay && c.mail.relay_host.is_none() {
        push(&["mail", "relay_host"], "transport = \"relay\" needs relay_host".into());
    }
    if c.mail.relay_user.is_some() != c.mail.relay_password_file.is_some() {
        push(&["mail", "relay_user"], "relay_user and relay_password_file go together".into());
    }
    if c.fax.ident.len() > 20 || !c.fax.ident.chars().all(|ch| ch.is_ascii_graphic() || ch == ' ') {
        push(&["fax", "ident"], "at most 20 printable ASCII characters".into());
    }
    if let Err(e) = c.fax.header.parse::<crate::document::header::Template>() {
        push(&["fax", "header"], e);
    }
    if !(1..=1000).contains(&c.fax.max_pages) {
        push(&["fax", "max_pages"], "must be 1 to 1000".into());
    }
    let bad_schedule = |d: &[u64]| d.len() > 20 || d.iter().any(|d| *d == 0 || *d > 7 * 86_400);
    if bad_schedule(&c.fax.retry_delays) {
        push(&["fax", "retry_delays"], "at most 20 delays, each 1 s to 7 days".into());
    }
    for (cause, d) in c.fax.retry_by_cause.iter() {
        if bad_schedule(d) {
            push(&["fax", "retry_by_cause", cause], "at most 20 delays, each 1 s to 7 days".into());
        }
    }
    if c.fax.pdf_renderer.uses_ghostscript() {
        let missing = missing_programs(&std::env::var_os("PATH").unwrap_or_default());
        if !missing.is_empty() {
            push(
                &["fax", "pdf_renderer"],
                format!("needs {} on the PATH (Debian: ghostscript, util-linux)", missing.join(" and ")),
            );
        }
    }
    for (i, t) in c.trunk.iter().enumerate() {
        let at = i.to_string();
        if let Err(e) = t.validate() {
            push(&["trunk", &at], e.to_string());
        }
        if t.bind.is_none() {
            push(&["trunk", &at, "bind"], "each trunk needs the local address to bind to".into());
        }
        if c.trunk[..i].iter().any(|o| o.name == t.name) {
            push(&["trunk", &at, "name"], format!("another trunk is named {:?}", t.name));
        }
    }
    if c.storage.data_dir.as_os_str().is_empty() {
        push(&["storage", "data_dir"], "must not be empty".into());
    }
    for (at, message) in listen_conflicts(c) {
        let path: Vec<&str> = at.split('.').collect();
        push(&path, message);
    }
}

/// Listen addresses that the same protocol binds twice: the SMTP listeners
/// and the metrics listener (TCP) among each other, the trunks (UDP) among
/// each other. Each is named by the key path of the second one, with the
/// first. A wildcard address takes its port on every address of its
/// family; port 0 (any free port) never collides.
fn listen_conflicts(c: &Config) -> Vec<(String, String)> {
    use std::net::SocketAddr;
    let collide = |a: &SocketAddr, b: &SocketAddr| {
        a.port() == b.port()
            && a.port() != 0
            && a.is_ipv4() == b.is_ipv4()
            && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
    };
    let mut tcp: Vec<(String, SocketAddr)> =
        c.smtp.listen.iter().enumerate().map(|(i, l)| (format!("smtp.listen.{i}.address"), l.address)).collect();
    tcp.extend(c.metrics.listen.map(|a| ("metrics.listen".to_owned(), a)));
    tcp.extend(c.api.listen.map(|a| ("api.listen".to_owned(), a)));
    let udp: Vec<(String, SocketAddr)> =
        c.trunk.iter().enumerate().filter_map(|(i, t)| Some((format!("trunk.{i}.bind"), t.bind?))).collect();
    let mut out = Vec::new();
    for set in [tcp, udp] {
        for (i, (path, addr)) in set.iter().enumerate() {
            if let Some((first, other)) = set[..i].iter().find(|(_, o)| collide(o, addr)) {
                out.push((path.clone(), format!("{addr} is also listened on by {first} ({other})")));
            }
        }
    }
    out
}

/// The programs Ghostscript rendering runs (`prlimit`, then `gs`) that are
/// not an executable file in any directory of `path`.
pub(super) fn missing_programs(path: &std::ffi::OsStr) -> Vec<&'static str> {
    use std::os::unix::fs::PermissionsExt;
    let found = |name: &str| {
        std::env::split_paths(path)
            .any(|d| std::fs::metadata(d.join(name)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
    };
    ["prlimit", crate::document::ghostscript::GS].into_iter().filter(|p| !found(p)).collect()
}
