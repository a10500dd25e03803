//! The admin socket's requests: any bytes, split into lines as the socket
//! reads them, parsed as request envelopes. What parses is written back to
//! JSON that parses to the same request, and is run against one directory
//! and store kept for the whole run (stateful: tenants, accounts, numbers
//! and holds added by earlier inputs stay), as the operator narrowed to the
//! envelope's scope, through the same authorisation and audit as the
//! socket, answering a result or an error, never a panic. `Backup` is parsed but not run (it writes a file where
//! the request says).
#![no_main]

use std::sync::{Arc, OnceLock};

use faxgate::admin::{self, Envelope, Request, Response, Status};
use faxgate::clock::{Clock, FakeClock};
use faxgate::config::Config;
use faxgate::directory::Directory;
use faxgate::store::Store;
use libfuzzer_sys::fuzz_target;

fn context() -> &'static admin::Context {
    static CTX: OnceLock<admin::Context> = OnceLock::new();
    CTX.get_or_init(|| {
        let data = std::env::temp_dir().join(format!("faxgate-fuzz-admin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let config = Config::parse("").expect("the empty configuration is valid");
        let names = faxgate::retention::key_names(&config.retention);
        let store = Store::open_with(&data, &data.join("keys"), names).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(FakeClock::new("2026-01-15T10:00:00Z".parse().unwrap()));
        let directory = Directory::open(&store, clock.clone()).unwrap();
        let retention =
            faxgate::retention::Retention::new(&store, &directory, config.retention.clone(), clock.clone()).unwrap();
        let sweeper = retention.sweeper(clock);
        let status = Status {
            version: "fuzz".into(),
            pid: std::process::id(),
            config: "embedded".into(),
            data_dir: data.display().to_string(),
            daemon: false,
            started: None,
            damage: Vec::new(),
            key_faults: Vec::new(),
            clock_suspended: None,
            restart_needed: Vec::new(),
        };
        admin::Context::new(&store, directory, retention, sweeper, status).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    for line in data.split_inclusive(|b| *b == b'\n') {
        let Ok(envelope) = serde_json::from_slice::<Envelope>(line) else { continue };
        let text = serde_json::to_string(&envelope).expect("a parsed request serialises");
        let again: Envelope = serde_json::from_str(&text).expect("a request written back parses again");
        assert_eq!(serde_json::to_string(&again).unwrap(), text, "a request changes when written back");
        if matches!(envelope.request, Request::Backup { .. }) {
            continue;
        }
        let Ok(principal) = admin::access::narrow(&admin::Principal::Operator, &envelope.scope) else { continue };
        let caller = admin::Caller::user(principal, 0);
        let response = Response::from_result(admin::handle(context(), &caller, envelope.request));
        serde_json::to_vec(&response).expect("every answer serialises");
    }
});
