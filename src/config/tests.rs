use super::*;

#[test]
fn the_example_parses_and_matches_the_defaults_it_documents() {
    let text = include_str!("../../faxgate.example.toml");
    let c = Config::parse(text).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(c.storage.data_dir, PathBuf::from("/var/lib/faxgate"));
    assert_eq!(c.admin.socket, PathBuf::from("/run/faxgate/admin.sock"));
    assert_eq!(c.smtp, SmtpConfig::default());
    assert_eq!(c.mail, MailConfig::default());
    assert_eq!(c.metrics.listen, Some("127.0.0.1:9187".parse().unwrap()), "localhost in the example");
    assert_eq!(Config::parse("").unwrap().metrics.listen, None, "off by default");
    assert_eq!(c.api, crate::api::ApiConfig::default());
}

#[test]
fn the_api_section_is_checked() {
    let p = Config::parse("[api]\nlisten = \"127.0.0.1:8443\"\nburst = 0\ncertificate = \"/c.pem\"\n").unwrap_err();
    assert!(p.iter().any(|p| p.path == "api.burst" && p.message.contains("at least 1")), "{p:?}");
    assert!(p.iter().any(|p| p.path == "api.key" && p.message.contains("together")), "{p:?}");
    let p = Config::parse("[api]\nlisten = \"127.0.0.1:8443\"\n").unwrap_err();
    assert!(p.iter().any(|p| p.path == "api.listen" && p.message.contains("TLS only")), "{p:?}");
    let p = Config::parse("[metrics]\nlisten = \"127.0.0.1:8443\"\n[api]\nlisten = \"127.0.0.1:8443\"\n[smtp]\ncertificate = \"/c\"\nkey = \"/k\"\n")
        .unwrap_err();
    assert!(p.iter().any(|p| p.path == "api.listen" && p.message.contains("metrics.listen")), "{p:?}");
}

#[test]
fn smtp_and_mail_sections_are_checked() {
    let p = Config::parse(
        "[smtp]
certificate = \"/c.pem\"
[[smtp.listen]]
address = \"127.0.0.1:0\"
mode = \"smtps\"
",
    )
    .unwrap_err();
    assert!(p.iter().any(|p| p.path == "smtp.certificate" && p.message.contains("set both")), "{p:?}");
    let p = Config::parse(
        "[[smtp.listen]]
address = \"127.0.0.1:0\"
mode = \"submission\"
",
    )
    .unwrap_err();
    assert!(p.iter().any(|p| p.path == "smtp.listen.0.mode" && p.message.contains("needs tls")), "{p:?}");
    let p = Config::parse(
        "[[smtp.listen]]
address = \"nowhere\"
",
    )
    .unwrap_err();
    assert_eq!(p[0].path, "smtp.listen.0.address", "{p:?}");
    let p = Config::parse(
        "[mail]
transport = \"relay\"
",
    )
    .unwrap_err();
    assert!(p.iter().any(|p| p.path == "mail.relay_host"), "{p:?}");
    let c = Config::parse(
        "[smtp]
[[smtp.listen]]
address = \"127.0.0.1:2525\"
",
    )
    .unwrap();
    assert_eq!(c.smtp.listen[0].mode, SmtpMode::Smtp);
    assert_eq!(c.smtp.max_message_size, 20 * 1024 * 1024);
}

#[test]
fn the_embedded_default_parses_and_stays_local() {
    let c = Config::parse(EMBEDDED).unwrap();
    assert!(c.storage.data_dir.is_relative());
    assert!(c.admin.socket.starts_with(&c.storage.data_dir));
}

#[test]
fn an_empty_file_gives_the_defaults() {
    assert_eq!(Config::parse("").unwrap(), Config::default());
}

#[test]
fn unknown_keys_are_refused_with_path_and_line() {
    let text = "[storage]\ndata_dir = \"/x\"\ndata_dri = \"/y\"\n";
    let p = Config::parse(text).unwrap_err();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].path, "storage.data_dri");
    assert_eq!(p[0].line, Some(3));
    assert!(p[0].message.contains("unknown key"), "{}", p[0]);
    let p = Config::parse("[nonsense]\na = 1\n").unwrap_err();
    assert_eq!(p[0].path, "nonsense");
    assert_eq!(p[0].line, Some(1));
}

/// No production setting speeds time up: the old `[fax] time_scale` is an
/// unknown key (the integration tests use a test build's clock instead).
#[test]
fn there_is_no_time_scale() {
    let p = Config::parse("[fax]\ntime_scale = 5.0\n").unwrap_err();
    assert_eq!(p[0].path, "fax.time_scale");
    assert!(p[0].message.contains("unknown key"), "{}", p[0]);
}

