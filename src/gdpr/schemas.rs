//! The schema documents of every export, for the data protection officer,
//! the reseller's billing system and the authority that receives a
//! disclosure: `faxgate schema NAME` prints one, and the exports write them
//! beside their files.
//!
//! - `subject-export`: `subject.json` of `gdpr export` (`schema.json` beside
//!   this file, written by hand; the others reuse its definitions);
//! - `cdr`: one CDR, as each line of `cdr export --format jsonl` holds it;
//! - `disclosure-jsonl`: a line of `disclosure export --format jsonl`: the
//!   first names the request, each other one is a CDR;
//! - `cdr-csv`: a row of the CDR CSV (`cdr export --format csv`, the
//!   disclosure CSV, `cdrs.csv` of a subject export), as an object from
//!   column name to cell text; `x-csv-columns` gives the columns in order;
//! - `directory-csv`: a row of `directory.csv` of a subject export, alike.
//!
//! The CSV schemas are JSON Schemas of a row read as strings: a CSV reader
//! turns each row into an object of header to cell, which the schema then
//! checks (the tests do just that).

use serde_json::{Value, json};

use super::SCHEMA;
use crate::cdr::CSV_COLUMNS;

/// The names `faxgate schema` knows.
pub const NAMES: &[&str] =
    &["subject-export", "cdr", "disclosure-jsonl", "cdr-csv", "directory-csv", "billing-csv", "billing-jsonl"];

/// The columns of `directory.csv`, in order.
pub const DIRECTORY_COLUMNS: &[&str] = &["kind", "tenant", "account", "name_or_number", "email_or_pattern", "detail"];

const TIME: &str = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z";
const E164: &str = r"\+[1-9][0-9]{2,14}";
const EMAIL: &str = r"[^@\s]+@[a-z0-9.-]+";
const ACCOUNT: &str = "acc-[0-9a-f]{32}";
const TENANT: &str = "[a-z][a-z0-9-]{0,31}";

fn defs() -> Value {
    let subject: Value = serde_json::from_str(SCHEMA).expect("schema.json is JSON");
    subject["$defs"].clone()
}

fn head(name: &str, title: &str, description: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
    m.insert("$id".into(), json!(format!("https://faxgate.invalid/schema/{name}.json")));
    m.insert("title".into(), json!(title));
    m.insert("description".into(), json!(description));
    m
}

fn cell(pattern: &str, optional: bool, description: &str) -> Value {
    let p = if optional { format!("^({pattern})?$") } else { format!("^{pattern}$") };
    json!({ "type": "string", "pattern": p, "description": description })
}

fn csv_row(name: &str, title: &str, description: &str, columns: &[&str], cells: Value) -> Value {
    let mut m = head(name, title, description);
    m.insert("type".into(), json!("object"));
    m.insert("x-csv-columns".into(), json!(columns));
    m.insert("required".into(), json!(columns));
    m.insert("additionalProperties".into(), json!(false));
    m.insert("properties".into(), cells);
    Value::Object(m)
}

