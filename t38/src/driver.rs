//! The tokio real-time driver.
