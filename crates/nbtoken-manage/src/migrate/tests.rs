//! The migration operations against an in-memory SQLite store.

#![allow(clippy::unwrap_used)]

use nbtoken_core::{AllowedIps, PepperId, PepperRing, SecretString, TokenVersion, V1Policy};
use nbtoken_store::{NewUser, SqliteStore, Store, Touch};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::{Actor, Inline, Ops, Quiet, TokenSpec};

/// Secrets kept in memory; `fail_from` makes every push from that index on fail.
#[derive(Default)]
struct Memory {
    kept: Vec<NewSecret>,
    fail_from: Option<usize>,
    hand_over: bool,
}

impl SecretSink for Memory {
    fn push(&mut self, secret: &NewSecret) -> std::io::Result<()> {
        if self.fail_from.is_some_and(|n| self.kept.len() >= n) {
            return Err(std::io::Error::other("disk full"));
        }
        self.kept.push(secret.clone());
        Ok(())
    }

    fn can_hand_over(&self) -> bool {
        self.hand_over
    }

    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct World {
    store: SqliteStore,
    peppers: PepperRing,
}

impl World {
    async fn new() -> Self {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        let value = SecretString::from("pepper-one-0123456789-0123456789-0123456789-0123456789");
        let peppers = PepperRing::new([(PepperId::new(1).unwrap(), value)]).unwrap();
        World { store, peppers }
    }

    fn ops(&self) -> Ops<'_, SqliteStore, Inline> {
        Ops {
            store: &self.store,
            peppers: &self.peppers,
            v1_policy: V1Policy::Allow,
            passwords: &Inline,
            announce: &Quiet,
        }
    }

    /// A v1 token of a new user (or of `user`, if it exists); returns its id.
    async fn v1(&self, user: &str, spec: TokenSpec) -> i64 {
        let owner = match self.store.user_by_name(user).await.unwrap() {
            Some(u) => u,
            None => self
                .store
                .create_user(NewUser { username: user.into(), is_active: true, ..Default::default() })
                .await
                .unwrap(),
        };
        let spec = TokenSpec { version: TokenVersion::V1, ..spec };
        self.ops().create_token(&Actor::Operator, &owner, spec).await.unwrap().record.token.id
    }

    /// Records a use of token `id` after its creation.
    async fn use_token(&self, id: i64) {
        let at = OffsetDateTime::now_utc() + Duration::seconds(5);
        self.store
            .apply_touches(&[Touch {
                token_id: id,
                at,
                ip: None,
                rehash: None,
                rehash_from: None,
                user_agent: None,
            }])
            .await
            .unwrap();
    }
}

async fn plan_of(ops: &Ops<'_, SqliteStore, Inline>) -> Plan {
    Plan::read(&LocalTarget::new(ops), &mut ()).await.unwrap()
}

async fn apply_all(ops: &Ops<'_, SqliteStore, Inline>, sink: &mut Memory) -> ApplyReport {
    let target = LocalTarget::new(ops);
    let plan = plan_of(ops).await;
    apply(&target, &plan, OffsetDateTime::now_utc(), sink, &mut ()).await
}

#[tokio::test]
async fn plan_lists_v1_tokens_without_replacements() {
    let w = World::new().await;
    let a = w.v1("alice", TokenSpec::default()).await;
    let b = w.v1("bob", TokenSpec { enabled: false, ..Default::default() }).await;
    let plan = plan_of(&w.ops()).await;
    assert_eq!(plan.items.iter().map(|i| i.v1.id).collect::<Vec<_>>(), vec![a, b]);
    assert!(plan.items.iter().all(|i| i.replacement.is_none()));
    assert_eq!(plan.caller.sees_all, Some(true));
    assert_eq!(plan.to_create(OffsetDateTime::now_utc()), 1, "the disabled one gets none");
}

