//! The OpenAPI 3.1 document, generated from the operations in
//! [`super::routes`] and the types they take; served at `/openapi.json`.

// utoipa's derive writes the component types out in full.
#![allow(unused_qualifications)]

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::admin::StateFilter;
use crate::directory::SenderPattern;
use crate::gateway::Steer;
use crate::types::{AccountId, Country, Domain, E164, EmailAddress, JobId, TenantId};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "faxgate",
        description = "The control plane of faxgate, a mail-to-fax and fax-to-mail gateway. Every operation \
                       needs an API token (`Authorization: Bearer fgt_…`), made with `faxgate token create` \
                       or `POST /v1/tokens`; it acts with the token's role in its tenant (and account). \
                       An object of another tenant or account answers 404, as one that does not exist. \
                       Errors are `application/problem+json`."
    ),
    tags(
        (name = "tenants", description = "Resellers (the operator manages them; a tenant admin reads and changes its own)"),
        (name = "accounts", description = "A tenant's customers"),
        (name = "numbers", description = "Fax numbers and where their faxes are mailed"),
        (name = "senders", description = "Mail senders allowed to send faxes"),
        (name = "history", description = "Call detail records"),
        (name = "faxes", description = "The fax queue, and faxes sent by upload"),
        (name = "tokens", description = "API tokens"),
        (name = "audit", description = "The audit of changes"),
        (name = "webhooks", description = "Fax events POSTed, signed with HMAC-SHA256, to a tenant's or an account's URL"),
        (name = "billing", description = "Rating rules and the rated export of a tenant's month"),
        (name = "data subjects", description = "GDPR requests and disclosures to authorities (the operator, with an operator token)"),
    ),
    components(schemas(StateFilter, Steer, TenantId, AccountId, JobId, E164, EmailAddress, Domain, Country, SenderPattern)),
    modifiers(&Bearer)
)]
struct Doc;

/// Every operation needs the bearer token.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token, fgt_<id>_<secret>"))
                    .build(),
            ),
        );
        openapi.security = Some(vec![SecurityRequirement::new("token", Vec::<String>::new())]);
    }
}

/// The document's head: info, tags, security; the paths come from the router.
pub(super) fn document() -> utoipa::openapi::OpenApi {
    let mut d = Doc::openapi();
    d.info.version = env!("CARGO_PKG_VERSION").to_owned();
    d
}

/// Types that travel as text, each with its form.
macro_rules! text_schema {
    ($($t:ty => $desc:literal $(, $pattern:literal)?;)*) => {$(
        impl PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($desc))
                    $(.pattern(Some($pattern)))?
                    .into()
            }
        }
        impl ToSchema for $t {}
    )*};
}

text_schema! {
    TenantId => "A tenant's slug: 1 to 32 of a-z, 0-9 and '-', starting with a letter", "^[a-z][a-z0-9-]{0,31}$";
    AccountId => "An account's id: acc- and 32 hex digits", "^acc-[0-9a-f]{32}$";
    JobId => "A job's id: job- and 32 hex digits", "^job-[0-9a-f]{32}$";
    E164 => "A phone number in E.164", "^\\+[1-9][0-9]{1,14}$";
    EmailAddress => "A mail address";
    Domain => "A domain name";
    Country => "A country: ISO 3166 alpha-2 code", "^[A-Z]{2}$";
    SenderPattern => "A mail address, or @domain for every address of a domain";
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Every answer but the data subjects' (the operator's reports, in the
    /// shapes of `crate::gdpr`) names its type: no generic object.
    #[test]
    fn every_answer_names_its_type() {
        let doc: Value = serde_json::from_str(&super::super::openapi_json()).unwrap();
        let mut typed = 0;
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                for (status, r) in op["responses"].as_object().unwrap() {
                    let Some(schema) = r.pointer("/content/application~1json/schema") else { continue };
                    if !status.starts_with('2') || path.starts_with("/v1/gdpr/") || path == "/v1/disclosures" {
                        continue;
                    }
                    let name = schema["$ref"].as_str().unwrap_or_else(|| panic!("{method} {path}: {schema}"));
                    let name = name.strip_prefix("#/components/schemas/").unwrap();
                    assert!(doc["components"]["schemas"][name].is_object(), "{method} {path}: {name}");
                    typed += 1;
                }
            }
        }
        assert_eq!(typed, 45);
    }
}
