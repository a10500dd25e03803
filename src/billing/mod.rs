//! Billing from CDRs: a tenant's rating rules, and the rated export the
//! operator bills the reseller from (`wholesale`) and the reseller bills
//! its customers from (`retail`).
//!
//! A rating table says which transmissions are billable, what a unit is
//! (a page, a started minute, a second) with a minimum and an increment,
//! and a price per unit for each destination class; a class is derived from
//! the called number with the numbering plan faxgate already uses:
//! `national`, `mobile` (where the plan tells mobile numbers from fixed
//! ones: Denmark's does not, so its numbers are all `national`),
//! `toll_free`, `premium`, `international` (or
//! `international-<zone>` for the zones the table names), and `incoming`
//! for faxes received. Amounts are rounded per row to the currency's
//! decimals (half away from zero), and totals are sums of rounded rows, so
//! an export of the same CDRs is the same to the last digit; rows are in
//! the order of the CDRs (start, then id).
//!
//! A subject whose processing is restricted (GDPR Art. 18) stays in
//! billing, which is a legal basis of its own: its rows are kept, marked
//! `restricted`, with the number withheld; the summary counts them.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::cdr::{Cdr, Direction};
use crate::types::{AccountId, Country, E164, TenantId};

/// What a unit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A page sent (or received).
    Page,
    /// A started minute of the call (from answer to end).
    Minute,
    /// A second of the call.
    Second,
}

/// Which outgoing transmissions are billable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Billable {
    /// Answered, and at least one page sent (the default).
    #[default]
    Pages,
    /// Answered, pages or not.
    Answered,
    /// Every attempt, answered or not.
    Attempts,
}

/// How incoming faxes are billed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Incoming {
    /// Not billed (the default).
    #[default]
    Free,
    /// Per page received, at the `incoming` price.
    Page,
}

/// One rating table: wholesale (operator to reseller) or retail (reseller
/// to its customers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// Which outgoing transmissions are billed.
    #[serde(default)]
    pub billable: Billable,
    /// What a unit is.
    pub unit: Unit,
    /// Units billed at least, for a billable transmission (default 1).
    #[serde(default = "one")]
    pub minimum: u32,
    /// Units are billed in steps of this many (default 1): with `second`,
    /// 60 and 6 are 60/6 billing.
    #[serde(default = "one")]
    pub increment: u32,
    /// Incoming faxes: free, or per page.
    #[serde(default)]
    pub incoming: Incoming,
    /// Show only this many last digits of the number (customer
    /// statements); unset: the full number.
    #[serde(default)]
    pub show_digits: Option<u8>,
    /// International zones: a name and its countries (`eu = ["DE", "SE"]`);
    /// a number in one is in class `international-<name>`.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Vec<String>>)]
    pub zones: BTreeMap<String, Vec<Country>>,
    /// Price per unit by class (`national`, `mobile`, `toll_free`,
    /// `premium`, `international`, `international-<zone>`, `incoming`).
    #[serde(deserialize_with = "prices")]
    #[schema(value_type = BTreeMap<String, String>)]
    pub price: BTreeMap<String, Decimal>,
}

impl Table {
    /// Whether the table bills `c` at all: an outgoing fax by `billable`,
    /// a received one only when priced per page and with pages.
    pub fn bills(&self, c: &Cdr) -> bool {
        match c.direction {
            Direction::MailToFax => match self.billable {
                Billable::Pages => c.answer.is_some() && c.pages > 0,
                Billable::Answered => c.answer.is_some(),
                Billable::Attempts => true,
            },
            Direction::FaxToMail => self.incoming == Incoming::Page && c.pages > 0,
        }
    }
}

fn one() -> u32 {
    1
}

/// Prices as written: `0.25` or `"0.25"`, read exactly as written (a TOML
/// float by its shortest decimal form, never as binary).
fn prices<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Decimal>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum P {
        Int(i64),
        Float(f64),
        Text(String),
    }
    let raw = BTreeMap::<String, P>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            let text = match v {
                P::Int(i) => i.to_string(),
                P::Float(f) => f.to_string(),
                P::Text(t) => t,
            };
            let d: Decimal = text
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("price.{k}: {text:?} is not a decimal number")))?;
            Ok((k, d))
        })
        .collect()
}

/// A tenant's rating rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rating {
    /// The currency of every price (ISO 4217: `DKK`, `EUR`).
    pub currency: String,
    /// Decimals an amount is rounded to (default 2).
    #[serde(default = "two")]
    pub decimals: u32,
    /// Operator to reseller.
    #[serde(default)]
    pub wholesale: Option<Table>,
    /// Reseller to its customers.
    #[serde(default)]
    pub retail: Option<Table>,
}

