//! An accepted mail to fax pages: its attachments (PDF, TIFF, images, text)
//! in order, forwarded messages (`message/rfc822`, as mail clients forward
//! "as attachment") opened in place to [`MAX_FORWARD_DEPTH`] levels, or,
//! when it has none, its text (or HTML) body. Images its HTML shows inline
//! (`cid:`, a signature's logo) are part of the body and are not faxed as
//! pages of their own unless they are all there is. The body beside
//! attachments and the headers of forwarded messages become the cover
//! page's comment when a cover page is on. `format=flowed` text (RFC 3676)
//! is joined back into paragraphs.
//!
//! Whether a cover page is on ([`wants_cover`]): the mail's `X-Fax-Cover`
//! header (`yes` or `no`) if it has one, else the account's setting if it
//! has one, else `[fax] cover_page`. A header with any other value is
//! refused, with a report saying what to write: the sender asked for
//! something, and a fax cannot be taken back once it has been sent.

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

use crate::document::{self, CoverPage, Kind, Pages, Settings};

/// What rendering a mail gave.
#[derive(Debug)]
pub struct Rendered {
    /// The pages as a multi-page G4 TIFF.
    pub tiff: Vec<u8>,
    /// How many.
    pub pages: u32,
    /// The mail's subject.
    pub subject: String,
}

/// Why a mail cannot be faxed, for the sender's report.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Not a MIME message at all.
    #[error("the message cannot be read as a mail message")]
    Unreadable,
    /// Nothing to fax in it.
    #[error("the message has no attachment and no text to fax")]
    Empty,
    /// Forwarded messages nested deeper than [`MAX_FORWARD_DEPTH`].
    #[error(
        "the message holds forwarded messages nested more than {MAX_FORWARD_DEPTH} deep; forward the innermost message itself"
    )]
    TooDeep,
    /// The `X-Fax-Cover` header says neither yes nor no.
    #[error("the {COVER_HEADER} header says {0:?}; write \"yes\" for a cover page or \"no\" for none")]
    CoverHeader(String),
    /// A part could not be converted.
    #[error("{name}: {error}")]
    Document {
        /// The part's file name, or its type.
        name: String,
        /// What was wrong.
        error: document::Error,
    },
}

fn doc_err(name: &str) -> impl Fn(document::Error) -> RenderError + '_ {
    move |error| RenderError::Document { name: name.to_owned(), error }
}

/// The header with which a mail turns the cover page on or off for itself.
pub const COVER_HEADER: &str = "X-Fax-Cover";

/// What the mail's [`COVER_HEADER`] asks for: `Some(true)` a cover page,
/// `Some(false)` none, `None` when it has no such header. `yes`/`no`,
/// `on`/`off`, `true`/`false` and `1`/`0` are understood in any case;
/// anything else, or two such headers that disagree, is an error.
pub fn cover_asked(raw: &[u8]) -> Result<Option<bool>, RenderError> {
    let Some(msg) = MessageParser::default().parse_headers(raw) else { return Ok(None) };
    let mut asked = None;
    for (name, value) in msg.headers_raw() {
        if !name.eq_ignore_ascii_case(COVER_HEADER) {
            continue;
        }
        let value = value.trim();
        let this = match value.to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" | "1" => true,
            "no" | "off" | "false" | "0" => false,
            _ => return Err(RenderError::CoverHeader(value.chars().take(40).collect())),
        };
        if asked.is_some_and(|a| a != this) {
            return Err(RenderError::CoverHeader(format!("{} and {value}", if this { "no" } else { "yes" })));
        }
        asked = Some(this);
    }
    Ok(asked)
}

/// Whether the mail `raw` gets a cover page: its own header first, then the
/// account's setting (`None`: inherit), then the gateway's (`[fax] cover_page`).
pub fn wants_cover(raw: &[u8], gateway: bool, account: Option<bool>) -> Result<bool, RenderError> {
    Ok(cover_asked(raw)?.or(account).unwrap_or(gateway))
}

/// The subject of a raw message (for reports when rendering fails).
pub fn subject_of(raw: &[u8]) -> String {
    MessageParser::default().parse_headers(raw).and_then(|m| m.subject().map(str::to_owned)).unwrap_or_default()
}

/// Forwarded messages (`message/rfc822` parts) are opened this many levels
/// deep; one nested deeper is refused rather than faxed in part.
pub const MAX_FORWARD_DEPTH: usize = 3;

