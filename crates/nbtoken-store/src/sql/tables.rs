//! Where a store keeps users and tokens: the table names and which of nbtoken's own columns exist.
//!
//! nbtoken's schema mirrors NetBox's `users_token` column for column, so the
//! queries name those columns directly; what differs between schemas is data
//! here: the table names and whether nbtoken's columns beyond NetBox's are
//! there. The select lists are built from it, so every query reads the same
//! aliases (`id`, `version`, …, `username`, `user_active`) whatever the schema.

use super::Syntax;

/// The tables a store reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tables {
    /// The users table (`users`; NetBox's is `users_user`).
    pub users: &'static str,
    /// The tokens table (`users_token` in both).
    pub tokens: &'static str,
    /// Whether the tables have nbtoken's columns beyond NetBox's: `can_grant_tokens` on users,
    /// and on tokens the previous secret of a rotation (`prev_pepper_id`, `prev_hmac_digest`,
    /// `prev_valid_until`) and `last_used_ip`. Without them those read as false / `NULL`, and a
    /// touch writes `last_used` alone. Without them the user's `password` is not read either:
    /// only nbtoken's own column holds a hash nbtoken checks (NetBox's holds a Django hash).
    pub nbtoken_columns: bool,
    /// A table of nbtoken's own, keyed by `token_id`, whose `last_ip` is read as the token's
    /// `last_used_ip` (where the tokens table has no such column).
    pub uses: Option<&'static str>,
    /// The per-day v1 use counts (`token_id`, `day`, `uses`); rows of a deleted token go by
    /// cascade where [`Tables::nbtoken_columns`] (nbtoken's own schema), else by a pruning join.
    pub use_days: &'static str,
}

/// nbtoken's own schema (`migrations/sqlite`, `migrations/postgres`).
pub const NBTOKEN: Tables = Tables {
    users: "users",
    tokens: "users_token",
    nbtoken_columns: true,
    uses: None,
    use_days: "v1_use_days",
};

/// NetBox's own tables, with what nbtoken records beside them in its `nbtoken` schema.
pub const NETBOX: Tables = Tables {
    users: "users_user",
    tokens: "users_token",
    nbtoken_columns: false,
    uses: Some("nbtoken.token_use"),
    use_days: "nbtoken.v1_use_days",
};

impl Tables {
    /// `template` with `{users}`, `{tokens}` and `{use_days}` replaced by these table names.
    pub(crate) fn sql(&self, template: &str) -> String {
        template
            .replace("{tokens}", self.tokens)
            .replace("{users}", self.users)
            .replace("{use_days}", self.use_days)
    }

    /// `column`, or `absent` where this schema lacks nbtoken's own columns.
    fn own(&self, column: &str, absent: &'static str) -> String {
        if self.nbtoken_columns {
            column.to_owned()
        } else {
            absent.to_owned()
        }
    }

    /// The columns of a user, aliased as [`super::record::user_from_row`] reads them.
    pub(crate) fn user_columns(&self) -> String {
        format!(
            "u.id AS id, u.username AS username, {} AS password, u.first_name AS first_name, \
             u.last_name AS last_name, u.email AS email, u.is_active AS is_active, \
             u.is_superuser AS is_superuser, {} AS can_grant_tokens, u.date_joined AS date_joined, \
             u.last_login AS last_login",
            self.own("u.password", "NULL::text"),
            self.own("u.can_grant_tokens", "FALSE")
        )
    }

    /// The `SELECT … FROM` of tokens joined with their owner, aliased as
    /// [`super::record::token_from_row`] reads them.
    pub(crate) fn token_select(&self, syntax: Syntax) -> String {
        format!(
            "SELECT t.id AS id, t.version AS version, t.key AS key, t.pepper_id AS pepper_id, \
             t.hmac_digest AS hmac_digest, t.plaintext AS plaintext, t.user_id AS user_id, \
             t.description AS description, t.created AS created, t.expires AS expires, \
             t.last_used AS last_used, t.enabled AS enabled, t.write_enabled AS write_enabled, \
             {} AS allowed_ips, {} AS prev_pepper_id, {} AS prev_hmac_digest, \
             {} AS prev_valid_until, {} AS last_used_ip, \
             u.username AS username, u.is_active AS user_active \
             FROM {} t JOIN {} u ON u.id = t.user_id{}",
            (syntax.read_nets)("t.allowed_ips"),
            self.own("t.prev_pepper_id", "NULL"),
            self.own("t.prev_hmac_digest", "NULL"),
            self.own("t.prev_valid_until", "NULL"),
            match self.uses {
                _ if self.nbtoken_columns => (syntax.read_ip)("t.last_used_ip"),
                Some(_) => (syntax.read_ip)("x.last_ip"),
                None => "NULL".to_owned(),
            },
            self.tokens,
            self.users,
            match self.uses {
                Some(uses) if !self.nbtoken_columns => format!(" LEFT JOIN {uses} x ON x.token_id = t.id"),
                _ => String::new(),
            },
        )
    }
}