fn two() -> u32 {
    2
}

/// The classes every table prices.
pub const BASE_CLASSES: &[&str] = &["national", "mobile", "toll_free", "premium", "international"];

impl Rating {
    /// Reads rules from TOML; every problem named.
    pub fn from_toml(text: &str) -> Result<Rating, Error> {
        let r: Rating = toml::from_str(text).map_err(|e| Error::Invalid(format!("rating rules: {e}")))?;
        r.check()?;
        Ok(r)
    }

    /// What is wrong with the rules, if anything.
    pub fn check(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Invalid(format!("rating rules: {m}")));
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return bad(format!("currency {:?} is not an ISO 4217 code (three capitals)", self.currency));
        }
        if self.decimals > 6 {
            return bad(format!("decimals must be 0 to 6, not {}", self.decimals));
        }
        if self.wholesale.is_none() && self.retail.is_none() {
            return bad("neither a wholesale nor a retail table".into());
        }
        for (level, t) in [("wholesale", &self.wholesale), ("retail", &self.retail)] {
            let Some(t) = t else { continue };
            if t.increment == 0 {
                return bad(format!("{level}.increment must be at least 1"));
            }
            for class in BASE_CLASSES {
                if !t.price.contains_key(*class) {
                    return bad(format!("{level}.price.{class} is missing"));
                }
            }
            if t.incoming == Incoming::Page && !t.price.contains_key("incoming") {
                return bad(format!("{level}.price.incoming is missing (incoming = \"page\")"));
            }
            for (class, p) in &t.price {
                let known = BASE_CLASSES.contains(&class.as_str())
                    || class == "incoming"
                    || class.strip_prefix("international-").is_some_and(|z| t.zones.contains_key(z));
                if !known {
                    return bad(format!("{level}.price.{class}: no such class (zones: {:?})", t.zones.keys()));
                }
                if p.is_sign_negative() {
                    return bad(format!("{level}.price.{class} is negative"));
                }
            }
            if let Some(d) = t.show_digits
                && !(2..=8).contains(&d)
            {
                return bad(format!("{level}.show_digits must be 2 to 8, not {d}"));
            }
        }
        Ok(())
    }

    /// The table of `level`.
    pub fn table(&self, level: Level) -> Option<&Table> {
        match level {
            Level::Wholesale => self.wholesale.as_ref(),
            Level::Retail => self.retail.as_ref(),
        }
    }
}

/// Which bill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The operator's bill to the reseller.
    Wholesale,
    /// The reseller's bills to its customers.
    Retail,
}

impl Level {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Wholesale => "wholesale",
            Level::Retail => "retail",
        }
    }
}

/// The destination class of `called`, from `home` (the tenant's country).
pub fn class_of(called: &E164, home: Country, table: &Table) -> String {
    use phonenumber::Type;
    let kind = phonenumber::parse(None, called.as_str())
        .map(|n| n.number_type(&phonenumber::metadata::DATABASE))
        .unwrap_or(Type::Unknown);
    match kind {
        Type::PremiumRate | Type::SharedCost => return "premium".into(),
        Type::TollFree => return "toll_free".into(),
        _ => {}
    }
    let region = called.region();
    if region == Some(home) {
        return if kind == Type::Mobile { "mobile".into() } else { "national".into() };
    }
    if let Some(r) = region
        && let Some((zone, _)) = table.zones.iter().find(|(_, cs)| cs.contains(&r))
        && table.price.contains_key(&format!("international-{zone}"))
    {
        return format!("international-{zone}");
    }
    "international".into()
}

/// Billed units of a quantity: at least `minimum`, in steps of `increment`.
pub fn units(quantity: u64, minimum: u32, increment: u32) -> u64 {
    let q = quantity.max(minimum as u64);
    let inc = increment.max(1) as u64;
    q.div_ceil(inc) * inc
}

/// A number with only its last `digits` shown: `+45******1100`.
pub fn masked(n: &str, digits: u8) -> String {
    let d = digits as usize;
    let body: Vec<char> = n.chars().collect();
    let keep_head = if n.starts_with('+') { 3.min(body.len()) } else { 0 };
    body.iter().enumerate().map(|(i, c)| if i < keep_head || i + d >= body.len() { *c } else { '*' }).collect()
}