/// Renders `raw` with `settings`; `cover` (when given) goes in front, with
/// the body text (and the headers of forwarded messages) as its comment.
pub fn render(raw: &[u8], settings: Settings, cover: Option<CoverPage>) -> Result<Rendered, RenderError> {
    let msg = MessageParser::default().parse(raw).ok_or(RenderError::Unreadable)?;
    let subject = msg.subject().unwrap_or_default().to_owned();
    let mut pages = Pages::new(settings);
    let mut comment = String::new();
    add_message(&msg, 0, &mut pages, &mut comment)?;
    if pages.pages().is_empty() {
        return Err(RenderError::Empty);
    }
    if let Some(mut c) = cover {
        c.comment = comment.trim().to_owned();
        c.subject = subject.clone();
        pages.prepend_cover(&c).map_err(doc_err("cover page"))?;
    }
    let tiff = pages.to_tiff().map_err(doc_err("pages"))?;
    let n = pages.pages().len() as u32;
    Ok(Rendered { tiff, pages: n, subject })
}

/// Adds the pages of one message (the mail, or a message forwarded in it at
/// `depth`): its attachments in order, forwarded messages opened in place,
/// or its body when nothing else is faxed. What is not faxed of it (the
/// body beside attachments, forwarded headers) is added to `comment`.
fn add_message(msg: &Message<'_>, depth: usize, pages: &mut Pages, comment: &mut String) -> Result<(), RenderError> {
    let cols = document::text::Layout::body(pages.settings().paper, pages.settings().resolution).cols;
    let body = Body::of(msg);
    let cids = referenced_cids(msg);
    let is_cid_image = |p: &MessagePart<'_>| {
        !matches!(p.body, PartType::Message(_)) && p.content_id().is_some_and(|id| cids.contains(&normal_cid(id)))
    };
    // Images the HTML shows in its text (a signature's logo) are part of the
    // body, not documents: they are faxed only when nothing else is.
    let skip_cid_images = msg.attachments().any(|p| !is_cid_image(p)) || body.as_ref().is_some_and(Body::has_text);
    let before = pages.pages().len();
    let mut forwarded = String::new();
    for part in msg.attachments() {
        if skip_cid_images && is_cid_image(part) {
            continue;
        }
        if let PartType::Message(inner) = &part.body {
            if depth >= MAX_FORWARD_DEPTH {
                return Err(RenderError::TooDeep);
            }
            forwarded.push_str(&forward_header(inner));
            add_message(inner, depth + 1, pages, &mut forwarded)?;
            continue;
        }
        add_part(part, pages)?;
    }
    if pages.pages().len() == before {
        // Nothing else: the body is the document; a forwarded one under the
        // headers it was sent with.
        let text = match &body {
            Some(Body::Html(html)) if depth == 0 => {
                pages.add_html(html).map_err(doc_err("text"))?;
                None
            }
            Some(b) => Some(b.to_text(cols)),
            None => None,
        };
        if let Some(text) = text {
            let head = if depth > 0 { forward_header(msg) } else { String::new() };
            pages.add_text(&format!("{head}{text}")).map_err(doc_err("text"))?;
        }
    } else if let Some(b) = &body {
        push_paragraph(comment, &b.to_text(cols));
    }
    push_paragraph(comment, &forwarded);
    Ok(())
}

/// Adds one attachment's pages.
fn add_part(part: &MessagePart<'_>, pages: &mut Pages) -> Result<(), RenderError> {
    let name = part
        .attachment_name()
        .map(str::to_owned)
        .or_else(|| part.content_type().map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))))
        .unwrap_or_else(|| "attachment".into());
    let data = part.contents();
    let mime = part.content_type().map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")));
    let kind = match mime.as_deref().and_then(Kind::from_mime).or_else(|| Kind::sniff(data)) {
        // A generic type: trust the content.
        Some(Kind::Text) | None if Kind::sniff(data).is_some() => Kind::sniff(data),
        k => k,
    };
    let kind = kind.ok_or_else(|| RenderError::Document {
        name: name.clone(),
        error: document::Error::Unsupported(mime.clone().unwrap_or_else(|| "application/octet-stream".into())),
    })?;
    match kind {
        Kind::Text => pages.add_text(&plain_text(part)).map_err(doc_err(&name))?,
        Kind::Html => pages.add_html(&String::from_utf8_lossy(data)).map_err(doc_err(&name))?,
        k => pages.add_binary(k, data).map_err(doc_err(&name))?,
    };
    Ok(())
}

