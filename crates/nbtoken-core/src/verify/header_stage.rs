//! The header stage of the authentication decision: the raw `Authorization` values and the
//! v1 policy → anonymous, a credential to look up, or a refusal, before anything is looked up.
//!
//! The row stage is [`super::decide`]. Between the two the server does only I/O (failure
//! budgets, the cache and the store); which refusals draw from the failure budget and which
//! hint a refusal shows are decided here, so forward-auth and the API cannot differ.

use crate::header::{AuthHeader, Credential, HeaderError, Hint, MSG_WRONG_FORM};
use crate::policy::V1Policy;
use crate::token::{TokenKey, TokenVersion};

use super::Denial;

/// The refusal of a v1 token under the `deny` policy.
pub const MSG_V1_DENIED: &str =
    "v1 tokens are no longer accepted by this server. Use a v2 token: 'Authorization: Bearer nbt_<key>.<secret>'.";

/// What the `Authorization` headers of a request come to, before any lookup.
#[derive(Debug)]
pub enum HeaderDecision<'a> {
    /// No `Authorization` header: anonymous.
    Absent,
    /// One header of another scheme (`Basic …`) or of blanks only: anonymous, as in NetBox.
    OtherScheme,
    /// A credential to look up and give to [`super::decide`].
    Credential(Presented<'a>),
    /// Refused here; nothing is looked up.
    Refused(HeaderRefusal),
}

impl<'a> HeaderDecision<'a> {
    /// Whether the client's failure budget is consulted before this decision applies (a
    /// blocked client is refused whatever its header says): for every request that sent one
    /// `Authorization` header. Without one a request is anonymous at no cost, and a doubled
    /// header is refused before the budget is looked at.
    pub fn consults_budget(&self) -> bool {
        !matches!(self, HeaderDecision::Absent | HeaderDecision::Refused(HeaderRefusal::Duplicated))
    }

    /// The v2 key whose budget is consulted beside the client's (see [`Presented::budget_key`]).
    pub fn budget_key(&self) -> Option<&'a str> {
        match self {
            HeaderDecision::Credential(p) => p.budget_key(),
            _ => None,
        }
    }
}

/// A credential read from the one `Authorization` header (in place), with its diagnosis.
#[derive(Clone, Copy, Debug)]
pub struct Presented<'a> {
    credential: Credential<'a>,
    hint: Option<Hint>,
}

impl<'a> Presented<'a> {
    /// The credential, for the lookup and [`super::decide`].
    pub fn credential(&self) -> &Credential<'a> {
        &self.credential
    }

    /// The version the value announces.
    pub fn version(&self) -> TokenVersion {
        self.credential.version()
    }

    /// The v2 key that has a failure budget of its own: only a well-formed one, since a key of
    /// another shape cannot exist and must not add entries to the budgets.
    pub fn budget_key(&self) -> Option<&'a str> {
        match self.credential {
            Credential::V2 { key, .. } if TokenKey::is_valid(key) => Some(key),
            _ => None,
        }
    }

    /// The hint a refusal for `denial` shows: one about the token's shape only helps when no
    /// token matched, so any other refusal shows none.
    pub fn hint_for(&self, denial: &Denial) -> Option<Hint> {
        matches!(denial, Denial::InvalidToken(_)).then_some(self.hint).flatten()
    }
}

/// Why the headers were refused before any lookup. NetBox's message is [`Self::detail`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderRefusal {
    /// More than one `Authorization` header.
    Duplicated,
    /// A header NetBox cannot parse.
    Malformed(HeaderError),
    /// A v1 token under the `deny` policy.
    V1Denied {
        /// The header's diagnosis (a v1 token sent with `Bearer`, say).
        hint: Option<Hint>,
    },
}

impl HeaderRefusal {
    /// The message for the `detail` field (NetBox's, for a header NetBox refuses too).
    pub fn detail(&self) -> &'static str {
        match self {
            HeaderRefusal::Duplicated => MSG_WRONG_FORM,
            HeaderRefusal::Malformed(e) => e.detail(),
            HeaderRefusal::V1Denied { .. } => MSG_V1_DENIED,
        }
    }

    /// What the client should do, where it can be told.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            HeaderRefusal::Duplicated => Some(Hint::DuplicateHeader),
            HeaderRefusal::Malformed(e) => e.hint(),
            HeaderRefusal::V1Denied { hint } => *hint,
        }
    }

    /// The version of the refused credential, where one was read.
    pub fn version(&self) -> Option<TokenVersion> {
        match self {
            HeaderRefusal::V1Denied { .. } => Some(TokenVersion::V1),
            HeaderRefusal::Duplicated | HeaderRefusal::Malformed(_) => None,
        }
    }

    /// Whether the refusal draws from the client's failure budget: a header that cannot be
    /// parsed may be a guess; a doubled header or a v1 token under `deny` is a client that
    /// needs fixing, not an attack that gets any closer.
    pub fn counts_as_failure(&self) -> bool {
        matches!(self, HeaderRefusal::Malformed(_))
    }
}

