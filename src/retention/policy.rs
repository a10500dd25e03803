//! How long each retention class keeps its data (`[retention]`).
//!
//! The defaults are the operator's privacy policy: CDRs one year from the
//! date of the communication (the Danish traffic-data retention order),
//! account data 30 days after the reseller terminates the account, fax
//! documents until delivered or finally failed (a grace period of at most 7
//! days may be set), the audit of admin changes one year. A CDR period under one year is refused unless
//! `allow_short_cdr_period` is set, and is then logged at every start.

use jiff::{Span, Timestamp, ToSpan, Unit};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The retention periods.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// CDRs are erased this long after the communication started.
    #[serde(default = "default_cdr", with = "span_text")]
    pub cdr: Span,
    /// Allow a CDR period under one year (the legal duty is one year).
    #[serde(default)]
    pub allow_short_cdr_period: bool,
    /// Account data is erased this long after the account's termination.
    #[serde(default = "default_account", with = "span_text")]
    pub account_after_termination: Span,
    /// Fax documents are erased this long after delivery or final failure (at most 7 days).
    #[serde(default = "default_document", with = "span_text")]
    pub document_grace: Span,
    /// How far apart deadlines may be gathered into one sweep (at most a
    /// day; default an hour). The sweeper wakes at the end of the window
    /// that holds the next deadline, so data is erased at most this long
    /// after its period, and a year of CDRs written every few seconds is
    /// swept once an hour rather than once per CDR.
    #[serde(default = "default_window", with = "span_text")]
    pub sweep_window: Span,
    /// A notification or report mail the relay refused, or that expired, is
    /// kept this long for the operator to see why (default 7 days, at most 30).
    #[serde(default = "default_outbox_failed", with = "span_text")]
    pub outbox_failed: Span,
    /// The markers that keep a report from being mailed twice (a keyed hash
    /// and a time, no personal data) are kept this long: longer than a job
    /// or a received call can wait for its mail (default 30 days, at least 7).
    #[serde(default = "default_report_markers", with = "span_text")]
    pub report_markers: Span,
    /// How far the wall clock may jump forward (since the last run, or
    /// between sweeps beyond the time that passed) before the erasure of
    /// CDRs and accounts is suspended until an operator confirms the time
    /// (default a day, at least a minute).
    #[serde(default = "default_max_clock_jump", with = "span_text")]
    pub max_clock_jump: Span,
    /// The audit of admin changes (who changed what, when) is kept this
    /// long after each entry was written (default a year).
    #[serde(default = "default_admin_audit", with = "span_text")]
    pub admin_audit: Span,
}

fn default_cdr() -> Span {
    1.year()
}

fn default_account() -> Span {
    30.days()
}

fn default_document() -> Span {
    Span::new()
}

fn default_window() -> Span {
    1.hour()
}

fn default_outbox_failed() -> Span {
    7.days()
}

fn default_report_markers() -> Span {
    30.days()
}

fn default_max_clock_jump() -> Span {
    1.day()
}

fn default_admin_audit() -> Span {
    1.year()
}

impl PartialEq for Policy {
    fn eq(&self, o: &Self) -> bool {
        self.cdr.fieldwise() == o.cdr.fieldwise()
            && self.allow_short_cdr_period == o.allow_short_cdr_period
            && self.account_after_termination.fieldwise() == o.account_after_termination.fieldwise()
            && self.document_grace.fieldwise() == o.document_grace.fieldwise()
            && self.sweep_window.fieldwise() == o.sweep_window.fieldwise()
            && self.outbox_failed.fieldwise() == o.outbox_failed.fieldwise()
            && self.report_markers.fieldwise() == o.report_markers.fieldwise()
            && self.max_clock_jump.fieldwise() == o.max_clock_jump.fieldwise()
            && self.admin_audit.fieldwise() == o.admin_audit.fieldwise()
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            cdr: default_cdr(),
            allow_short_cdr_period: false,
            account_after_termination: default_account(),
            document_grace: default_document(),
            sweep_window: default_window(),
            outbox_failed: default_outbox_failed(),
            report_markers: default_report_markers(),
            max_clock_jump: default_max_clock_jump(),
            admin_audit: default_admin_audit(),
        }
    }
}

/// `t + span`, calendar-aware (a year from 29 February is 28 February), in UTC.
pub fn after(t: Timestamp, span: Span) -> Timestamp {
    t.to_zoned(jiff::tz::TimeZone::UTC).checked_add(span).map(|z| z.timestamp()).unwrap_or(Timestamp::MAX)
}