/// One billable transmission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Row {
    /// The CDR.
    pub cdr: String,
    /// The account billed.
    #[schema(value_type = Option<String>)]
    pub account: Option<AccountId>,
    /// The account's reference (a customer number in the reseller's books).
    pub reference: Option<String>,
    /// The other party's number: full, masked, or withheld (restricted).
    pub number: Option<String>,
    /// `mail-to-fax` or `fax-to-mail`.
    #[schema(value_type = String)]
    pub direction: Direction,
    /// The destination class.
    pub class: String,
    /// The signalling peer (the trunk) of the call.
    pub trunk: Option<String>,
    /// When the call started.
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// Seconds from answer to end.
    pub duration_s: u64,
    /// Pages sent or received.
    pub pages: u32,
    /// Units billed.
    pub units: u64,
    /// Price per unit.
    #[schema(value_type = String)]
    pub unit_price: Decimal,
    /// Units × price, rounded.
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// The subject's processing is restricted: personal fields withheld.
    pub restricted: bool,
    /// For an adjustment: the closed month (`YYYY-MM`) the transmission
    /// belongs to, its CDR written after that month was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjustment_for: Option<String>,
}

/// Rates one CDR by `table`: its row, if billable. `restricted` says
/// whether its number or addresses belong to a restricted subject.
pub fn rate(c: &Cdr, table: &Table, home: Country, decimals: u32, restricted: bool) -> Option<Row> {
    let duration_s = c.answer.map_or(0, |a| c.end.duration_since(a).as_secs().max(0) as u64);
    if !table.bills(c) {
        return None;
    }
    let (number, class, quantity) = match c.direction {
        Direction::MailToFax => {
            let called = c.called.as_ref()?;
            let q = match table.unit {
                Unit::Page => c.pages as u64,
                Unit::Minute => duration_s.div_ceil(60),
                Unit::Second => duration_s,
            };
            (called, class_of(called, home, table), q)
        }
        Direction::FaxToMail => (c.called.as_ref()?, "incoming".to_owned(), c.pages as u64),
    };
    let unit_price = *table.price.get(&class).or_else(|| table.price.get("international"))?;
    let units = units(quantity, table.minimum, table.increment);
    let mut amount =
        (Decimal::from(units) * unit_price).round_dp_with_strategy(decimals, RoundingStrategy::MidpointAwayFromZero);
    amount.rescale(decimals);
    let shown = match (restricted, table.show_digits) {
        (true, _) => None,
        (false, Some(d)) => Some(masked(number.as_str(), d)),
        (false, None) => Some(number.to_string()),
    };
    Some(Row {
        cdr: c.id.clone(),
        account: c.account,
        reference: None,
        number: shown,
        direction: c.direction,
        class,
        trunk: c.sip_signalling.map(|s| s.to_string()),
        start: c.start,
        duration_s,
        pages: c.pages,
        units,
        unit_price,
        amount,
        restricted,
        adjustment_for: None,
    })
}

/// What an account (or the whole export) comes to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Totals {
    /// Billable transmissions.
    pub rows: u64,
    /// Units.
    pub units: u64,
    /// Amount.
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// By class: transmissions, units, amount.
    pub by_class: BTreeMap<String, ClassTotals>,
}

/// One class's part of [`Totals`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClassTotals {
    /// Billable transmissions.
    pub rows: u64,
    /// Units.
    pub units: u64,
    /// Amount.
    #[schema(value_type = String)]
    pub amount: Decimal,
}

impl Totals {
    fn add(&mut self, r: &Row) {
        self.rows += 1;
        self.units += r.units;
        self.amount += r.amount;
        let c = self.by_class.entry(r.class.clone()).or_default();
        c.rows += 1;
        c.units += r.units;
        c.amount += r.amount;
    }
}

/// The export of one tenant's month at one level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Export {
    /// The tenant.
    #[schema(value_type = String)]
    pub tenant: TenantId,
    /// `YYYY-MM`.
    pub month: String,
    /// Wholesale or retail.
    pub level: Level,
    /// The currency.
    pub currency: String,
    /// CDRs of the month looked at.
    pub cdrs: u64,
    /// Rows whose number is withheld (restricted subjects).
    pub withheld: u64,
    /// Rows whose number is masked (`show_digits`).
    pub masked: u64,
    /// Rows that adjust closed months (late CDRs).
    #[serde(default)]
    pub adjustments: u64,
    /// When the month was closed (its export no longer changes); none:
    /// open, and the adjustments are those so far.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<Timestamp>,
    /// The billable transmissions, in the CDRs' order.
    pub rows: Vec<Row>,
    /// Per account (`-` for a transmission without one).
    pub accounts: BTreeMap<String, Totals>,
    /// The whole export.
    pub total: Totals,
}