#[test]
fn every_problem_is_reported() {
    let text = "\
[storage]
data_dir = 5

[admin]
socket = \"/run/faxgate/admin.sock\"
grup = \"faxgate\"

[log]
level = \"info,,=x=y\"
target = \"syslog\"
";
    let p = Config::parse(text).unwrap_err();
    let shown: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert_eq!(p.len(), 4, "{shown:#?}");
    assert!(shown.iter().any(|s| s.starts_with("line 9: log.level: not a log filter")), "{shown:#?}");
    assert!(shown[0].starts_with("line 2: storage.data_dir:"), "{shown:#?}");
    assert!(shown.iter().any(|s| s.starts_with("line 6: admin.grup: unknown key")), "{shown:#?}");
    assert!(shown.iter().any(|s| s.starts_with("line 10: log.target:")), "{shown:#?}");
}

#[test]
fn semantic_problems_have_lines_too() {
    let p = Config::parse("[log]\nlevel = \"info,=x=y=z\"\n[admin]\ngroup = \"no-such-group-here\"\n").unwrap_err();
    let shown: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert_eq!(p.len(), 2, "{shown:#?}");
    assert!(shown[0].starts_with("line 2: log.level: not a log filter"), "{shown:#?}");
    assert!(shown[1].starts_with("line 4: admin.group: group \"no-such-group-here\" does not exist"), "{shown:#?}");
}

#[test]
fn syntax_errors_name_the_line() {
    let p = Config::parse("[storage]\ndata_dir = \"/x\n").unwrap_err();
    assert_eq!(p[0].line, Some(2), "{p:?}");
    assert!(p[0].message.starts_with("TOML syntax"));
}

#[test]
fn retention_periods_are_checked() {
    let c = Config::parse("[retention]\ncdr = \"2 years\"\n").unwrap();
    assert_eq!(
        crate::retention::policy::after("2025-01-01T00:00:00Z".parse().unwrap(), c.retention.cdr).to_string(),
        "2027-01-01T00:00:00Z"
    );
    let p = Config::parse("[retention]\ncdr = \"90 days\"\n").unwrap_err();
    assert_eq!(p[0].path, "retention.cdr");
    assert_eq!(p[0].line, Some(2));
    assert!(p[0].message.contains("one-year legal duty"), "{}", p[0]);
    assert!(Config::parse("[retention]\ncdr = \"90 days\"\nallow_short_cdr_period = true\n").is_ok());
    let p = Config::parse("[retention]\naccount_after_termination = \"soon\"\n").unwrap_err();
    assert_eq!(p[0].path, "retention.account_after_termination");
}

#[test]
fn retry_schedules_by_cause_are_read_and_checked() {
    let c = Config::parse("[fax]\nretry_delays = [60]\n[fax.retry_by_cause]\nbusy = [120, 300]\n").unwrap();
    assert_eq!(c.fax.retry_by_cause.busy, Some(vec![120, 300]));
    assert_eq!(c.fax.retry_by_cause.no_answer, None);
    let p = Config::parse("[fax.retry_by_cause]\nno_answer = [0]\n").unwrap_err();
    assert_eq!(p[0].path, "fax.retry_by_cause.no_answer");
    assert_eq!(p[0].line, Some(2));
    let p = Config::parse("[fax.retry_by_cause]\nringing = [60]\n").unwrap_err();
    assert!(p[0].to_string().contains("unknown key"), "{}", p[0]);
}

#[test]
fn dither_and_pdf_renderer_are_read_checked_and_reach_the_documents() {
    use crate::document::{Dither, PdfRenderer};
    let example = Config::parse(include_str!("../../faxgate.example.toml")).unwrap();
    assert_eq!((example.fax.dither, example.fax.pdf_renderer), (Dither::Auto, PdfRenderer::Hayro));
    assert_eq!(Config::parse("").unwrap().fax.dither, Dither::Auto);
    let c = Config::parse("[fax]\ndither = \"diffuse\"\npdf_renderer = \"hayro-then-ghostscript\"\n").unwrap();
    assert_eq!((c.fax.dither, c.fax.pdf_renderer), (Dither::Diffuse, PdfRenderer::HayroThenGhostscript));
    // What the gateway renders a mail with.
    let tenant = crate::directory::Tenant {
        id: "acme".parse().unwrap(),
        name: "Acme".into(),
        branding: crate::directory::Branding {
            display_name: "Acme".into(),
            from_address: "fax@acme.test".parse().unwrap(),
            language: crate::directory::Language::En,
        },
        default_country: "DK".parse().unwrap(),
        fax_domains: vec![],
        paper: crate::directory::Paper::A4,
        time_zone: None,
        header_template: None,
        station_id: None,
    };
    let account = crate::directory::Account {
        id: crate::types::AccountId::generate(),
        tenant: tenant.id.clone(),
        name: "C".into(),
        reference: None,
        paper: Some(crate::directory::Paper::Letter),
        created: "2026-01-01T00:00:00Z".parse().unwrap(),
        terminated_at: None,
        allow_international: false,
        allow_premium: false,
        cover_page: None,
        station_id: None,
    };
    let s = c.fax.document_settings(&tenant, &account);
    assert_eq!((s.dither, s.pdf_renderer), (Dither::Diffuse, PdfRenderer::HayroThenGhostscript));
    assert_eq!((s.paper, s.limits.max_pages), (crate::document::Paper::Letter, 50));
    // Unknown values are refused with the key, the line and the choices.
    let p = Config::parse("[fax]\nresolution = \"fine\"\ndither = \"halftone\"\npdf_renderer = \"gs\"\n").unwrap_err();
    let shown: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert!(shown.iter().any(|s| s.starts_with("line 3: fax.dither:") && s.contains("diffuse")), "{shown:#?}");
    assert!(
        shown.iter().any(|s| s.starts_with("line 4: fax.pdf_renderer:") && s.contains("hayro-then-ghostscript")),
        "{shown:#?}"
    );
    // Ghostscript needs its programs: found here (the document tests run
    // them), missing on an empty PATH.
    assert_eq!(check::missing_programs(&std::env::var_os("PATH").unwrap()), Vec::<&str>::new());
    assert_eq!(check::missing_programs(std::ffi::OsStr::new("/nonexistent")), ["prlimit", "gs"]);
}

