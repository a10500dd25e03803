//! Errors as `application/problem+json` (RFC 9457), with the same reason
//! texts the CLI and SMTP give.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::Error;

/// What went wrong.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:faxgate:problem:<kind>`,
    /// where the kind is `not_found`, `conflict`, `invalid`, `forbidden`,
    /// `unauthorized`, `too_many_requests`, `damaged` or `internal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The kind in words.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What was wrong, as the CLI says it.
    pub detail: String,
    /// Seconds to wait, with 429.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem of `status` with the reason `detail`.
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:faxgate:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 400: the request is not one.
    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid", detail)
    }

    /// 401: no token, or one that does not work.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 429, with the seconds until the next request is allowed.
    pub fn too_many(wait_seconds: u64) -> Problem {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!("too many requests with this token; try again in {wait_seconds} s"),
        );
        p.retry_after = Some(wait_seconds);
        p
    }

    /// 500, with what failed (never a value from the request).
    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        let status = match e.kind() {
            "not_found" => StatusCode::NOT_FOUND,
            "conflict" | "in_use" => StatusCode::CONFLICT,
            "invalid" => StatusCode::BAD_REQUEST,
            "forbidden" => StatusCode::FORBIDDEN,
            "damaged" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "API request failed");
        }
        Problem::new(status, e.kind(), e.to_string())
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Problem {
        match r {
            JsonRejection::MissingJsonContentType(_) => {
                Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid", "the body must be JSON (application/json)")
            }
            r => Problem::invalid(format!("the body is not what this operation takes: {}", r.body_text())),
        }
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Problem {
        Problem::invalid(format!("the query is not what this operation takes: {}", r.body_text()))
    }
}

impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Problem {
        // A malformed id names nothing: as for any id that does not exist.
        Problem::not_found(format!("no such object: {}", r.body_text()))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = (status, body).into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"faxgate\""));
        }
        r
    }
}