/// Rates a month's CDRs (any order; sorted here) of `tenant` by `rating` at
/// `level`, then `late`: CDRs of closed months written after they were
/// closed, as adjustment rows. `restricted` says whether a CDR concerns a
/// restricted subject; `reference` gives an account's reference.
#[allow(clippy::too_many_arguments)]
pub fn export(
    tenant: &TenantId,
    month: &str,
    home: Country,
    rating: &Rating,
    level: Level,
    mut cdrs: Vec<Cdr>,
    mut late: Vec<Cdr>,
    restricted: &dyn Fn(&Cdr) -> bool,
    reference: &dyn Fn(&AccountId) -> Option<String>,
) -> Result<Export, Error> {
    let table = rating
        .table(level)
        .ok_or_else(|| Error::NotFound(format!("tenant {tenant} has no {} rating table", level.as_str())))?;
    cdrs.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
    late.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
    let mut e = Export {
        tenant: tenant.clone(),
        month: month.to_owned(),
        level,
        currency: rating.currency.clone(),
        cdrs: cdrs.len() as u64,
        withheld: 0,
        masked: 0,
        adjustments: 0,
        closed_at: None,
        rows: Vec::new(),
        accounts: BTreeMap::new(),
        total: Totals::default(),
    };
    let adjusting = late.into_iter().map(|c| {
        let (y, m) = crate::store::layout::cdr::month_of(c.start);
        (c, Some(format!("{y:04}-{m:02}")))
    });
    for (c, adjustment_for) in cdrs.into_iter().map(|c| (c, None)).chain(adjusting) {
        let Some(mut row) = rate(&c, table, home, rating.decimals, restricted(&c)) else { continue };
        row.reference = row.account.as_ref().and_then(reference);
        if adjustment_for.is_some() {
            e.adjustments += 1;
        }
        row.adjustment_for = adjustment_for;
        if row.restricted {
            e.withheld += 1;
        } else if table.show_digits.is_some() {
            e.masked += 1;
        }
        let key = row.account.map(|a| a.to_text()).unwrap_or_else(|| "-".into());
        e.accounts.entry(key).or_default().add(&row);
        e.total.add(&row);
        e.rows.push(row);
    }
    Ok(e)
}

/// The columns of the CSV export, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "cdr",
    "account",
    "reference",
    "number",
    "direction",
    "class",
    "trunk",
    "start",
    "duration_s",
    "pages",
    "units",
    "unit_price",
    "amount",
    "currency",
    "restricted",
    "adjustment_for",
];

impl Export {
    /// The rows as CSV (RFC 4180, a header line; the summary is
    /// [`Export::summary`]).
    pub fn to_csv(&self) -> Result<String, Error> {
        let err = |e: csv::Error| Error::Invalid(format!("CSV: {e}"));
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(CSV_COLUMNS).map_err(err)?;
        for r in &self.rows {
            let direction = serde_json::to_value(r.direction).ok().and_then(|v| v.as_str().map(str::to_owned));
            w.write_record([
                r.cdr.as_str(),
                &r.account.map(|a| a.to_text()).unwrap_or_default(),
                r.reference.as_deref().unwrap_or(""),
                r.number.as_deref().unwrap_or(""),
                direction.as_deref().unwrap_or(""),
                &r.class,
                r.trunk.as_deref().unwrap_or(""),
                &r.start.to_string(),
                &r.duration_s.to_string(),
                &r.pages.to_string(),
                &r.units.to_string(),
                &r.unit_price.to_string(),
                &r.amount.to_string(),
                &self.currency,
                if r.restricted { "true" } else { "false" },
                r.adjustment_for.as_deref().unwrap_or(""),
            ])
            .map_err(err)?;
        }
        let bytes = w.into_inner().map_err(|e| Error::Invalid(format!("CSV: {e}")))?;
        String::from_utf8(bytes).map_err(|e| Error::Invalid(format!("CSV: {e}")))
    }