#[test]
fn a_log_level_that_is_not_one_is_refused() {
    for good in ["info", "debug,sled=info", "faxgate=debug,info", "WARN", "faxgate_smtp::server=trace", "off", "3"] {
        assert!(check_log_filter(good).is_ok(), "{good}: {:?}", check_log_filter(good));
    }
    // RUST_LOG reads "debgu" as a target with every level on, which turns
    // every other target off.
    let p = Config::parse("[log]\nlevel = \"debgu\"\n").unwrap_err();
    assert_eq!((p[0].path.as_str(), p[0].line), ("log.level", Some(2)), "{p:?}");
    assert!(p[0].message.contains("\"debgu\" is not a level"), "{}", p[0]);
    for bad in ["faxgate=verbose", "info,faxgate", "=debug", "faxgate=", "[{=}]"] {
        assert!(check_log_filter(bad).is_err(), "{bad} passed");
    }
}

#[test]
fn smtp_budgets_have_defaults_and_are_checked() {
    let c = Config::parse("").unwrap();
    let l = c.smtp.limits();
    assert_eq!(l.tls_handshake_timeout, std::time::Duration::from_secs(10));
    assert_eq!((l.min_rate, l.rate_window.as_secs()), (500, 30));
    let a = c.smtp.auth_limits();
    assert_eq!((a.delay.as_secs(), a.max_delay.as_secs(), a.lockout.as_secs()), (1, 15, 600));
    assert_eq!((a.max_failures_per_address, a.max_failures_per_user), (10, 30));
    // The total is sized from the file-descriptor limit unless set.
    assert_eq!(c.smtp.max_connections_for(128), 48);
    assert_eq!(c.smtp.max_connections_for(1024), 384);
    assert_eq!(c.smtp.max_connections_for(65536), 32640);
    assert_eq!(c.smtp.max_connections_for(u64::MAX), ((1 << 24) - 256) / 2);
    let c = Config::parse("[smtp]\nmax_connections = 7\nauth_delay = 0.25\n").unwrap();
    assert_eq!(c.smtp.max_connections_for(128), 7);
    assert_eq!(c.smtp.auth_limits().delay, std::time::Duration::from_millis(250));
    let p = Config::parse(
        "[smtp]\nmax_connections = 0\nrate_window = 0\nauth_delay = 20.0\nauth_max_delay = 10.0\nauth_lockout = 0\n\
         [[smtp.listen]]\naddress = \"127.0.0.1:0\"\nmax_connections = 0\n",
    )
    .unwrap_err();
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    for key in [
        "smtp.max_connections",
        "smtp.rate_window",
        "smtp.auth_delay",
        "smtp.auth_lockout",
        "smtp.listen.0.max_connections",
    ] {
        assert!(paths.contains(&key), "{key} not in {p:?}");
    }
    let p = Config::parse("[smtp]\nauth_max_delay = nan\n").unwrap_err();
    assert_eq!(p[0].path, "smtp.auth_max_delay", "{p:?}");
}

#[test]
fn log_format_json_is_read_and_needs_a_restart() {
    let c = Config::parse("[log]\nformat = \"json\"\n").unwrap();
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(Config::default().restart_needed_for(&c), vec!["log.format"]);
    assert!(Config::parse("[log]\nformat = \"xml\"\n").is_err());
}

#[test]
fn the_page_header_template_is_checked() {
    assert_eq!(Config::parse("").unwrap().fax.header, crate::document::header::DEFAULT_TEMPLATE);
    assert_eq!(Config::parse("[fax]\nheader = \"\"\n").unwrap().fax.header, "");
    let p = Config::parse("[fax]\nheader = \"{date} {dato}\"\n").unwrap_err();
    assert!(p.iter().any(|p| p.path == "fax.header" && p.message.contains("unknown placeholder {dato}")), "{p:?}");
}