/// The schema called `name`, if there is one.
pub fn schema(name: &str) -> Option<Value> {
    Some(match name {
        "subject-export" => serde_json::from_str(SCHEMA).expect("schema.json is JSON"),
        "cdr" => {
            let mut m = head(
                "cdr",
                "faxgate: one call detail record",
                "A line of `faxgate cdr export --format jsonl`. Times are RFC 3339 in UTC.",
            );
            m.insert("$ref".into(), json!("#/$defs/cdr"));
            m.insert("$defs".into(), defs());
            Value::Object(m)
        }
        "billing-jsonl" => {
            let mut m = head(
                "billing-jsonl",
                "faxgate: a line of a billing export (JSONL)",
                "`faxgate billing export --format jsonl` writes one JSON object a line: a `row` per billable \
                 transmission (as the CSV's columns), then an `account` line per account (its totals by \
                 class), then one `summary`. Amounts and prices are decimal strings.",
            );
            let money = json!({ "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$" });
            let totals = json!({
                "rows": { "type": "integer", "minimum": 0 },
                "units": { "type": "integer", "minimum": 0 },
                "amount": money,
                "by_class": { "type": "object", "additionalProperties": {
                    "type": "object", "required": ["rows", "units", "amount"], "additionalProperties": false,
                    "properties": { "rows": { "type": "integer" }, "units": { "type": "integer" }, "amount": money }
                } }
            });
            let mut account = totals.as_object().cloned().unwrap_or_default();
            account.insert("type".into(), json!({ "const": "account" }));
            account.insert("account".into(), json!({ "type": "string" }));
            m.insert(
                "oneOf".into(),
                json!([
                    {
                        "type": "object",
                        "description": "A billable transmission.",
                        "required": ["type", "cdr", "account", "reference", "number", "direction", "class", "trunk",
                            "start", "duration_s", "pages", "units", "unit_price", "amount", "currency", "restricted"],
                        "additionalProperties": false,
                        "properties": {
                            "type": { "const": "row" },
                            "cdr": { "type": "string" },
                            "account": { "oneOf": [{ "$ref": "#/$defs/account_id" }, { "type": "null" }] },
                            "reference": { "type": ["string", "null"] },
                            "number": { "type": ["string", "null"], "pattern": "^\\+[0-9*]{3,15}$" },
                            "direction": { "enum": ["mail-to-fax", "fax-to-mail"] },
                            "class": { "type": "string" },
                            "trunk": { "type": ["string", "null"] },
                            "start": { "$ref": "#/$defs/time" },
                            "duration_s": { "type": "integer", "minimum": 0 },
                            "pages": { "type": "integer", "minimum": 0 },
                            "units": { "type": "integer", "minimum": 0 },
                            "unit_price": money,
                            "amount": money,
                            "currency": { "type": "string", "pattern": "^[A-Z]{3}$" },
                            "restricted": { "type": "boolean" },
                            "adjustment_for": { "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$" }
                        }
                    },
                    {
                        "type": "object",
                        "description": "An account's totals.",
                        "required": ["type", "account", "rows", "units", "amount", "by_class"],
                        "additionalProperties": false,
                        "properties": account
                    },
                    {
                        "type": "object",
                        "description": "The export's summary.",
                        "required": ["type", "tenant", "month", "level", "currency", "cdrs", "withheld", "masked",
                            "adjustments", "closed_at", "total"],
                        "additionalProperties": false,
                        "properties": {
                            "type": { "const": "summary" },
                            "tenant": { "$ref": "#/$defs/tenant" },
                            "month": { "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$" },
                            "level": { "enum": ["wholesale", "retail"] },
                            "currency": { "type": "string", "pattern": "^[A-Z]{3}$" },
                            "cdrs": { "type": "integer", "minimum": 0 },
                            "withheld": { "type": "integer", "minimum": 0 },
                            "masked": { "type": "integer", "minimum": 0 },
                            "adjustments": { "type": "integer", "minimum": 0 },
                            "closed_at": { "oneOf": [{ "$ref": "#/$defs/time" }, { "type": "null" }] },
                            "total": { "type": "object", "required": ["rows", "units", "amount", "by_class"],
                                "additionalProperties": false, "properties": totals }
                        }
                    }
                ]),
            );
            m.insert("$defs".into(), defs());
            Value::Object(m)
        }
        "disclosure-jsonl" => {
            let mut m = head(
                "disclosure-jsonl",
                "faxgate: a line of a lawful disclosure",
                "`faxgate disclosure export --format jsonl` writes one JSON object a line: the first names \
                 the request (case, authority, number, period, number of records), each further line is one \
                 retained CDR of that number in that period. Times are RFC 3339 in UTC.",
            );
            m.insert(
                "oneOf".into(),
                json!([
                    {
                        "type": "object",
                        "description": "The first line: the request.",
                        "required": ["case", "authority", "number", "since", "until", "generated_at", "records"],
                        "additionalProperties": false,
                        "properties": {
                            "case": { "type": "string", "minLength": 1 },
                            "authority": { "type": "string", "minLength": 1 },
                            "number": { "$ref": "#/$defs/e164" },
                            "since": { "$ref": "#/$defs/time" },
                            "until": { "$ref": "#/$defs/time" },
                            "generated_at": { "$ref": "#/$defs/time" },
                            "records": { "type": "integer", "minimum": 0 }
                        }
                    },
                    { "$ref": "#/$defs/cdr" }
                ]),
            );
            m.insert("$defs".into(), defs());
            Value::Object(m)
        }
        "cdr-csv" => {
            let mut cells = serde_json::Map::new();
            for col in CSV_COLUMNS {
                let c = match *col {
                    "id" => cell("[0-9A-Za-z-]+", false, "The CDR's id (time-ordered)."),
                    "correlation_id" => {
                        cell(".+", false, "Follows the transmission through mail, job, call and report.")
                    }
                    "direction" => cell("mail-to-fax|fax-to-mail", false, "Which way the fax went."),
                    "tenant" => cell(TENANT, false, "The reseller."),
                    "account" => cell(ACCOUNT, true, "The customer account, when the transmission was matched to one."),
                    "calling" => cell(E164, true, "The calling fax number (E.164)."),
                    "called" => cell(E164, true, "The called fax number (E.164)."),
                    "emails" => cell(&format!("{EMAIL}( {EMAIL})*"), true, "Mail addresses involved, space-separated."),
                    "smtp_client" => cell("[0-9A-Fa-f:.]+", true, "The SMTP client's IP address."),
                    "sip_signalling" => cell(r"\S+:[0-9]+", true, "The SIP signalling peer, address:port."),
                    "sip_media" => cell(r"\S+:[0-9]+", true, "The media peer, address:port."),
                    "start" => cell(TIME, false, "Start of the attempt (UTC)."),
                    "answer" => cell(TIME, true, "When the call was answered (UTC)."),
                    "end" => cell(TIME, false, "End of the attempt (UTC)."),
                    "t30_code" => cell("-?[0-9]+", true, "The T.30 completion code (0: success)."),
                    "t30_text" => cell(".*", true, "The T.30 completion text."),
                    "sip_status" => cell("[1-6][0-9]{2}", true, "The final SIP status."),
                    "pages" => cell("[0-9]+", false, "Pages transferred."),
                    "pages_total" => cell(
                        "[0-9]+",
                        true,
                        "Pages in the document sent, or in the fax received once it completed; empty when not known (a received fax cut short).",
                    ),
                    "transport" => {
                        cell("t38|g711", true, "T.38 or G.711 audio; empty when no fax phase happened (no DCS agreed).")
                    }
                    "bit_rate" => cell("[0-9]+", true, "The fax bit rate; empty when no fax phase happened."),
                    "ecm" => cell(
                        "true|false",
                        true,
                        "Whether error correction (ECM) was used; empty when no fax phase happened.",
                    ),
                    "resolution" => cell(
                        "[0-9]+x[0-9]+",
                        true,
                        "Resolution of the pages in dots per inch, horizontal x vertical: 204x98, 204x196, 204x391.",
                    ),
                    "remote_station" => cell(".*", true, "The far end's station id (TSI/CSI)."),
                    "attempt" => cell("[1-9][0-9]*", false, "Attempt number, from 1."),
                    "timeline" => cell(r"\[.*\]", false, "Per-page timeline as a JSON array."),
                    "duration_s" => cell(r"[0-9]+(\.[0-9]+)?", false, "Seconds from answer (or start) to end."),
                    "result" => cell(".+", false, "ok, the T.30 error text, `SIP <status>`, or failed."),
                    other => unreachable!("CSV column {other} without a schema"),
                };
                cells.insert((*col).into(), c);
            }
            csv_row(
                "cdr-csv",
                "faxgate: a row of the CDR CSV",
                "RFC 4180 CSV with a header line, one CDR a row, as `faxgate cdr export --format csv`, \
                 `faxgate disclosure export --format csv` and cdrs.csv of `faxgate gdpr export` write it. \
                 Each cell is text; an empty cell is a value the CDR does not have.",
                CSV_COLUMNS,
                Value::Object(cells),
            )
        }
        "directory-csv" => csv_row(
            "directory-csv",
            "faxgate: a row of directory.csv of a subject export",
            "One row per account, number, route, sender entry and webhook notice address concerning the subject.",
            DIRECTORY_COLUMNS,
            json!({
                "kind": cell("account|number|route|sender|webhook", false, "What the row is."),
                "tenant": cell(TENANT, false, "The reseller."),
                "account": cell(ACCOUNT, true, "The customer account (empty for a tenant's own webhook)."),
                "name_or_number": cell(".*", true, "The account's name, the fax number, or a sender's caller number."),
                "email_or_pattern": cell(".*", true, "The route's mail address, the sender's address or @domain, or where a webhook's notices go."),
                "detail": cell(".*", true, "When the account was created or terminated; the route's format; the sender's authentication; the webhook."),
            }),
        ),
        "billing-csv" => csv_row(
            "billing-csv",
            "faxgate: a row of a billing export (CSV)",
            "One row per billable transmission of a tenant's month, rated by its wholesale or retail table; \
             after the rows, lines starting with # sum up each account and the whole export (and how many \
             numbers were withheld for restricted subjects, or masked).",
            crate::billing::CSV_COLUMNS,
            json!({
                "cdr": cell("cdr-[0-9a-f]{32}", false, "The CDR the row rates."),
                "account": cell(ACCOUNT, true, "The account billed."),
                "reference": cell(".*", true, "The account's reference in the reseller's books."),
                "number": cell(r"\+[0-9*]{3,15}", true, "The other party's number: full, masked to its last digits, or empty when withheld (restricted)."),
                "direction": cell("mail-to-fax|fax-to-mail", false, "Which way the fax went."),
                "class": cell("national|mobile|toll_free|premium|international(-[a-z0-9_-]+)?|incoming", false, "The destination class."),
                "trunk": cell(".*", true, "The SIP signalling peer of the call."),
                "start": cell(TIME, false, "When the call started (UTC)."),
                "duration_s": cell("[0-9]+", false, "Seconds from answer to end."),
                "pages": cell("[0-9]+", false, "Pages sent or received."),
                "units": cell("[0-9]+", false, "Units billed (after the minimum and the increment)."),
                "unit_price": cell(r"[0-9]+(\.[0-9]+)?", false, "Price per unit."),
                "amount": cell(r"[0-9]+(\.[0-9]+)?", false, "Units times price, rounded to the currency's decimals, half away from zero."),
                "currency": cell("[A-Z]{3}", false, "ISO 4217."),
                "restricted": cell("true|false", false, "The subject's processing is restricted: personal fields withheld."),
                "adjustment_for": cell("[0-9]{4}-[0-9]{2}", true, "For an adjustment: the closed month the transmission belongs to (its CDR written after the closing)."),
            }),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_and_the_csv_ones_name_every_column() {
        for name in NAMES {
            let s = schema(name).unwrap();
            jsonschema::validator_for(&s).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(schema("nope").is_none());
        let csv = schema("cdr-csv").unwrap();
        assert_eq!(csv["x-csv-columns"].as_array().unwrap().len(), CSV_COLUMNS.len());
    }

    #[test]
    fn the_cdr_csv_schema_accepts_our_rows_and_refuses_a_wrong_cell() {
        let c = crate::cdr::tests::sample("2026-03-01T10:00:00Z", "alpha", "+4533221100");
        let text = crate::cdr::to_csv(&[c]).unwrap();
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let h = r.headers().unwrap().clone();
        let row = r.records().next().unwrap().unwrap();
        let mut obj: serde_json::Map<String, Value> =
            h.iter().zip(row.iter()).map(|(k, v)| (k.to_owned(), json!(v))).collect();
        let v = jsonschema::validator_for(&schema("cdr-csv").unwrap()).unwrap();
        let errors: Vec<String> = v.iter_errors(&Value::Object(obj.clone())).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        obj.insert("called".into(), json!("33221100"));
        assert!(!v.is_valid(&Value::Object(obj)));
    }
}
