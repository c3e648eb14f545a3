//! NetBox's JSON shapes for tokens, users and lists, as typed values.
//!
//! Decoding is lenient where NetBox versions differ (unknown fields are
//! ignored, fields missing from brief or older shapes take defaults) and
//! strict where a wrong value would mislead (ids, versions, timestamps).

use nbtoken_core::{SecretString, TokenVersion};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

/// A user as nested inside a token: `{id, url, display, username}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NestedUser {
    /// The user's id.
    pub id: i64,
    /// Absolute API URL of the user.
    #[serde(default)]
    pub url: String,
    /// Display name.
    #[serde(default)]
    pub display: String,
    /// Login name.
    pub username: String,
}

/// A user account (`/api/users/users/`, `/api/authentication-check/`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct User {
    /// The user's id.
    pub id: i64,
    /// Absolute API URL of the user.
    #[serde(default)]
    pub url: String,
    /// `username (First Last)` or the username.
    #[serde(default)]
    pub display: String,
    /// Login name.
    pub username: String,
    /// First name (empty when absent).
    #[serde(default)]
    pub first_name: String,
    /// Last name (empty when absent).
    #[serde(default)]
    pub last_name: String,
    /// E-mail address (empty when absent).
    #[serde(default)]
    pub email: String,
    /// Whether the account may log in (true when the server leaves it out).
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Superuser flag; NetBox 4.5+ does not expose it, nbtoken does.
    #[serde(default)]
    pub is_superuser: Option<bool>,
    /// When the account was created.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub date_joined: Option<OffsetDateTime>,
    /// Last password login.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_login: Option<OffsetDateTime>,
    /// The groups the user belongs to (nested objects; `None` when the server leaves them out).
    #[serde(default)]
    pub groups: Option<Vec<serde_json::Value>>,
    /// The object permissions assigned to the user directly (nested objects; `None` when left out).
    #[serde(default)]
    pub permissions: Option<Vec<serde_json::Value>>,
}

fn yes() -> bool {
    true
}

/// An API token as NetBox 4.5+ serialises it. The secret is never part of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Token {
    /// The token's id.
    pub id: i64,
    /// Absolute API URL of the token.
    pub url: String,
    /// v2: the key; v1: asterisks and the last six characters.
    #[serde(default)]
    pub display: String,
    /// Token format.
    #[serde(with = "version_number")]
    pub version: TokenVersion,
    /// The public 12-character key (v2), without `nbt_`; `None` for v1.
    #[serde(default)]
    pub key: Option<String>,
    /// The owner.
    pub user: NestedUser,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// Expiry, if any.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires: Option<OffsetDateTime>,
    /// Last successful use, if any (updated at most once a minute).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_used: Option<OffsetDateTime>,
    /// Client address of the last recorded use: an nbtoken extension, `None` from NetBox.
    #[serde(default)]
    pub last_used_ip: Option<String>,
    /// Whether the token may authenticate.
    pub enabled: bool,
    /// Whether the token may write (POST/PUT/PATCH/DELETE).
    pub write_enabled: bool,
    /// The pepper the digest was computed with (v2); NetBox's provision answer leaves it out.
    #[serde(default)]
    pub pepper_id: Option<u16>,
    /// Source networks the token is limited to; `None` or empty means any.
    #[serde(default)]
    pub allowed_ips: Option<Vec<String>>,
}

/// A token just created, with its secret: the only time the server shows it.
///
/// `Debug` prints the secret as `[redacted]`.
#[derive(Clone, Debug)]
pub struct CreatedToken {
    /// The token's record.
    pub token: Token,
    /// NetBox's `token` field: the bare 40-character secret (v2) or the plaintext (v1).
    pub secret: SecretString,
}

impl CreatedToken {
    /// The value to authenticate with: `nbt_<key>.<secret>` for v2, the plaintext for v1.
    pub fn full_value(&self) -> SecretString {
        match (&self.token.version, &self.token.key) {
            (TokenVersion::V2, Some(key)) => {
                SecretString::new(format!("{}{key}.{}", nbtoken_core::TOKEN_PREFIX, self.secret.expose()))
            }
            // Decoding refuses a v2 answer without a key, so this arm is v1.
            _ => self.secret.clone(),
        }
    }

