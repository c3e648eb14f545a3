//! Authentication middleware: header → core parse → store lookup → core decision.
//!
//! Every `/api/` request passes through [`authenticate`]. A request without
//! credentials continues as anonymous (handlers that need a user refuse it);
//! a request with bad credentials is refused here, whatever the route, as
//! NetBox does. Successful requests queue their `last_used` write and never
//! wait for it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nbtoken_core::{decide, Access, AuthHeader, Credential, Denial, TokenVersion, V1Policy, VerifyInput};
use nbtoken_store::{Store, Touch};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::AppState;

/// An authenticated caller, placed in the request extensions.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The user.
    pub user_id: i64,
    /// The token used.
    pub token_id: i64,
    /// Its version.
    pub version: TokenVersion,
    /// Whether it may write.
    pub write_enabled: bool,
}

/// Message for v1 tokens under the `deny` policy.
pub const MSG_V1_DENIED: &str =
    "v1 tokens are no longer accepted by this server. Use a v2 token: 'Authorization: Bearer nbt_<key>.<secret>'.";

/// RFC 9745 `Deprecation` value for v1 authentication: 2026-01-01T00:00:00Z.
pub const V1_DEPRECATED_SINCE: &str = "@1767225600";

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form `Sunset` takes.
pub fn http_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let day = match t.weekday() {
        time::Weekday::Monday => "Mon",
        time::Weekday::Tuesday => "Tue",
        time::Weekday::Wednesday => "Wed",
        time::Weekday::Thursday => "Thu",
        time::Weekday::Friday => "Fri",
        time::Weekday::Saturday => "Sat",
        time::Weekday::Sunday => "Sun",
    };
    let month = &format!("{:?}", t.month())[..3];
    format!(
        "{day}, {:02} {month} {} {:02}:{:02}:{:02} GMT",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Routes whose handler authenticates by password, so the token's write permission is not required.
fn needs(method: &str, path: &str) -> Access {
    if path == "/api/users/tokens/provision/" {
        Access::Read
    } else {
        Access::from_method(method)
    }
}

/// The middleware.
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let access = needs(req.method().as_str(), req.uri().path());
    match check(&state, peer, access, req.headers()).await {
        Ok(None) => next.run(req).await,
        Ok(Some(principal)) => {
            let v1 = principal.version == TokenVersion::V1;
            req.extensions_mut().insert(principal);
            let mut resp = next.run(req).await;
            if v1 && state.config.v1_policy == V1Policy::Warn {
                let h = resp.headers_mut();
                // RFC 9745: v1 authentication is deprecated (since 2026-01-01, NetBox 4.6's cycle).
                h.insert("deprecation", HeaderValue::from_static(V1_DEPRECATED_SINCE));
                // RFC 8594: when it stops working, if the operator has set a date.
                if let Some(v) =
                    state.config.v1_sunset.and_then(|t| HeaderValue::from_str(&http_date(t)).ok())
                {
                    h.insert("sunset", v);
                }
            }
            resp
        }
        Err(e) => e.into_response(),
    }
}

async fn check(
    state: &AppState,
    peer: SocketAddr,
    access: Access,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    let mut values = headers.get_all("authorization").iter();
    let Some(raw) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(ApiError::with_hint(
            StatusCode::FORBIDDEN,
            nbtoken_core::header::MSG_WRONG_FORM,
            Some("send exactly one Authorization header".to_owned()),
        ));
    }
    let parsed = match AuthHeader::parse(raw.as_bytes()) {
        Ok(None) => return Ok(None),
        Ok(Some(p)) => p,
        Err(e) => {
            tracing::debug!(detail = e.detail(), hint = ?e.hint(), "authorization header refused");
            return Err(ApiError::with_hint(
                StatusCode::FORBIDDEN,
                e.detail(),
                e.hint().map(|h| h.to_string()),
            ));
        }
    };
    let hint = parsed.hint().map(|h| h.to_string());
    let credential = parsed.credential();
    if credential.version() == TokenVersion::V1 && state.config.v1_policy == V1Policy::Deny {
        return Err(ApiError::with_hint(StatusCode::FORBIDDEN, MSG_V1_DENIED, hint));
    }
    let client_ip = crate::client_ip::client_ip(peer, headers, &state.config.trusted_proxies)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let record = match credential {
        Credential::V1 { plaintext } => state.store.token_by_plaintext(plaintext.expose()).await?,
        Credential::V2 { key, .. } => {
            // A key of the wrong shape cannot exist; skip the lookup but not the HMAC.
            if nbtoken_core::TokenKey::parse(key).is_ok() {
                state.store.token_by_key(key).await?
            } else {
                None
            }
        }
    };
    let now = OffsetDateTime::now_utc();
    let decision = decide(&VerifyInput {
        credential,
        token: record.as_ref().map(|r| &r.token),
        user_active: record.as_ref().is_some_and(|r| r.user_active),
        access,
        client_ip: Some(client_ip),
        now,
        peppers: &state.config.peppers,
    });
    match decision {
        Ok(v) => {
            tracing::debug!(token_id = v.token_id, user_id = v.user_id, version = v.version.as_u8(), %client_ip, "authenticated");
            if v.version == TokenVersion::V1 && state.config.v1_policy == V1Policy::Warn {
                tracing::info!(token_id = v.token_id, user_id = v.user_id, %client_ip, "v1 token used; migrate it to v2");
            }
            if v.touch_last_used || v.rehash.is_some() {
                state.touches.queue(Touch { token_id: v.token_id, at: now, rehash: v.rehash.clone() });
            }
            Ok(Some(Principal {
                user_id: v.user_id,
                token_id: v.token_id,
                version: v.version,
                write_enabled: v.write_enabled,
            }))
        }
        Err(denial) => {
            tracing::debug!(detail = %denial, %client_ip, "authentication refused");
            let status = match denial {
                Denial::PeppersMissing => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::FORBIDDEN,
            };
            // A hint about the token's shape only helps when the token was not found.
            let hint = matches!(denial, Denial::InvalidToken(_)).then_some(hint).flatten();
            Err(ApiError::with_hint(status, denial.detail(), hint))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(ApiError::not_authenticated)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(datetime!(1994-11-06 08:49:37 UTC)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(datetime!(2027-06-30 00:00:00 +02:00)), "Tue, 29 Jun 2027 22:00:00 GMT");
    }
}