#[tokio::test]
async fn apply_creates_copies_once_and_a_second_run_creates_nothing() {
    let w = World::new().await;
    let nets = AllowedIps::new(vec!["10.0.0.0/8".parse().unwrap()]);
    let fenced = w
        .v1("alice", TokenSpec { write_enabled: false, allowed_ips: nets.clone(), ..Default::default() })
        .await;
    let open = w.v1("bob", TokenSpec { allowed_ips: AllowedIps::empty_list(), ..Default::default() }).await;
    let mut sink = Memory::default();
    let report = apply_all(&w.ops(), &mut sink).await;
    assert_eq!((report.created, report.already, report.skipped, report.failed), (2, 0, 0, 0));
    assert_eq!(sink.kept.len(), 2);
    assert!(sink.kept.iter().all(|s| s.token.expose().starts_with("nbt_")));
    let plan = plan_of(&w.ops()).await;
    let replacement =
        |id: i64| plan.items.iter().find(|i| i.v1.id == id).unwrap().replacement.clone().unwrap();
    let r = replacement(fenced);
    assert_eq!((r.username.as_str(), r.write_enabled, &r.allowed_ips), ("alice", false, &nets));
    assert!(!replacement(open).allowed_ips.is_list(), "no restriction stays not set");

    let mut again = Memory::default();
    let report = apply_all(&w.ops(), &mut again).await;
    assert_eq!((report.created, report.already, report.failed), (0, 2, 0));
    assert!(again.kept.is_empty());
    assert!(matches!(report.outcomes[0].1, ApplyOutcome::AlreadyReplaced(Some(_))));
}

#[tokio::test]
async fn a_failing_sink_stops_creation_and_loses_no_secret() {
    let w = World::new().await;
    for _ in 0..3 {
        w.v1("carol", TokenSpec::default()).await;
    }
    // A file that fails: the secret is handed over in the report; nothing more is created.
    let mut sink = Memory { fail_from: Some(1), hand_over: true, ..Default::default() };
    let report = apply_all(&w.ops(), &mut sink).await;
    assert_eq!((report.created, report.failed, report.unwritten.len()), (1, 2, 1));
    assert!(report.sink_error.is_some());
    assert!(matches!(report.outcomes[1].1, ApplyOutcome::Unwritten(_)));
    assert!(matches!(report.outcomes[2].1, ApplyOutcome::NotAttempted));

    // Standard output that fails: nothing can take the secret, so its replacement goes again.
    let mut sink = Memory { fail_from: Some(0), hand_over: false, ..Default::default() };
    let report = apply_all(&w.ops(), &mut sink).await;
    let ApplyOutcome::Withdrawn(gone) = report.outcomes[2].1 else { panic!("{:?}", report.outcomes[2].1) };
    assert!(w.store.token(gone).await.unwrap().is_none());
    assert_eq!(plan_of(&w.ops()).await.to_create(OffsetDateTime::now_utc()), 1);
}

#[tokio::test]
async fn finalize_disables_used_ones_and_delete_removes_them() {
    let w = World::new().await;
    let used = w.v1("dave", TokenSpec::default()).await;
    let idle = w.v1("dave", TokenSpec::default()).await;
    let none = w.v1("erin", TokenSpec { enabled: false, ..Default::default() }).await;
    apply_all(&w.ops(), &mut Memory::default()).await;
    let ops = w.ops();
    let target = LocalTarget::new(&ops);

    let report = finalize(&target, &plan_of(&ops).await, false, &mut ()).await;
    let actions: Vec<_> = report.entries.iter().map(|e| (e.v1.id, e.action.clone())).collect();
    use FinalizeAction::*;
    assert_eq!(actions, vec![(used, Waiting), (idle, Waiting), (none, AlreadyDisabled)]);

    let plan = plan_of(&ops).await;
    w.use_token(plan.items[0].replacement.as_ref().unwrap().id).await;
    let report = finalize(&target, &plan_of(&ops).await, false, &mut ()).await;
    let actions: Vec<_> = report.entries.iter().map(|e| e.action.clone()).collect();
    assert_eq!(actions, vec![Disabled, Waiting, AlreadyDisabled]);
    assert!(!w.store.token(used).await.unwrap().unwrap().token.enabled);

    // --delete: the disabled token with a replacement goes; one without a replacement stays.
    let report = finalize(&target, &plan_of(&ops).await, true, &mut ()).await;
    let actions: Vec<_> = report.entries.iter().map(|e| e.action.clone()).collect();
    assert_eq!(actions, vec![Deleted, Waiting, AlreadyDisabled]);
    assert_eq!(report.failed, 0);
    assert!(w.store.token(used).await.unwrap().is_none());
    assert!(w.store.token(none).await.unwrap().is_some());
}