/// The header stage: the raw values of every `Authorization` header of a request, in order,
/// and the v1 policy.
pub fn read_header<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    v1_policy: V1Policy,
) -> HeaderDecision<'a> {
    let mut values = values.into_iter();
    let Some(raw) = values.next() else { return HeaderDecision::Absent };
    if values.next().is_some() {
        return HeaderDecision::Refused(HeaderRefusal::Duplicated);
    }
    match AuthHeader::parse(raw) {
        Ok(None) => HeaderDecision::OtherScheme,
        Err(e) => HeaderDecision::Refused(HeaderRefusal::Malformed(e)),
        Ok(Some(header)) => {
            let hint = header.hint();
            let credential = header.into_credential();
            if v1_policy.refuses(credential.version()) {
                HeaderDecision::Refused(HeaderRefusal::V1Denied { hint })
            } else {
                HeaderDecision::Credential(Presented { credential, hint })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "0123456789abcdef0123456789abcdef01234567";
    // The value is assembled from its parts, so no whole token stands in the source (a scanner
    // would rightly flag one), as in `header/tests.rs`.
    const KEY: &str = "eOxiaUBB7417";
    const SECRET: &str = "wTbg8d65KYLMH3bHQ9zULCrxTXiNiug1jIm63wnU";

    fn v2() -> String {
        format!("nbt_{KEY}.{SECRET}")
    }

    /// One line per decision: what it is, whether the budget is consulted, and its parts.
    fn render(d: &HeaderDecision) -> String {
        let budget = if d.consults_budget() { "budget" } else { "free" };
        match d {
            HeaderDecision::Absent => format!("absent {budget}"),
            HeaderDecision::OtherScheme => format!("anonymous {budget}"),
            HeaderDecision::Credential(p) => {
                let key = p.budget_key().map_or(String::new(), |k| format!(" key={k}"));
                let hint = p
                    .hint_for(&Denial::InvalidToken(p.version()))
                    .map_or(String::new(), |h| format!(" | {h}"));
                format!("v{} {budget}{key}{hint}", p.version().as_u8())
            }
            HeaderDecision::Refused(r) => format!(
                "refused {budget}{}{} {} | {}",
                if r.counts_as_failure() { " failure" } else { "" },
                r.version().map_or(String::new(), |v| format!(" v{}", v.as_u8())),
                r.detail(),
                r.hint().map_or(String::new(), |h| h.to_string()),
            ),
        }
    }

    fn check(values: &[&str], policy: V1Policy, expected: &str) {
        let got = render(&read_header(values.iter().map(|v| v.as_bytes()), policy));
        assert_eq!(got, expected, "{values:?} under {policy:?}");
    }

    #[test]
    fn headers_decide_before_any_lookup() {
        use V1Policy::{Allow, Deny, Warn};
        check(&[], Deny, "absent free");
        check(&["Basic dXNlcjpwYXNz"], Deny, "anonymous budget");
        check(&["   "], Warn, "anonymous budget");
        check(&[&format!("Bearer {}", v2())], Deny, "v2 budget key=eOxiaUBB7417");
        check(&[&format!("Token {V1}")], Allow, "v1 budget");
        check(&[&format!("Token {V1}")], Warn, "v1 budget");
        check(&[&format!("Token {V1}")], Deny, &format!("refused budget v1 {MSG_V1_DENIED} | "));
        check(
            &[&format!("Bearer {V1}")],
            Deny,
            &format!("refused budget v1 {MSG_V1_DENIED} | {}", Hint::V1WithBearerKeyword),
        );
        check(
            &[&format!("Bearer {}", v2()), &format!("Bearer {}", v2())],
            Allow,
            &format!("refused free {MSG_WRONG_FORM} | send exactly one Authorization header"),
        );
        check(
            &["Bearer"],
            Allow,
            &format!("refused budget failure {MSG_WRONG_FORM} | {}", Hint::MissingValue),
        );
        check(
            &["Bearer nbt_nodot"],
            Warn,
            &format!("refused budget failure {} | {}", crate::header::MSG_NO_DOT, Hint::MissingDot),
        );
    }

    #[test]
    fn hints_show_only_when_no_token_matched() {
        // A wrong-shape key has no budget of its own: no token can have it.
        check(
            &["Bearer nbt_short.secret"],
            V1Policy::Allow,
            &format!("v2 budget | {}", Hint::KeyShape { len: 5 }),
        );
        let HeaderDecision::Credential(p) =
            read_header([b"Token nbt_short.secret".as_slice()], V1Policy::Warn)
        else {
            panic!("a credential expected")
        };
        assert_eq!(p.hint_for(&Denial::InvalidToken(TokenVersion::V2)), Some(Hint::KeyShape { len: 5 }));
        assert_eq!(p.hint_for(&Denial::Disabled), None);
        assert_eq!(p.hint_for(&Denial::WriteNotPermitted), None);
    }
}
