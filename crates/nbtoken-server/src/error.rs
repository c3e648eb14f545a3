//! API errors, answered as NetBox answers them: a status and a JSON body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nbtoken_store::StoreError;
use serde_json::{json, Map, Value};

/// An error response: status plus NetBox-style body (`{"detail": …}` or `{"field": ["…"]}`).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
    retry_after: Option<u64>,
    store_failure: bool,
}

/// In the extensions of a response caused by a failed database operation (counted by the metrics).
#[derive(Clone, Copy, Debug)]
pub struct StoreFailure;

/// In the extensions of a `429` from the failure limiter (counted by the metrics).
#[derive(Clone, Copy, Debug)]
pub struct RateLimited;

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// `{"detail": msg}` with this status.
    pub fn detail(status: StatusCode, msg: impl Into<String>) -> Self {
        Self { status, body: json!({ "detail": msg.into() }), retry_after: None, store_failure: false }
    }

    /// `{"detail": msg, "hint": hint}`: NetBox's message plus nbtoken's advice.
    pub fn with_hint(status: StatusCode, msg: impl Into<String>, hint: Option<String>) -> Self {
        let mut body = Map::new();
        body.insert("detail".into(), Value::String(msg.into()));
        if let Some(h) = hint {
            body.insert("hint".into(), Value::String(h));
        }
        Self { status, body: Value::Object(body), retry_after: None, store_failure: false }
    }

    /// 400 `{"field": ["msg"]}`, DRF's validation error shape.
    pub fn field(field: &str, msg: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: json!({ field: [msg.into()] }),
            retry_after: None,
            store_failure: false,
        }
    }

    /// 400 with several field errors.
    pub fn fields(errors: Map<String, Value>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: Value::Object(errors),
            retry_after: None,
            store_failure: false,
        }
    }

    /// 400 `{"detail": msg}`.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::detail(StatusCode::BAD_REQUEST, msg)
    }

    /// 403 `{"detail": "You do not have permission to perform this action."}`.
    pub fn forbidden() -> Self {
        Self::detail(StatusCode::FORBIDDEN, nbtoken_core::verify::MSG_PERMISSION_DENIED)
    }

    /// 403 `{"detail": "Authentication credentials were not provided."}`.
    pub fn not_authenticated() -> Self {
        Self::detail(StatusCode::FORBIDDEN, "Authentication credentials were not provided.")
    }

    /// 404 `{"detail": "No Token matches the given query."}` and the like.
    pub fn not_found(what: &str) -> Self {
        Self::detail(StatusCode::NOT_FOUND, format!("No {what} matches the given query."))
    }

    /// 429 with `Retry-After`: too many failed attempts from this client or on this key.
    pub fn too_many_failures(wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let secs = secs.max(1);
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            body: json!({ "detail": format!("Too many failed authentication attempts. Retry in {secs} seconds.") }),
            retry_after: Some(secs),
            store_failure: false,
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The same answer with another status (forward-auth answers 401 where the API answers 403).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The `detail` message, if the body has one.
    pub fn message(&self) -> Option<&str> {
        self.body.get("detail").and_then(Value::as_str)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::detail(StatusCode::NOT_FOUND, "Not found."),
            StoreError::Conflict(field) => {
                Self::field(field, format!("A record with this {field} already exists."))
            }
            StoreError::MissingReference(what) => {
                Self::field(what, format!("Invalid pk - object does not exist ({what})."))
            }
            StoreError::Unavailable(_) => {
                tracing::error!(error = %e, "store unavailable");
                Self {
                    store_failure: true,
                    ..Self::detail(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The token database is unavailable; try again shortly.",
                    )
                }
            }
            other => {
                tracing::error!(error = %other, "store error");
                Self {
                    store_failure: true,
                    ..Self::detail(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The token database could not complete the request.",
                    )
                }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
            resp.extensions_mut().insert(RateLimited);
        }
        if self.store_failure {
            resp.extensions_mut().insert(StoreFailure);
        }
        resp
    }
}