    /// The summary: each account's and the whole export's counts, units
    /// and amounts by class, and how many numbers were withheld or masked
    /// (JSON; the same as the JSONL export's `account` and `summary` lines).
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "tenant": self.tenant,
            "month": self.month,
            "level": self.level,
            "currency": self.currency,
            "cdrs": self.cdrs,
            "withheld": self.withheld,
            "masked": self.masked,
            "adjustments": self.adjustments,
            "closed_at": self.closed_at,
            "accounts": self.accounts,
            "total": self.total,
        })
    }

    /// The summary in one line, for a person.
    pub fn summary_line(&self) -> String {
        format!(
            "{} {} {}{}: {} billable of {} CDRs, {} units, {} {}; {} account(s); numbers withheld (restricted): {}, masked: {}; adjustments of closed months: {}",
            self.tenant,
            self.month,
            self.level.as_str(),
            if self.closed_at.is_some() { " (closed)" } else { "" },
            self.total.rows,
            self.cdrs,
            self.total.units,
            self.total.amount,
            self.currency,
            self.accounts.len(),
            self.withheld,
            self.masked,
            self.adjustments
        )
    }

    /// One JSON line per row (`"type": "row"`), then one per account
    /// (`"type": "account"`) and the summary (`"type": "summary"`).
    pub fn to_jsonl(&self) -> Result<String, Error> {
        let mut out = String::new();
        let line = |v: serde_json::Value| serde_json::to_string(&v).map_err(|e| Error::Invalid(e.to_string()));
        for r in &self.rows {
            let mut v = serde_json::to_value(r).map_err(|e| Error::Invalid(e.to_string()))?;
            v["type"] = "row".into();
            v["currency"] = self.currency.clone().into();
            out.push_str(&line(v)?);
            out.push('\n');
        }
        for (account, t) in &self.accounts {
            let mut v = serde_json::to_value(t).map_err(|e| Error::Invalid(e.to_string()))?;
            v["type"] = "account".into();
            v["account"] = account.clone().into();
            out.push_str(&line(v)?);
            out.push('\n');
        }
        let mut summary = self.summary();
        if let Some(o) = summary.as_object_mut() {
            o.remove("accounts");
            o.insert("type".into(), "summary".into());
        }
        out.push_str(&line(summary)?);
        out.push('\n');
        Ok(out)
    }
}

/// A closed billing month: its export no longer changes. A CDR of the month
/// written after it was closed (ids are time-ordered: at or after
/// `watermark`) is billed as an adjustment in the export of the next month
/// closed (`since`..`watermark` of that one), and shown as a provisional
/// adjustment in any open month's export until then.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Closure {
    /// The tenant.
    #[schema(value_type = String)]
    pub tenant: TenantId,
    /// Wholesale or retail.
    pub level: Level,
    /// `YYYY-MM`.
    pub month: String,
    /// When it was closed.
    #[schema(value_type = String, format = DateTime)]
    pub closed_at: Timestamp,
    /// CDRs with ids before this were written before the closing.
    pub watermark: String,
    /// The watermark of the closure before (none for the first): late CDRs
    /// of months closed before, written from then to `watermark`, are this
    /// export's adjustments.
    pub since: Option<String>,
    /// Rows of the export when it was closed.
    pub rows: u64,
    /// Its total.
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// Its currency.
    pub currency: String,
}

/// What `billing check` found: the month's CDRs counted apart, the
/// export's figures, and every difference (none: they reconcile).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Check {
    /// The tenant.
    #[schema(value_type = String)]
    pub tenant: TenantId,
    /// `YYYY-MM`.
    pub month: String,
    /// Wholesale or retail.
    pub level: Level,
    /// CDRs of the month.
    pub cdrs: u64,
    /// Of them billable by the table's rules.
    pub billable: u64,
    /// Their pages.
    pub billable_pages: u64,
    /// Rows of the export for the month's own CDRs.
    pub rows: u64,
    /// Adjustment rows (late CDRs of closed months).
    pub adjustments: u64,
    /// CDRs of this (closed) month written after it was closed.
    pub late: u64,
    /// Their pages.
    pub row_pages: u64,
    /// The export's total.
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// The currency.
    pub currency: String,
    /// Numbers withheld (restricted subjects).
    pub withheld: u64,
    /// Every difference found, in words.
    pub differences: Vec<String>,
}

/// A month `YYYY-MM` as the instants it starts and ends (UTC).
pub fn month_bounds(month: &str) -> Result<(Timestamp, Timestamp), Error> {
    let bad = || Error::Invalid(format!("month {month:?}: write it as YYYY-MM"));
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    let (y, m): (i16, i8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let first = jiff::civil::Date::new(y, m, 1).map_err(|_| bad())?;
    let next = first.checked_add(jiff::Span::new().months(1)).map_err(|_| bad())?;
    let at = |d: jiff::civil::Date| d.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).map_err(|_| bad());
    Ok((at(first)?, at(next)?))
}

#[cfg(test)]
mod tests;