#[test]
fn the_own_v1_token_is_recognised_by_its_tail() {
    let value = "0123456789abcdef0123456789abcdef01234567";
    let own = OwnToken::of(value);
    assert_eq!(own, OwnToken::V1Tail("234567".into()));
    // A v2 value, assembled so that no whole token stands in the source.
    let v2 = format!("nbt_{}.{}", "eOxiaUBB7417", "wTbg8d65KYLMH3bHQ9zULCrxTXiNiug1jIm63wnU");
    assert_eq!(OwnToken::of(&v2), OwnToken::NotV1);
    let caller = Caller { user_id: Some(1), username: "u".into(), sees_all: Some(true), own };
    let mut t = TokenInfo {
        id: 1,
        version: TokenVersion::V1,
        user_id: 1,
        username: "u".into(),
        display: format!("{}234567", "*".repeat(34)),
        description: String::new(),
        created: OffsetDateTime::UNIX_EPOCH,
        expires: None,
        last_used: None,
        last_used_ip: None,
        last_used_user_agent: None,
        enabled: true,
        write_enabled: true,
        allowed_ips: AllowedIps::default(),
        pepper_id: None,
    };
    assert!(caller.may_be_own(&t));
    t.user_id = 2;
    assert!(!caller.may_be_own(&t), "another user's token");
    assert!(!Caller::operator().may_be_own(&t));
}

/// A remote-like target in memory: the caller authenticates with v1 token #1.
struct Fake {
    tokens: Vec<TokenInfo>,
    revoked: std::sync::Mutex<Vec<i64>>,
}

impl Target for Fake {
    async fn tokens(&self) -> Result<Vec<TokenInfo>, TargetError> {
        Ok(self.tokens.clone())
    }

    async fn caller(&self) -> Result<Caller, TargetError> {
        let own = OwnToken::of("0123456789abcdef0123456789abcdef01234567");
        Ok(Caller { user_id: Some(1), username: "frank".into(), sees_all: Some(true), own })
    }

    async fn create_replacement(&self, _: &Replacement) -> Result<(TokenInfo, SecretString), TargetError> {
        Err("not here".into())
    }

    async fn disable(&self, id: i64) -> Result<(), TargetError> {
        self.revoked.lock().unwrap().push(id);
        if id == 3 {
            return Err("the server answered 403 Forbidden".into());
        }
        Ok(())
    }

    async fn delete(&self, _: i64) -> Result<(), TargetError> {
        Err("not here".into())
    }

    fn describe(&self) -> String {
        "fake".into()
    }
}

#[tokio::test]
async fn finalize_revokes_its_own_token_last_and_goes_past_a_refusal() {
    let t = |id: i64, version: TokenVersion, display: &str, description: &str, used: bool| TokenInfo {
        id,
        version,
        user_id: 1,
        username: "frank".into(),
        display: display.into(),
        description: description.into(),
        created: OffsetDateTime::UNIX_EPOCH,
        expires: None,
        last_used: used.then_some(OffsetDateTime::UNIX_EPOCH + Duration::seconds(1)),
        last_used_ip: None,
        last_used_user_agent: None,
        enabled: true,
        write_enabled: true,
        allowed_ips: AllowedIps::default(),
        pepper_id: None,
    };
    let own = format!("{}234567", "*".repeat(34));
    let other = format!("{}aaaaaa", "*".repeat(34));
    let fake = Fake {
        tokens: vec![
            t(1, TokenVersion::V1, &own, "", false),
            t(2, TokenVersion::V1, &other, "", false),
            t(3, TokenVersion::V1, &other, "", false),
            t(11, TokenVersion::V2, "k1", "[replaces v1 #1]", true),
            t(12, TokenVersion::V2, "k2", "[replaces v1 #2]", true),
            t(13, TokenVersion::V2, "k3", "[replaces v1 #3]", true),
        ],
        revoked: Default::default(),
    };
    struct Heard(Vec<i64>);
    impl Observer for Heard {
        fn revoking_own(&mut self, v1: &TokenInfo, _: bool) {
            self.0.push(v1.id);
        }
    }
    let mut heard = Heard(Vec::new());
    let plan = Plan::read(&fake, &mut ()).await.unwrap();
    let report = finalize(&fake, &plan, false, &mut heard).await;
    assert_eq!(*fake.revoked.lock().unwrap(), vec![2, 3, 1], "its own token last");
    assert_eq!(heard.0, vec![1]);
    assert_eq!(report.failed, 1);
    let actions: Vec<_> = report.entries.iter().map(|e| (e.v1.id, e.action.clone())).collect();
    assert_eq!(
        actions,
        vec![
            (1, FinalizeAction::Disabled),
            (2, FinalizeAction::Disabled),
            (3, FinalizeAction::Failed("the server answered 403 Forbidden".into())),
        ]
    );
}
