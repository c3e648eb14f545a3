//! Between NetBox's shapes and core's types: a listed token as the migration planner and
//! the audit see it, and a planned replacement as the request that creates it.

use nbtoken_core::migrate::{Replacement, TokenInfo};
use nbtoken_core::{AllowedIps, PepperId, TokenVersion};

use crate::models::{NewToken, Token};
use crate::ClientError;

impl Token {
    /// The token as core sees it. `allowed_ips` keeps NetBox's form (`null` or a list);
    /// an entry that is not a network is an error, never dropped: a shorter list would
    /// widen what a copy of the token allows.
    pub fn to_info(&self) -> Result<TokenInfo, ClientError> {
        let allowed_ips = match &self.allowed_ips {
            None => AllowedIps::default(),
            Some(list) => {
                let nets: Option<Vec<_>> = list.iter().map(|s| AllowedIps::parse_net(s)).collect();
                AllowedIps::new(nets.ok_or_else(|| {
                    ClientError::Decode(format!(
                        "token #{} has an allowed_ips entry that is not an IP network",
                        self.id
                    ))
                })?)
            }
        };
        Ok(TokenInfo {
            id: self.id,
            version: self.version,
            user_id: self.user.id,
            username: self.user.username.clone(),
            display: self.display.clone(),
            description: self.description.clone(),
            created: self.created,
            expires: self.expires,
            last_used: self.last_used,
            // nbtoken sends it; NetBox does not. An address that does not parse is only not shown.
            last_used_ip: self.last_used_ip.as_deref().and_then(|s| s.parse().ok()),
            last_used_user_agent: None,
            enabled: self.enabled,
            write_enabled: self.write_enabled,
            allowed_ips,
            pepper_id: self.pepper_id.and_then(|p| PepperId::new(p).ok()),
        })
    }
}

/// `allowed_ips` as sent: no field for "not set", so the server stores what it stores
/// for an unrestricted token; the list otherwise.
pub fn allowed_ips_field(ips: &AllowedIps) -> Option<Vec<String>> {
    ips.is_list().then(|| ips.nets().iter().map(ToString::to_string).collect())
}

impl NewToken {
    /// The request that creates a planned v2 replacement of a v1 token.
    pub fn replacement(r: &Replacement) -> Self {
        NewToken {
            user: Some(r.user_id),
            version: Some(TokenVersion::V2),
            description: Some(r.description.clone()),
            expires: r.expires,
            write_enabled: Some(r.write_enabled),
            enabled: Some(true),
            allowed_ips: allowed_ips_field(&r.allowed_ips),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn token(allowed_ips: serde_json::Value) -> Token {
        serde_json::from_value(json!({
            "id": 9, "url": "http://nb/api/users/tokens/9/", "display": "**********************************234567",
            "version": 1, "user": {"id": 3, "username": "ann"}, "created": "2026-01-02T03:04:05Z",
            "enabled": true, "write_enabled": false, "description": "ci", "allowed_ips": allowed_ips,
            "last_used_ip": "192.0.2.1"
        }))
        .unwrap()
    }

    #[test]
    fn a_token_keeps_netbox_s_form_of_allowed_ips() {
        let info = token(json!(null)).to_info().unwrap();
        assert!(info.allowed_ips.is_unrestricted() && !info.allowed_ips.is_list());
        assert_eq!((info.user_id, info.username.as_str(), info.write_enabled), (3, "ann", false));
        assert_eq!(info.last_used_ip, Some("192.0.2.1".parse().unwrap()));
        assert!(token(json!([])).to_info().unwrap().allowed_ips.is_list());
        let info = token(json!(["10.0.0.0/8", "192.0.2.7"])).to_info().unwrap();
        assert_eq!(info.allowed_ips.nets().len(), 2);
        let e = token(json!(["10.0.0.0/8", "nowhere"])).to_info().unwrap_err();
        assert!(e.to_string().contains("token #9 has an allowed_ips entry"), "{e}");
    }

    #[test]
    fn a_replacement_sends_no_allowed_ips_when_unrestricted() {
        let mut info = token(json!([])).to_info().unwrap();
        let new = NewToken::replacement(&Replacement::of(&info));
        assert_eq!(new.allowed_ips, None);
        assert_eq!((new.user, new.write_enabled, new.enabled), (Some(3), Some(false), Some(true)));
        assert_eq!(new.description.as_deref(), Some("[replaces v1 #9] ci"));
        info.allowed_ips = AllowedIps::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let new = NewToken::replacement(&Replacement::of(&info));
        assert_eq!(new.allowed_ips, Some(vec!["10.0.0.0/8".to_owned()]));
    }
}
