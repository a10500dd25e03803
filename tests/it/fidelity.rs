//! What a fax says about itself, and what the gateway says about a fax,
//! against the running binary between its two loopback trunks: the page
//! header of a fax from mail read back by tesseract on each page as the far
//! end received it; the CDR of a call answered without a fax phase; a caller
//! without a number; the report of a mail that was never called.

use std::path::Path;
use std::process::Command;

use crate::gateway::{
    HEADER_ROWS, Opts, Pbm, attachments, cdrs, fixture, header, rasters, send_mail, send_mail_with, start, tiff_pages,
    wait_for_cdrs, wait_for_mail,
};
use crate::harness::BIN;

/// What tesseract reads in the header band of page `n` (from 1) of the fax
/// TIFF `tiff`, drawn by libtiff's tiff2pdf and poppler's pdftoppm at twice
/// the fax's resolution.
fn header_text(tiff: &Path, n: usize, dir: &Path) -> String {
    let pdf = dir.join("ocr.pdf");
    if !pdf.exists() {
        let o = Command::new("tiff2pdf").arg("-o").arg(&pdf).arg(tiff).output().expect("tiff2pdf (libtiff-tools)");
        assert!(o.status.success(), "tiff2pdf: {}", String::from_utf8_lossy(&o.stderr));
    }
    let prefix = dir.join(format!("header-{n}"));
    let (page, band) = (n.to_string(), (2 * HEADER_ROWS).to_string());
    let o = Command::new("pdftoppm")
        .args(["-png", "-rx", "408", "-ry", "392", "-f", &page, "-l", &page, "-singlefile"])
        .args(["-x", "0", "-y", "0", "-W", "3456", "-H", &band])
        .arg(&pdf)
        .arg(&prefix)
        .output()
        .expect("pdftoppm (poppler-utils)");
    assert!(o.status.success(), "pdftoppm: {}", String::from_utf8_lossy(&o.stderr));
    let png = prefix.with_extension("png");
    let o = Command::new("tesseract")
        .arg(&png)
        .args(["stdout", "--dpi", "400", "--psm", "7", "-l", "eng"])
        .output()
        .expect("tesseract (tesseract-ocr)");
    assert!(o.status.success(), "tesseract: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// A tenant's page header with its time zone and station id, an account's
/// own station id: a cover page and a two-page letter arrive as three pages,
/// each headed with the call's time in the tenant's zone, the account's
/// station id, the number called and its own page number of three, printed
/// in the top margin above the document, which is unchanged under it. The
/// call identified itself with the same station id (its TSI).
#[test]
fn the_page_header_of_a_three_page_fax_is_read_back_on_every_page() {
    let g = start(Opts::default());
    let template = "{date} {time} {zone}|Fra {station}|Til {to}|Side {page}/{pages}";
    g.setup.ok(&["tenant", "change", "acme", "--time-zone", "Europe/Copenhagen", "--header-template", template]);
    g.setup.ok(&["tenant", "change", "acme", "--station-id", "+45 70 20 30 00"]);
    let tenant = g.setup.json(&["tenant", "show", "acme"]);
    assert_eq!(tenant["header_template"], template, "{tenant:#}");
    let accounts = g.setup.json(&["account", "list", "--tenant", "acme"]);
    let id = accounts[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        g.setup.json(&["account", "change", &id, "--station-id", "+45 70 20 30 99"])["station_id"],
        "+45 70 20 30 99"
    );
    // A station id T.30 cannot carry is refused, saying why.
    let err = g.setup.fails(&["account", "change", &id, "--station-id", "Acme Fax"]);
    assert!(err.contains("only digits, '+' and spaces"), "{err}");
    g.setup.ok(&["route", "change", "+4533221100", "inbox@customer.test", "--format", "tiff"]);

    send_mail_with(
        &g,
        &["33221100@fax.acme.test"],
        "Three pages",
        Some(&fixture("letter.pdf")),
        &[("X-Fax-Cover", "yes")],
    );
    let mails = wait_for_mail(&g, 2, 180);
    let (path, _) = mails.iter().find(|(_, m)| m.contains("To: inbox@customer.test")).expect("the fax mail");
    let dir = tempfile::tempdir().unwrap();
    let got = attachments(path, dir.path());
    let tiff = &got.iter().find(|(_, t, _)| t == "image/tiff").expect("the TIFF").2;
    assert_eq!(tiff_pages(tiff), [(1728, 2292); 3]);

    // The header's time is the call's (the outgoing CDR's start), in Copenhagen.
    let c = wait_for_cdrs(&g, 2);
    let out = c.iter().find(|x| x["direction"] == "mail-to-fax").expect("the outgoing CDR");
    let start: jiff::Timestamp = out["start"].as_str().unwrap().parse().unwrap();
    let when = start.to_zoned(jiff::tz::TimeZone::get("Europe/Copenhagen").unwrap()).strftime("%Y-%m-%d %H:%M %Z");
    let when = when.to_string();
    for n in 1..=3 {
        let text = header_text(tiff, n, dir.path());
        for want in [when.as_str(), "Fra +45 70 20 30 99", "Til +4533221100", &format!("Side {n}/3")] {
            assert!(text.contains(want), "page {n}: {want:?} not in {text:?}");
        }
    }
    // Under the header, the letter's pages are as `faxgate render` makes them.
    let sent = g.setup.path().join("sent.tiff");
    g.setup.ok(&["render", fixture("letter.pdf").to_str().unwrap(), "--out", sent.to_str().unwrap()]);
    let (received, sent) = (rasters(tiff, dir.path()), rasters(&sent, dir.path()));
    assert_eq!((received.len(), sent.len()), (3, 2));
    for (r, s) in received[1..].iter().zip(&sent) {
        let (r, s) = (Pbm::read(r), Pbm::read(s));
        assert_eq!(s.ink(0..HEADER_ROWS), 0, "the letter's top margin is blank");
        assert!(r.ink(0..HEADER_ROWS) > 1000, "a header");
        assert!(r.rows(HEADER_ROWS..r.height) == s.rows(HEADER_ROWS..s.height), "the letter changed under the header");
    }
    // The call identified itself with the account's station id.
    let inn = c.iter().find(|x| x["direction"] == "fax-to-mail").expect("the incoming CDR");
    assert_eq!(inn["remote_station"], "+45 70 20 30 99", "{inn:#}");
    assert_eq!((inn["pages"].as_u64(), inn["pages_total"].as_u64()), (Some(3), Some(3)), "{inn:#}");
}

/// A call from an anonymous caller that is answered and switched to T.38
/// (SIPp accepts the re-INVITE), then hung up before any fax phase: its CDR
/// has the answer and the SIP status, but no transport, bit rate, ECM,
/// resolution or page total, and no calling number. A whole fax from an
/// anonymous caller is mailed as from "unknown caller", its files named
/// `fax-unknown-<time>`.
#[test]
fn a_call_without_a_fax_phase_and_a_caller_without_a_number_are_told_truly() {
    let g = start(Opts::default());
    let dir = tempfile::tempdir().unwrap();
    let scenario = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("t38/tests/sipp/uac_t38.xml"))
        .unwrap()
        .replace("4599887766", "anonymous");
    let xml = dir.path().join("uac_anonymous_t38.xml");
    std::fs::write(&xml, scenario).unwrap();
    let sipp = Command::new("sipp")
        .args(["-sf", xml.to_str().unwrap(), &format!("127.0.0.1:{}", g.in_port)])
        .args(["-i", "127.0.0.1", "-s", "+4533221100", "-m", "1", "-nostdin"])
        .args(["-timeout", "30", "-timeout_error"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sipp is installed (scripts/packages.sh)");
    let port = faxgate_t38::sipp_peer::sipp_port(&sipp, std::net::Ipv4Addr::LOCALHOST);
    let out = sipp.wait_with_output().unwrap();
    assert!(out.status.success(), "sipp: {}\n{}", String::from_utf8_lossy(&out.stdout), g.daemon.log());
    let c = wait_for_cdrs(&g, 1);
    assert_eq!(c.len(), 1, "{c:#?}");
    let cdr = &c[0];
    assert_eq!((cdr["direction"].as_str(), cdr["sip_status"].as_u64()), (Some("fax-to-mail"), Some(200)), "{cdr:#}");
    assert_eq!(cdr["sip_signalling"], format!("127.0.0.1:{port}"), "{cdr:#}");
    assert!(cdr["answer"].is_string(), "answered: {cdr:#}");
    for absent in ["calling", "transport", "bit_rate", "ecm", "resolution", "pages_total"] {
        assert!(cdr[absent].is_null(), "{absent} in {cdr:#}");
    }
    assert_eq!(cdr["pages"], 0, "{cdr:#}");
    assert!(crate::gateway::maildir(&g).is_empty(), "no pages, no mail");

    // A whole fax from an anonymous caller, sent by the workspace's faxleg.
    let tiff = dir.path().join("letter.tiff");
    g.setup.ok(&["render", fixture("letter.pdf").to_str().unwrap(), "--out", tiff.to_str().unwrap()]);
    let faxleg = Path::new(BIN).parent().unwrap().join("faxleg");
    let sent = Command::new(&faxleg)
        .args(["send", "--bind", "127.0.0.1:0", "--trunk", &format!("127.0.0.1:{}", g.in_port)])
        .args(["--to", "+4533221100", "--from", "anonymous", "--tiff", tiff.to_str().unwrap(), "--scale", "5"])
        .output()
        .expect("faxleg is built with the workspace");
    let mails = wait_for_mail(&g, 1, 120);
    let (path, mail) = &mails[0];
    assert_eq!(
        header(mail, "Subject"),
        Some("Fax from unknown caller, 2 pages"),
        "{mail}\n{}",
        String::from_utf8_lossy(&sent.stdout)
    );
    let got = attachments(path, dir.path());
    let name = &got[0].0;
    let stamp =
        name.strip_prefix("fax-unknown-").and_then(|n| n.strip_suffix(".pdf")).unwrap_or_else(|| panic!("{name}"));
    assert!(stamp.len() == 15 && stamp.chars().all(|c| c.is_ascii_digit() || c == '-'), "{name}");
    let c = wait_for_cdrs(&g, 2);
    let fax = c.iter().find(|x| x["pages"] == 2).unwrap_or_else(|| panic!("{c:#?}"));
    assert!(fax["calling"].is_null(), "{fax:#}");
    assert_eq!((fax["resolution"].as_str(), fax["pages_total"].as_u64()), (Some("204x196"), Some(2)), "{fax:#}");
    assert_eq!(fax["transport"], "t38", "{fax:#}");
}

/// A mail whose document cannot be faxed is never called: its report says
/// so, with no attempts, pages or call time, and no call leaves a CDR.
#[test]
fn the_report_of_a_mail_never_called_says_it_was_not_called() {
    let g = start(Opts::default());
    send_mail(&g, &["33221100@fax.acme.test"], "Locked", Some(&fixture("encrypted-password.pdf")));
    let mails = wait_for_mail(&g, 1, 60);
    let report = mails[0].1.replace("=\r\n", "").replace("=\n", "");
    assert_eq!(header(&report, "Subject"), Some("Fax to +4533221100 NOT delivered"), "{report}");
    assert!(report.contains("Your fax could not be delivered; the number was not called."), "{report}");
    assert!(report.contains("Attempts:        none: the number was not called"), "{report}");
    assert!(report.contains("protected by a password"), "{report}");
    for absent in ["Call time", "Pages sent", "Remote station"] {
        assert!(!report.contains(absent), "{absent:?} in {report}");
    }
    assert!(cdrs(&g).is_empty(), "no call, no CDR");
}
