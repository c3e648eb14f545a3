//! The operator's policy for legacy v1 tokens, and what it means at each point it applies.

use std::str::FromStr;

use crate::token::TokenVersion;

/// What the operator allows for legacy v1 tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum V1Policy {
    /// NetBox 4.5 behaviour: v1 tokens work and can be created.
    Allow,
    /// v1 tokens work, but responses carry `Deprecation`/`Sunset` headers and uses are recorded.
    #[default]
    Warn,
    /// v1 tokens are refused, as NetBox 5.0 will do.
    Deny,
}

impl V1Policy {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            V1Policy::Allow => "allow",
            V1Policy::Warn => "warn",
            V1Policy::Deny => "deny",
        }
    }

    /// Whether a use of a token of `version` is announced as deprecated: under `warn`, a v1
    /// use is logged and its response carries `Deprecation`/`Sunset` headers.
    pub fn warns(self, version: TokenVersion) -> bool {
        version == TokenVersion::V1 && self == V1Policy::Warn
    }

    /// Whether tokens of `version` are refused, for authentication and creation alike (v1
    /// under `deny`, as NetBox 5.0 will do).
    pub fn refuses(self, version: TokenVersion) -> bool {
        version == TokenVersion::V1 && self == V1Policy::Deny
    }
}

impl FromStr for V1Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allow" => Ok(V1Policy::Allow),
            "warn" => Ok(V1Policy::Warn),
            "deny" => Ok(V1Policy::Deny),
            other => Err(format!("unknown v1 policy {other:?}: expected allow, warn or deny")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_parses() {
        assert_eq!("WARN".parse::<V1Policy>().unwrap(), V1Policy::Warn);
        assert!("maybe".parse::<V1Policy>().is_err());
    }

    #[test]
    fn only_v1_is_warned_about_or_refused() {
        use TokenVersion::{V1, V2};
        assert!(V1Policy::Warn.warns(V1) && !V1Policy::Warn.warns(V2));
        assert!(!V1Policy::Allow.warns(V1) && !V1Policy::Deny.warns(V1));
        assert!(V1Policy::Deny.refuses(V1) && !V1Policy::Deny.refuses(V2));
        assert!(!V1Policy::Allow.refuses(V1) && !V1Policy::Warn.refuses(V1));
    }
}