    /// Decodes a creation answer, moving the secret straight into a [`SecretString`].
    pub(crate) fn from_json(mut v: serde_json::Value) -> Result<Self, crate::ClientError> {
        let secret = v.as_object_mut().and_then(|o| o.remove("token"));
        let token: Token =
            serde_json::from_value(v).map_err(|e| crate::ClientError::Decode(format!("token: {e}")))?;
        let secret = match secret {
            Some(serde_json::Value::String(s)) if !s.is_empty() => SecretString::new(s),
            _ => return Err(crate::ClientError::MissingSecret { token_id: token.id }),
        };
        if token.version == TokenVersion::V2 && token.key.as_deref().is_none_or(str::is_empty) {
            return Err(crate::ClientError::Decode(format!(
                "v2 token {} was returned without its key",
                token.id
            )));
        }
        Ok(CreatedToken { token, secret })
    }
}

/// One page of a list: `{count, next, previous, results}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Page<T> {
    /// Total number of matching objects (`None` in NetBox 4.6's cursor mode).
    #[serde(default)]
    pub count: Option<u64>,
    /// Absolute URL of the next page.
    #[serde(default)]
    pub next: Option<String>,
    /// Absolute URL of the previous page.
    #[serde(default)]
    pub previous: Option<String>,
    /// The objects on this page.
    pub results: Vec<T>,
}

/// Filters for `GET /api/users/tokens/`. Unset fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenQuery {
    /// Only tokens of this version.
    pub version: Option<TokenVersion>,
    /// Only tokens of this user.
    pub user_id: Option<i64>,
    /// Only enabled (or disabled) tokens.
    pub enabled: Option<bool>,
    /// Only the token with this key (without `nbt_`).
    pub key: Option<String>,
    /// Page size (the server caps it, at 1000 by default).
    pub limit: Option<u32>,
}

impl TokenQuery {
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(v) = self.version {
            q.push(("version", v.as_u8().to_string()));
        }
        if let Some(u) = self.user_id {
            q.push(("user_id", u.to_string()));
        }
        if let Some(e) = self.enabled {
            q.push(("enabled", e.to_string()));
        }
        if let Some(k) = &self.key {
            q.push(("key", k.clone()));
        }
        if let Some(l) = self.limit {
            q.push(("limit", l.to_string()));
        }
        q
    }
}

/// Filters for `GET /api/users/users/`. Unset fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Only the user with this exact username.
    pub username: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
}

impl UserQuery {
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(u) = &self.username {
            q.push(("username", u.clone()));
        }
        if let Some(l) = self.limit {
            q.push(("limit", l.to_string()));
        }
        q
    }
}

/// A token to create with `POST /api/users/tokens/`. Unset fields take the server's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NewToken {
    /// The owner's id; `None` means the authenticated user (looked up first,
    /// because NetBox requires the field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<i64>,
    /// Token format; the server's default is v2.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "version_number::serialize_opt")]
    pub version: Option<TokenVersion>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Expiry, in the future.
    #[serde(skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub expires: Option<OffsetDateTime>,
    /// Whether the token may write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_enabled: Option<bool>,
    /// Whether the token may authenticate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Source networks to limit the token to, such as `10.0.0.0/8`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<Vec<String>>,
}

/// Changes for `PATCH /api/users/tokens/{id}/`; only the fields set are sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TokenPatch {
    /// New description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `Some(None)` removes the expiry; `Some(Some(t))` sets it.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_opt_time")]
    pub expires: Option<Option<OffsetDateTime>>,
    /// Enable or disable the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Allow or forbid writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_enabled: Option<bool>,
    /// Replace the allowed source networks (an empty list allows any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<Vec<String>>,
}

/// Options for [`crate::Client::provision`]. Unset fields take the server's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProvisionOptions {
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Expiry.
    #[serde(skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub expires: Option<OffsetDateTime>,
    /// Whether the token may write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_enabled: Option<bool>,
    /// Whether the token may authenticate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Source networks to limit the token to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<Vec<String>>,
}

