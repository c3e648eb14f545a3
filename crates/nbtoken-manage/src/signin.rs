//! Signing in with a username and password (the web UI's sessions): the same rule as
//! provisioning, the one place that decides whether a password opens an account.

use nbtoken_store::{Store, User, UserPatch};
use time::OffsetDateTime;

use crate::error::Error;
use crate::passwords::Passwords;
use crate::{Credentials, Ops};

impl<S: Store, P: Passwords> Ops<'_, S, P> {
    /// The active user whose username and password these are ([`Ops::check_credentials`],
    /// the same check as provisioning), with `last_login` set to now. Counting failures (and
    /// refusing clients with too many) is the caller's: it knows the client.
    pub async fn sign_in(&self, credentials: Credentials) -> Result<User, Error> {
        let verified = self.check_credentials(credentials).await?;
        let patch = UserPatch { last_login: Some(OffsetDateTime::now_utc()), ..Default::default() };
        let user = self.store.update_user(verified.user().id, patch).await?;
        self.announce.user_changed(user.id);
        tracing::info!(user_id = user.id, "signed in");
        Ok(user)
    }

    /// The account behind a session, as stored now: `None` once it is gone or inactive, so
    /// a disabled user's sessions end with their tokens.
    pub async fn session_user(&self, user_id: i64) -> Result<Option<User>, Error> {
        Ok(self.store.user(user_id).await?.filter(|u| u.is_active))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Sign-in, and the setup the tests of migration for an actor share.
    #![allow(clippy::unwrap_used)]

    use nbtoken_core::{PepperId, PepperRing, SecretString, V1Policy};
    use nbtoken_store::{NewUser, SqliteStore, Store, User};

    use crate::error::{Busy, Error, Forbidden};
    use crate::{Credentials, Ops, Passwords, Quiet};

    /// Passwords "hashed" as themselves: argon2 is slow in a debug build.
    pub(crate) struct Plain;

    impl Passwords for Plain {
        async fn hash(&self, password: SecretString) -> Result<String, Busy> {
            Ok(format!("plain:{}", password.expose()))
        }

        async fn verify(&self, password: SecretString, phc: String) -> Result<bool, Busy> {
            Ok(phc == format!("plain:{}", password.expose()))
        }
    }

    /// An empty in-memory store and one pepper.
    pub(crate) async fn world() -> (SqliteStore, PepperRing) {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        let value = SecretString::from("pepper-one-0123456789-0123456789-0123456789-0123456789");
        (store, PepperRing::new([(PepperId::new(1).unwrap(), value)]).unwrap())
    }

    /// The operations on that world.
    pub(crate) fn ops<'a>(store: &'a SqliteStore, peppers: &'a PepperRing) -> Ops<'a, SqliteStore, Plain> {
        Ops { store, peppers, v1_policy: V1Policy::Allow, passwords: &Plain, announce: &Quiet }
    }

    /// A new active user `name` whose password is `Correct-horse-1` (hashed by [`Plain`]),
    /// neither a superuser nor one who may grant tokens.
    pub(crate) fn account(name: &str) -> NewUser {
        NewUser {
            username: name.into(),
            password_hash: Some("plain:Correct-horse-1".into()),
            is_active: true,
            ..Default::default()
        }
    }

    /// A user whose password is `Correct-horse-1`.
    pub(crate) async fn user(store: &SqliteStore, name: &str, superuser: bool, active: bool) -> User {
        let new = NewUser {
            is_active: active,
            is_superuser: superuser,
            can_grant_tokens: superuser,
            ..account(name)
        };
        store.create_user(new).await.unwrap()
    }

    #[tokio::test]
    async fn sign_in_checks_the_password_like_provisioning_and_records_the_login() {
        let (store, peppers) = world().await;
        let ops = ops(&store, &peppers);
        user(&store, "alice", false, true).await;
        let gone = user(&store, "gone", false, false).await;
        let ask =
            |name: &str, pw: &str| Credentials { username: name.into(), password: SecretString::from(pw) };
        let signed = ops.sign_in(ask("alice", "Correct-horse-1")).await.unwrap();
        assert!(signed.last_login.is_some());
        for (name, pw) in [("alice", "wrong"), ("gone", "Correct-horse-1"), ("nobody", "Correct-horse-1")] {
            let refused = ops.sign_in(ask(name, pw)).await;
            assert!(matches!(refused, Err(Error::Forbidden(Forbidden::BadCredentials))), "{name}");
        }
        // A session ends with its account's activity.
        assert!(ops.session_user(signed.id).await.unwrap().is_some());
        assert!(ops.session_user(gone.id).await.unwrap().is_none());
    }
}