fn days(span: Span) -> f64 {
    let anchor = jiff::civil::date(2000, 1, 1).to_zoned(jiff::tz::TimeZone::UTC).expect("valid date");
    span.total((Unit::Day, &anchor)).unwrap_or(f64::MAX)
}

impl Policy {
    /// The sweep window as a duration.
    pub fn window(&self) -> jiff::SignedDuration {
        after(Timestamp::UNIX_EPOCH, self.sweep_window).duration_since(Timestamp::UNIX_EPOCH)
    }

    /// The largest clock jump allowed, as a duration.
    pub fn max_jump(&self) -> jiff::SignedDuration {
        after(Timestamp::UNIX_EPOCH, self.max_clock_jump).duration_since(Timestamp::UNIX_EPOCH)
    }

    /// Checks the periods; returns warnings to log (a short CDR period that was allowed).
    pub fn check(&self) -> Result<Vec<String>, Error> {
        let mut warnings = Vec::new();
        if days(self.cdr) < 365.0 {
            if !self.allow_short_cdr_period {
                return Err(Error::Invalid(format!(
                    "retention.cdr = {:#} is shorter than the one-year legal duty; set allow_short_cdr_period = true to override",
                    self.cdr
                )));
            }
            warnings.push(format!("CDR retention period {:#} is shorter than one year (explicit override)", self.cdr));
        }
        for (key, span, limit, most) in [
            ("document_grace", self.document_grace, 7.0, "7 days"),
            ("outbox_failed", self.outbox_failed, 30.0, "30 days"),
            ("sweep_window", self.sweep_window, 1.0, "a day"),
        ] {
            if days(span) > limit {
                return Err(Error::Invalid(format!("retention.{key} = {span:#} is longer than {most}")));
            }
        }
        if days(self.max_clock_jump) < 1.0 / 1440.0 {
            return Err(Error::Invalid(format!(
                "retention.max_clock_jump = {:#} is shorter than a minute",
                self.max_clock_jump
            )));
        }
        if days(self.report_markers) < 7.0 {
            return Err(Error::Invalid(format!(
                "retention.report_markers = {:#} is shorter than 7 days: a report could be mailed twice",
                self.report_markers
            )));
        }
        if days(self.account_after_termination) < 0.0
            || days(self.cdr) < 0.0
            || days(self.document_grace) < 0.0
            || days(self.sweep_window) < 0.0
            || days(self.outbox_failed) < 0.0
            || days(self.admin_audit) < 0.0
        {
            return Err(Error::Invalid("retention periods must not be negative".into()));
        }
        Ok(warnings)
    }
}

mod span_text {
    use jiff::Span;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(s: &Span, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_str(&format_args!("{s:#}"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Span>().map_err(|e| {
            serde::de::Error::custom(format!(
                "{s:?} is not a period (write e.g. \"1 year\", \"30 days\", \"12h\"): {e}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let p = Policy::default();
        assert!(p.check().unwrap().is_empty());
        let t: Timestamp = "2024-02-29T12:00:00Z".parse().unwrap();
        assert_eq!(after(t, p.cdr).to_string(), "2025-02-28T12:00:00Z");
        let short: Policy = serde_json::from_str(r#"{"cdr": "6 months"}"#).unwrap();
        assert!(short.check().unwrap_err().to_string().contains("one-year legal duty"));
        let allowed: Policy = serde_json::from_str(r#"{"cdr": "6 months", "allow_short_cdr_period": true}"#).unwrap();
        assert_eq!(allowed.check().unwrap().len(), 1);
        let long: Policy = serde_json::from_str(r#"{"document_grace": "8 days"}"#).unwrap();
        assert!(long.check().is_err());
        assert!(serde_json::from_str::<Policy>(r#"{"cdr": "forever"}"#).is_err());
        assert_eq!(p.window(), jiff::SignedDuration::from_hours(1));
        let wide: Policy = serde_json::from_str(r#"{"sweep_window": "2 days"}"#).unwrap();
        assert!(wide.check().unwrap_err().to_string().contains("longer than a day"));
        let short: Policy = serde_json::from_str(r#"{"report_markers": "2 days"}"#).unwrap();
        assert!(short.check().unwrap_err().to_string().contains("mailed twice"));
        let kept: Policy = serde_json::from_str(r#"{"outbox_failed": "2 days"}"#).unwrap();
        assert!(kept.check().unwrap().is_empty());
        assert_eq!(after(t, kept.outbox_failed).to_string(), "2024-03-02T12:00:00Z");
    }
}
