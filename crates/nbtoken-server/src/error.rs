//! API errors, answered as NetBox answers them: a status and a JSON body.
//!
//! Handlers answer with [`ApiError`]; what answers before a handler runs (axum's
//! extractor rejections, the body limit, the request timeout) is rewritten by
//! [`JsonErrors`], so every error a client sees is JSON with a `detail`.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
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

    /// `{"detail": msg}` with this status and `Retry-After: secs`: the server is busy, not the client wrong.
    pub fn busy(status: StatusCode, msg: impl Into<String>, secs: u64) -> Self {
        Self { retry_after: Some(secs.max(1)), ..Self::detail(status, msg) }
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
            // A write the store leaves to NetBox (reached only past the API's own guard).
            StoreError::ReadOnly(why) => Self::detail(StatusCode::METHOD_NOT_ALLOWED, why),
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

impl From<nbtoken_manage::Error> for ApiError {
    /// An operation's refusal as NetBox answers it.
    fn from(e: nbtoken_manage::Error) -> Self {
        use nbtoken_manage::{Busy, Error};
        match e {
            Error::Invalid(invalid) => {
                let mut errors = Map::new();
                for (field, messages) in invalid.entries() {
                    errors.insert(field.clone(), messages.iter().map(|m| Value::from(m.as_str())).collect());
                }
                Self::fields(errors)
            }
            Error::Refused(message) => Self::bad_request(message),
            Error::NotFound(what) => Self::not_found(what),
            Error::Forbidden(why) => Self::detail(StatusCode::FORBIDDEN, why.to_string()),
            Error::Busy(busy @ Busy::QueueFull) => Self::busy(
                StatusCode::SERVICE_UNAVAILABLE,
                busy.to_string(),
                crate::passwords::BUSY_RETRY_SECS,
            ),
            Error::Busy(busy) => Self::detail(StatusCode::SERVICE_UNAVAILABLE, busy.to_string()),
            Error::Store(e) => e.into(),
            other => Self::detail(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
            if self.status == StatusCode::TOO_MANY_REQUESTS {
                resp.extensions_mut().insert(RateLimited);
            }
        }
        if self.store_failure {
            resp.extensions_mut().insert(StoreFailure);
        }
        resp
    }
}

/// Largest error body [`JsonErrors`] reads to tell rejections apart (axum's are a line).
const MAX_REJECTION_BYTES: usize = 4096;

/// The layer that makes every error answer (4xx, 5xx) that is not already JSON
/// `{"detail": "…"}` with the same status and headers (`Retry-After`, `Allow`).
///
/// axum's rejections are plain text and some quote what the client sent (a path
/// parameter's value); the text is read only to pick one of the fixed messages of
/// [`rejection_detail`], never copied into the answer.
#[derive(Clone, Copy, Debug)]
pub struct JsonErrors;

impl crate::layer::Hook for JsonErrors {
    type Ctx = ();

    fn before(&self, _: &mut Request) {}

    async fn after((): (), resp: Response) -> Response {
        json_error(resp).await
    }
}

/// `resp` if it is no error or already JSON; else `{"detail": "…"}` (see [`JsonErrors`]).
async fn json_error(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&resp) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_BYTES).await.unwrap_or_default();
    let detail = rejection_detail(status, &text);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = serde_json::to_vec(&json!({ "detail": detail })).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"))
}

/// The `detail` for a plain-text (or empty) error answer of this status and body.
/// Fixed texts only: nothing of the request is echoed.
pub fn rejection_detail(status: StatusCode, text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("Request body too large: the limit is {} bytes.", crate::MAX_BODY_BYTES)
        }
        StatusCode::REQUEST_TIMEOUT => "The request took too long and was cancelled.".to_owned(),
        StatusCode::BAD_REQUEST if text.contains("UTF-8") && text.starts_with("Invalid URL") => {
            "Invalid URL: the path is not valid UTF-8 once percent-decoded.".to_owned()
        }
        StatusCode::BAD_REQUEST if text.starts_with("Invalid URL") => "Invalid URL.".to_owned(),
        StatusCode::BAD_REQUEST if text.starts_with("Failed to buffer the request body") => {
            "The request body could not be read.".to_owned()
        }
        s if s.is_server_error() => "The server could not complete the request.".to_owned(),
        s => format!("{}.", s.canonical_reason().unwrap_or("Request refused")),
    }
}
