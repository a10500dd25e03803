//! faxgate: the core of the Fax-to-Mail / Mail-to-Fax gateway.
#![forbid(unsafe_code)]

pub mod document;