/// A text part's text, `format=flowed` (RFC 3676) decoded.
fn plain_text(part: &MessagePart<'_>) -> String {
    let text = String::from_utf8_lossy(part.contents());
    let param = |name: &str| part.content_type().and_then(|c| c.attribute(name)).map(str::to_ascii_lowercase);
    if param("format").as_deref() == Some("flowed") {
        document::text::unflow(&text, param("delsp").as_deref() == Some("yes"))
    } else {
        text.into_owned()
    }
}

/// A message's body.
enum Body {
    /// Its text parts, decoded.
    Text(String),
    /// Its HTML, when it has no text part.
    Html(String),
}

impl Body {
    fn of(msg: &Message<'_>) -> Option<Body> {
        let parts = |ids: &[u32]| ids.iter().filter_map(|&i| msg.part(i)).collect::<Vec<_>>();
        let text: Vec<String> = parts(&msg.text_body)
            .into_iter()
            .filter(|p| matches!(p.body, PartType::Text(_)))
            .map(plain_text)
            .filter(|t| !t.trim().is_empty())
            .collect();
        if !text.is_empty() {
            return Some(Body::Text(text.join("\n\n").trim().to_owned()));
        }
        let html: Vec<&str> = parts(&msg.html_body)
            .into_iter()
            .filter_map(|p| match &p.body {
                PartType::Html(h) if !h.trim().is_empty() => Some(h.as_ref()),
                _ => None,
            })
            .collect();
        (!html.is_empty()).then(|| Body::Html(html.join("\n")))
    }

    fn to_text(&self, cols: usize) -> String {
        match self {
            Body::Text(t) => t.clone(),
            Body::Html(h) => document::text::html_to_text(h, cols),
        }
    }

    /// Whether it has words of its own, not only images.
    fn has_text(&self) -> bool {
        match self {
            Body::Text(t) => !t.trim().is_empty(),
            Body::Html(h) => !document::text::html_to_text(&without_images(h), 80).trim().is_empty(),
        }
    }
}

/// The HTML with its `<img>` tags cut out (for [`Body::has_text`]: an image's
/// alt text is not text of the mail's own).
fn without_images(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len());
    let mut at = 0;
    while let Some(p) = lower[at..].find("<img") {
        out.push_str(&html[at..at + p]);
        at = lower[at + p..].find('>').map_or(html.len(), |e| at + p + e + 1);
    }
    out.push_str(&html[at..]);
    out
}

/// The Content-IDs that the message's HTML shows (`src="cid:..."`, RFC 2392).
fn referenced_cids(msg: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for part in msg.html_body.iter().filter_map(|&i| msg.part(i)) {
        let PartType::Html(html) = &part.body else { continue };
        let lower = html.to_ascii_lowercase();
        let mut at = 0;
        while let Some(p) = lower[at..].find("cid:") {
            let start = at + p + 4;
            let end =
                lower[start..].find(['"', '\'', '>', ' ', ')', '\t', '\r', '\n']).map_or(lower.len(), |e| start + e);
            out.push(normal_cid(&percent_decode(&html[start..end])));
            at = end;
        }
    }
    out
}

/// A Content-ID as compared: without angle brackets, in lower case.
fn normal_cid(id: &str) -> String {
    id.trim().trim_start_matches('<').trim_end_matches('>').to_ascii_lowercase()
}

