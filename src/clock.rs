//! The injected clock (defined in faxgate-retention, the lowest crate, so
//! that every crate shares it).

pub use faxgate_retention::clock::{Clock, FakeClock, SystemClock};
