//! A pause at a named point of a long operation, for the integration tests
//! to kill the daemon at a moment they can observe (a build with the
//! `test-clock` feature, which only `cargo test` makes; see Cargo.toml).
//! `FAXGATE_TEST_PAUSE=<point>` makes the daemon stop for good at that point,
//! after writing `test build: paused at <point>` to its log. In any other
//! build [`pause`] does nothing.

/// The retention sweep has destroyed a month's key and removed, and
/// flushed, the first few thousand of the month's CDRs and index entries.
pub const MONTH_ERASE_BEGUN: &str = "month-erase-begun";

/// At `point`: if this is a test build told to pause there, runs `before`
/// (to make what was done so far durable) and never returns.
#[cfg(feature = "test-clock")]
pub fn pause(point: &str, before: impl FnOnce()) {
    if std::env::var_os("FAXGATE_TEST_PAUSE").is_some_and(|p| p == point) {
        before();
        tracing::warn!("test build: paused at {point}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// At `point`: nothing, in a build without the `test-clock` feature.
#[cfg(not(feature = "test-clock"))]
#[inline(always)]
pub fn pause(_point: &str, _before: impl FnOnce()) {}
