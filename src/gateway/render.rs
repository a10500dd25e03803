//! An accepted mail to fax pages: its attachments (PDF, TIFF, images) in
//! order, or, when it has none, its text (or HTML) body; the body becomes
//! the cover page's comment when a cover page is on.
//!
//! Whether a cover page is on ([`wants_cover`]): the mail's `X-Fax-Cover`
//! header (`yes` or `no`) if it has one, else the account's setting if it
//! has one, else `[fax] cover_page`. A header with any other value is
//! refused, with a report saying what to write: the sender asked for
//! something, and a fax cannot be taken back once it has been sent.

use mail_parser::{MessageParser, MimeHeaders};

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

/// Renders `raw` with `settings`; `cover` (when given) goes in front, with
/// the body text as its comment.
pub fn render(raw: &[u8], settings: Settings, cover: Option<CoverPage>) -> Result<Rendered, RenderError> {
    let msg = MessageParser::default().parse(raw).ok_or(RenderError::Unreadable)?;
    let subject = msg.subject().unwrap_or_default().to_owned();
    let mut pages = Pages::new(settings);
    let mut attachments = 0;
    for part in msg.attachments() {
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
            Kind::Text => pages.add_text(&String::from_utf8_lossy(data)).map_err(doc_err(&name))?,
            Kind::Html => pages.add_html(&String::from_utf8_lossy(data)).map_err(doc_err(&name))?,
            k => pages.add_binary(k, data).map_err(doc_err(&name))?,
        };
        attachments += 1;
    }
    let body = msg.body_text(0).map(|b| b.trim().to_owned()).filter(|b| !b.is_empty());
    if attachments == 0 {
        let html = is_html_only(&msg).then(|| msg.body_html(0)).flatten().filter(|h| !h.trim().is_empty());
        match (html, &body) {
            (Some(html), _) => pages.add_html(&html).map_err(doc_err("text"))?,
            (None, Some(text)) => pages.add_text(text).map_err(doc_err("text"))?,
            (None, None) => return Err(RenderError::Empty),
        };
    }
    if let Some(mut c) = cover {
        if attachments > 0 {
            c.comment = body.unwrap_or_default();
        }
        c.subject = subject.clone();
        pages.prepend_cover(&c).map_err(doc_err("cover page"))?;
    }
    let tiff = pages.to_tiff().map_err(doc_err("pages"))?;
    let n = pages.pages().len() as u32;
    if n == 0 {
        return Err(RenderError::Empty);
    }
    Ok(Rendered { tiff, pages: n, subject })
}

/// True when the message's only body is HTML (mail-parser then offers a
/// text rendering of it as `body_text`).
fn is_html_only(msg: &mail_parser::Message<'_>) -> bool {
    !msg.html_body.is_empty()
        && msg.text_body.iter().all(|i| msg.html_body.contains(i))
        && msg
            .html_body
            .iter()
            .all(|&i| msg.part(i).and_then(|p| p.content_type()).is_some_and(|c| c.subtype() == Some("html")))
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
        assert!(is_html_only(&MessageParser::default().parse(&raw[..]).unwrap()));
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
