//! The log at the default level holds no fax number, mail address or name:
//! each is written as its keyed hash (`n:3fa9c2d1`), which `faxgate log
//! hash` tells the operator, the same from the daemon and from the CLI on
//! the store alone; `log.personal_data = true` is said at WARN at start.

use crate::gateway::{Opts, fixture, send_mail, start, wait_for_cdrs, wait_for_mail};
use crate::harness::Setup;

/// Every form in which the round trip's numbers, addresses and names
/// could be written.
const PERSONAL: &[&str] = &[
    "33221100",
    "33 22 11 00",
    "70203040",
    "70 20 30 40",
    "boss@customer.test",
    "inbox@customer.test",
    "fax@acme.test",
    "Customer One",
    "Acme Telecom",
    "Acme Fax",
];

#[test]
fn a_fax_round_trip_at_info_logs_hashes_not_numbers_or_addresses() {
    let g = start(Opts { log: "level = \"info\"", ..Default::default() });
    send_mail(&g, &["33221100@fax.acme.test"], "Invoice 42", Some(&fixture("letter.pdf")));
    wait_for_mail(&g, 2, 120);
    assert_eq!(wait_for_cdrs(&g, 2).len(), 2);
    g.daemon.wait_for_log("mail, pages and finished jobs erased");
    let log = g.daemon.log();
    for value in PERSONAL {
        assert!(!log.contains(value), "{value} in the log:\n{log}");
    }
    assert!(!log.contains("personal_data"), "{log}");
    // The called number is followed by its hash: asked of the daemon...
    let called = g.setup.ok(&["log", "hash", "+4533221100"]).trim().to_owned();
    assert!(called.starts_with("n:") && called.len() == 10, "{called}");
    let answered = log.lines().find(|l| l.contains("answering a fax call")).expect("the answer is logged");
    assert!(answered.contains(&format!("to={called}")), "{called}: {answered}");
    let address = g.setup.ok(&["log", "hash", "boss@customer.test"]).trim().to_owned();
    assert!(address.starts_with("a:") && address != called, "{address}");
    assert_eq!(g.setup.ok(&["log", "hash", "--kind", "name", "Acme Telecom"]).trim().len(), 10);
    // A tenant's admin may not ask: the hash would let it test guesses.
    let refused = g.setup.fails(&["--as-tenant", "acme", "log", "hash", "+4533221100"]);
    assert!(refused.contains("only the operator"), "{refused}");
    // ... and of the store with the daemon stopped: the same.
    let crate::gateway::Gw { setup, daemon, .. } = g;
    assert!(daemon.stop().success());
    assert_eq!(setup.ok(&["log", "hash", "+4533221100"]).trim(), called);
}

#[test]
fn personal_data_in_the_log_is_said_at_warn_at_start() {
    let setup = Setup::new();
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        config.replace("level = \"debug,sled=info\"", "level = \"info\"\npersonal_data = true"),
    )
    .unwrap();
    let daemon = setup.start();
    daemon.wait_for_log("log.personal_data = true");
    let line = daemon.log().lines().find(|l| l.contains("log.personal_data = true")).unwrap().to_owned();
    assert!(line.contains(" WARN "), "{line}");
    // Off (the default): not a word of it.
    let plain = Setup::new();
    let d = plain.start();
    assert!(!d.log().contains("personal_data"), "{}", d.log());
}