/// `%XX` escapes decoded (a `cid:` URL is URL-encoded, RFC 2392 §2).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The header block a mail client prints above a forwarded message.
fn forward_header(msg: &Message<'_>) -> String {
    let addresses = |a: Option<&mail_parser::Address<'_>>| {
        a.map(|a| {
            a.iter()
                .map(|a| match (a.name(), a.address()) {
                    (Some(n), Some(e)) => format!("{n} <{e}>"),
                    (Some(n), None) => n.to_owned(),
                    (None, Some(e)) => e.to_owned(),
                    (None, None) => String::new(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
    };
    let mut out = String::from("---------- Forwarded message ----------\n");
    for (label, value) in [
        ("From", addresses(msg.from())),
        ("Date", msg.date().map(|d| d.to_rfc822()).unwrap_or_default()),
        ("Subject", msg.subject().unwrap_or_default().to_owned()),
        ("To", addresses(msg.to())),
        ("Cc", addresses(msg.cc())),
    ] {
        if !value.is_empty() {
            out.push_str(&format!("{label}: {value}\n"));
        }
    }
    out.push('\n');
    out
}

fn push_paragraph(out: &mut String, text: &str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_mail_becomes_pages() {
        let raw = "From: a@example.com\r\nTo: +4533221100@fax.example.net\r\nSubject: Hej\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\r\nRødgrød med fløde\r\n";
        let r = render(raw.as_bytes(), Settings::default(), None).unwrap();
        assert_eq!(r.pages, 1);
        assert_eq!(r.subject, "Hej");
        assert!(r.tiff.starts_with(b"II*\0"));
    }

    #[test]
    fn an_unsupported_attachment_is_refused_by_name() {
        let raw = b"From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
            --b\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename=a.zip\r\n\
            Content-Transfer-Encoding: base64\r\n\r\nUEsDBAo=\r\n--b--\r\n";
        let e = render(raw, Settings::default(), None).unwrap_err();
        assert!(e.to_string().starts_with("a.zip: "), "{e}");
    }

    #[test]
    fn an_html_only_mail_is_rendered_as_text() {
        let raw = b"From: a@example.com\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>there</b></p>\r\n";
        assert_eq!(render(raw, Settings::default(), None).unwrap().pages, 1);
    }

    fn mail_with_cover_header(value: Option<&str>) -> Vec<u8> {
        let header = value.map(|v| format!("X-Fax-Cover: {v}\r\n")).unwrap_or_default();
        format!("From: a@example.com\r\nSubject: Tilbud\r\n{header}Content-Type: text/plain\r\n\r\nSe tilbuddet.\r\n")
            .into_bytes()
    }

    #[test]
    fn the_cover_page_follows_the_mail_then_the_account_then_the_gateway() {
        // (header, gateway, account, cover page)
        let cases = [
            (None, false, None, false),
            (None, true, None, true),
            (None, false, Some(true), true),
            (None, true, Some(false), false),
            (Some("yes"), false, Some(false), true),
            (Some("YES"), false, None, true),
            (Some(" on "), false, None, true),
            (Some("no"), true, Some(true), false),
            (Some("Off"), true, None, false),
            (Some("0"), true, None, false),
        ];
        for (header, gateway, account, want) in cases {
            let raw = mail_with_cover_header(header);
            let on = wants_cover(&raw, gateway, account).unwrap();
            assert_eq!(on, want, "{header:?} gateway {gateway} account {account:?}");
            // And the fax has the cover page in front, or not.
            let cover = on.then(|| CoverPage { branding: "Acme".into(), ..CoverPage::default() });
            let r = render(&raw, Settings::default(), cover).unwrap();
            assert_eq!(r.pages, 1 + want as u32, "{header:?} gateway {gateway} account {account:?}");
        }
        // The header's name is not case-sensitive.
        let raw = b"From: a@example.com\r\nx-fax-COVER: no\r\n\r\nhi\r\n";
        assert!(!wants_cover(raw, true, Some(true)).unwrap());
    }

    #[test]
    fn an_unreadable_cover_header_is_refused_with_what_to_write() {
        for (value, shown) in [("maybe", "\"maybe\""), ("", "\"\""), ("ja tak", "\"ja tak\"")] {
            let e = wants_cover(&mail_with_cover_header(Some(value)), false, None).unwrap_err();
            assert!(matches!(e, RenderError::CoverHeader(_)), "{value:?}: {e}");
            let text = e.to_string();
            assert!(text.contains(shown) && text.contains("\"yes\"") && text.contains("\"no\""), "{text}");
        }
        // Two headers that disagree.
        let raw = b"From: a@example.com\r\nX-Fax-Cover: yes\r\nX-Fax-Cover: no\r\n\r\nhi\r\n";
        assert!(matches!(wants_cover(raw, false, None), Err(RenderError::CoverHeader(_))));
        // Two that agree are fine.
        let raw = b"From: a@example.com\r\nX-Fax-Cover: yes\r\nX-Fax-Cover: on\r\n\r\nhi\r\n";
        assert!(wants_cover(raw, false, None).unwrap());
    }

    #[test]
    fn an_empty_mail_is_refused() {
        let raw = b"From: a@example.com\r\nSubject: x\r\n\r\n   \r\n";
        assert!(matches!(render(raw, Settings::default(), None), Err(RenderError::Empty)));
    }
}