/// `GET /api/status/`: the versions NetBox reports, and everything else it sends.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Status {
    /// `netbox-version`, such as `4.6.1`.
    #[serde(rename = "netbox-version", default)]
    pub netbox_version: Option<String>,
    /// `netbox-full-version`, with any designation.
    #[serde(rename = "netbox-full-version", default)]
    pub netbox_full_version: Option<String>,
    /// `nbtoken-version`: present only when the server is nbtoken.
    #[serde(rename = "nbtoken-version", default)]
    pub nbtoken_version: Option<String>,
    /// The other keys (`django-version`, `installed_apps`, `plugins`, …).
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

fn opt_opt_time<S: Serializer>(v: &Option<Option<OffsetDateTime>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(inner) => time::serde::rfc3339::option::serialize(inner, s),
        None => s.serialize_none(),
    }
}

/// NetBox's integer form of [`TokenVersion`] (core types do not derive serde).
mod version_number {
    use super::*;

    pub fn serialize<S: Serializer>(v: &TokenVersion, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(v.as_u8())
    }

    pub fn serialize_opt<S: Serializer>(v: &Option<TokenVersion>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_u8(v.as_u8()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TokenVersion, D::Error> {
        let n = u8::deserialize(d)?;
        TokenVersion::from_u8(n).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn netbox_token() -> serde_json::Value {
        // NetBox 4.6's provision answer: no pepper_id, plus fields the model does not know.
        json!({
            "id": 7, "url": "http://nb/api/users/tokens/7/", "display_url": "http://nb/users/tokens/7/",
            "display": "eOxiaUBB7417", "version": 2,
            "user": {"id": 1, "url": "http://nb/api/users/users/1/", "display": "admin", "username": "admin"},
            "key": "eOxiaUBB7417", "created": "2026-01-02T03:04:05.123456Z", "expires": null,
            "last_used": null, "enabled": true, "write_enabled": false, "description": "",
            "allowed_ips": [], "token": "wTbg8d65KYLMH3bHQ9zULCrxTXiNiug1jIm63wnU", "future_field": {"x": 1}
        })
    }

    #[test]
    fn created_token_full_value() {
        let c = CreatedToken::from_json(netbox_token()).unwrap();
        let expected = ["nbt_eOxiaUBB7417", "wTbg8d65KYLMH3bHQ9zULCrxTXiNiug1jIm63wnU"].join(".");
        assert_eq!(c.full_value().expose(), expected);
        assert_eq!(c.token.pepper_id, None);
        // NetBox does not send last_used_ip; nbtoken does.
        assert_eq!(c.token.last_used_ip, None);
        let mut nbtoken = netbox_token();
        nbtoken["last_used_ip"] = json!("192.0.2.1");
        assert_eq!(
            CreatedToken::from_json(nbtoken).unwrap().token.last_used_ip.as_deref(),
            Some("192.0.2.1")
        );
        assert!(!c.token.write_enabled);
        assert!(!format!("{c:?}").contains("wTbg8d65"));

        let mut v1 = netbox_token();
        v1["version"] = json!(1);
        v1["key"] = json!(null);
        v1["token"] = json!("0123456789abcdef0123456789abcdef01234567");
        let c = CreatedToken::from_json(v1).unwrap();
        assert_eq!(c.full_value().expose(), "0123456789abcdef0123456789abcdef01234567");
    }

    #[test]
    fn created_token_without_secret_names_the_token() {
        let mut v = netbox_token();
        v["token"] = json!(null);
        assert_eq!(
            CreatedToken::from_json(v).unwrap_err(),
            crate::ClientError::MissingSecret { token_id: 7 }
        );
    }

    #[test]
    fn bad_version_is_refused() {
        let mut v = netbox_token();
        v["version"] = json!(3);
        let e = CreatedToken::from_json(v).unwrap_err();
        assert!(e.to_string().contains("unknown token version 3"), "{e}");
    }

    #[test]
    fn patch_sends_only_what_is_set() {
        let p = TokenPatch { enabled: Some(false), expires: Some(None), ..Default::default() };
        assert_eq!(serde_json::to_value(&p).unwrap(), json!({"enabled": false, "expires": null}));
        let n = NewToken { version: Some(TokenVersion::V1), ..Default::default() };
        assert_eq!(serde_json::to_value(&n).unwrap(), json!({"version": 1}));
    }
}
