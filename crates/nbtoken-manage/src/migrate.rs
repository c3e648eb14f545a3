//! Moving from v1 to v2 tokens as one operation: plan -> actions -> report, the same
//! for the local store and a remote NetBox-compatible API.
//!
//! Core's [`nbtoken_core::migrate`] decides what happens to each v1 token; this module
//! does it against a [`Target`], in the order that keeps a run safe, and returns what
//! happened as a report for a front end to render. Every v1 token gets an outcome: one
//! refused token never stops the others. No secret is created before its destination
//! is open (the caller opens the [`SecretSink`] first), and each is handed to the sink
//! as soon as it exists.

use std::future::Future;

use nbtoken_core::migrate::{
    apply_decision, finalize_acts, finalize_decision, plan as pair, Apply, Finalize, PlanItem, Replacement,
    TokenInfo,
};
use nbtoken_core::{SecretString, TokenVersion, V1Plaintext};
use time::OffsetDateTime;

mod actor;
mod local;
#[cfg(test)]
mod tests;

pub use local::LocalTarget;

/// Why a target could not do something; its text (with its sources) goes into reports.
pub type TargetError = Box<dyn std::error::Error + Send + Sync>;

/// Where tokens live: the local store or a remote API. Core's planner does the thinking.
pub trait Target: Sync {
    /// Every token (v1 and v2) the migration needs to see.
    fn tokens(&self) -> impl Future<Output = Result<Vec<TokenInfo>, TargetError>> + Send;
    /// Who the operations act as.
    fn caller(&self) -> impl Future<Output = Result<Caller, TargetError>> + Send;
    /// Creates the v2 replacement of a v1 token; returns it and its full `nbt_…` value.
    fn create_replacement(
        &self,
        replacement: &Replacement,
    ) -> impl Future<Output = Result<(TokenInfo, SecretString), TargetError>> + Send;
    /// Disables a token.
    fn disable(&self, id: i64) -> impl Future<Output = Result<(), TargetError>> + Send;
    /// Deletes a token.
    fn delete(&self, id: i64) -> impl Future<Output = Result<(), TargetError>> + Send;
    /// Where this is, for messages.
    fn describe(&self) -> String;
}

/// The identity behind a target: whether it sees every token, and which v1
/// token (if any) is the credential the operations themselves authenticate with.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The authenticated user's id (`None` for the local store).
    pub user_id: Option<i64>,
    /// For messages.
    pub username: String,
    /// `Some(true)`: sees every token; `Some(false)`: only some; `None`: cannot tell.
    pub sees_all: Option<bool>,
    /// The operations' own credential.
    pub own: OwnToken,
}

impl Caller {
    /// The operator of the local store: sees every token and authenticates with none.
    pub fn operator() -> Self {
        Self { user_id: None, username: "the local store".into(), sees_all: Some(true), own: OwnToken::NotV1 }
    }

    /// Whether `t` may be the token the operations authenticate with.
    pub fn may_be_own(&self, t: &TokenInfo) -> bool {
        match &self.own {
            OwnToken::NotV1 => false,
            OwnToken::V1Tail(tail) => {
                t.version == TokenVersion::V1
                    && self.user_id.is_none_or(|id| id == t.user_id)
                    && t.display.ends_with(tail.as_str())
            }
        }
    }
}

/// The operations' own credential, as far as it can be recognised in a token list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnToken {
    /// Not a token (the local store) or not a v1 token: finalize cannot revoke it.
    NotV1,
    /// A v1 token, recognised by the last six characters NetBox shows in its `display`.
    V1Tail(String),
}

impl OwnToken {
    /// From the token value sent: the tail of core's sanitised v1 form, as NetBox shows it.
    pub fn of(token: &str) -> Self {
        match V1Plaintext::parse(token) {
            Ok(v1) => {
                let shown = v1.partial();
                // `partial` is ASCII and at least six characters long.
                OwnToken::V1Tail(shown[shown.len().saturating_sub(6)..].to_owned())
            }
            Err(_) => OwnToken::NotV1,
        }
    }
}

/// What a front end hears while an operation runs, to warn and show progress in time.
/// Every method does nothing by default.
pub trait Observer {
    /// The caller is known, before any token is read: the place to warn about a partial view.
    fn caller(&mut self, _caller: &Caller, _target: &str) {}
    /// A replacement is about to be created.
    fn creating(&mut self, _v1: &TokenInfo) {}
    /// The operations' own credential is about to be revoked, after every other token.
    fn revoking_own(&mut self, _v1: &TokenInfo, _delete: bool) {}
}

/// An observer that hears nothing.
impl Observer for () {}

/// Why an operation stopped before acting on any token.
#[derive(Debug)]
#[non_exhaustive]
pub enum MigrateError {
    /// The target could not tell who the caller is or list the tokens.
    Target(TargetError),
}

impl std::fmt::Display for MigrateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrateError::Target(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for MigrateError {
    // Transparent: the target's own causes follow its message.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MigrateError::Target(e) => e.source(),
        }
    }
}

/// Who the operations act as, and the tokens they see (the audit reads the same).
pub async fn read<T: Target>(
    target: &T,
    observer: &mut impl Observer,
) -> Result<(Caller, Vec<TokenInfo>), MigrateError> {
    let caller = target.caller().await.map_err(MigrateError::Target)?;
    observer.caller(&caller, &target.describe());
    let tokens = target.tokens().await.map_err(MigrateError::Target)?;
    Ok((caller, tokens))
}

/// The v1 tokens of a target, each with its replacement if one exists.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Who the operations act as.
    pub caller: Caller,
    /// One item per v1 token, by id.
    pub items: Vec<PlanItem>,
}

impl Plan {
    /// Reads the target and pairs every v1 token with its replacement.
    pub async fn read<T: Target>(target: &T, observer: &mut impl Observer) -> Result<Self, MigrateError> {
        let (caller, tokens) = read(target, observer).await?;
        Ok(Plan { caller, items: pair(&tokens) })
    }

    /// How many replacements [`apply`] would create at `now`.
    pub fn to_create(&self, now: OffsetDateTime) -> usize {
        self.items.iter().filter(|i| apply_decision(i, now) == Apply::Create).count()
    }
}

/// One new v2 secret, for the [`SecretSink`]: shown once, never stored.
#[derive(Clone, Debug)]
pub struct NewSecret {
    /// The v1 token replaced.
    pub v1_id: i64,
    /// Its owner's name.
    pub user: String,
    /// The replacement's id.
    pub replacement_id: i64,
    /// The replacement's key (its display form).
    pub key: String,
    /// The full value, `nbt_<key>.<secret>`.
    pub token: SecretString,
}

/// Where [`apply`] hands each new secret, opened and checked before anything is created.
pub trait SecretSink {
    /// Keeps one secret; when this returns `Ok`, the secret is safe (on disk, or with the reader).
    fn push(&mut self, secret: &NewSecret) -> std::io::Result<()>;
    /// Whether a secret this sink failed to keep can still be handed over some other way
    /// (the report's `unwritten`). If not, its replacement is deleted again.
    fn can_hand_over(&self) -> bool;
    /// Ends the output once every secret was pushed.
    fn finish(&mut self) -> std::io::Result<()>;
}

/// What [`apply`] did with one v1 token.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApplyOutcome {
    /// A replacement exists already (its id, if known).
    AlreadyReplaced(Option<i64>),
    /// Skipped for the reason core gives ([`Apply::reason`]).
    Skipped(Apply),
    /// Not attempted: the secrets destination had failed before.
    NotAttempted,
    /// The target refused to create the replacement.
    Failed(String),
    /// Created, and its secret kept by the sink.
    Created {
        /// The replacement's id.
        id: i64,
        /// Its display form.
        display: String,
    },
    /// Created, but the sink failed: the secret is in the report's `unwritten`.
    Unwritten(i64),
    /// Created, the sink failed and nothing could hand it over: deleted again.
    Withdrawn(i64),
    /// Created, the sink failed, and deleting it failed too: someone must delete it.
    WithdrawFailed {
        /// The replacement's id.
        id: i64,
        /// Why deleting it failed.
        error: String,
    },
}

impl ApplyOutcome {
    /// Whether this outcome counts as a failure of the run.
    pub fn failed(&self) -> bool {
        matches!(
            self,
            ApplyOutcome::NotAttempted
                | ApplyOutcome::Failed(_)
                | ApplyOutcome::Unwritten(_)
                | ApplyOutcome::Withdrawn(_)
                | ApplyOutcome::WithdrawFailed { .. }
        )
    }
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Each v1 token (by id) and its outcome.
    pub outcomes: Vec<(TokenInfo, ApplyOutcome)>,
    /// Replacements created, their secret kept.
    pub created: usize,
    /// v1 tokens that had a replacement already.
    pub already: usize,
    /// v1 tokens skipped (disabled, expired).
    pub skipped: usize,
    /// v1 tokens that did not get a usable replacement.
    pub failed: usize,
    /// Secrets the sink failed to keep, to be handed over now.
    pub unwritten: Vec<NewSecret>,
    /// The sink's first failure: nothing was created after it.
    pub sink_error: Option<std::io::Error>,
}

/// Creates the missing replacements of `plan` (decided at `now`), handing each secret
/// to `sink` as it is created. After the sink first fails nothing more is created.
pub async fn apply<T: Target>(
    target: &T,
    plan: &Plan,
    now: OffsetDateTime,
    sink: &mut impl SecretSink,
    observer: &mut impl Observer,
) -> ApplyReport {
    let mut report = ApplyReport::default();
    for item in &plan.items {
        let v1 = &item.v1;
        let outcome = match apply_decision(item, now) {
            Apply::AlreadyReplaced => {
                report.already += 1;
                ApplyOutcome::AlreadyReplaced(item.replacement.as_ref().map(|r| r.id))
            }
            d @ (Apply::SkipDisabled | Apply::SkipExpired) => {
                report.skipped += 1;
                ApplyOutcome::Skipped(d)
            }
            Apply::Create if report.sink_error.is_some() => ApplyOutcome::NotAttempted,
            Apply::Create => {
                observer.creating(v1);
                create(target, v1, sink, &mut report).await
            }
        };
        if outcome.failed() {
            report.failed += 1;
        } else if matches!(outcome, ApplyOutcome::Created { .. }) {
            report.created += 1;
        }
        report.outcomes.push((v1.clone(), outcome));
    }
    if let Err(e) = sink.finish() {
        report.sink_error.get_or_insert(e);
    }
    tracing::info!(created = report.created, failed = report.failed, "migration apply finished");
    report
}

/// Creates one replacement and hands its secret over. A replacement whose secret
/// cannot be handed over at all is deleted again (a re-run then creates a new one).
async fn create<T: Target>(
    target: &T,
    v1: &TokenInfo,
    sink: &mut impl SecretSink,
    report: &mut ApplyReport,
) -> ApplyOutcome {
    let (r, token) = match target.create_replacement(&Replacement::of(v1)).await {
        Ok(created) => created,
        Err(e) => return ApplyOutcome::Failed(chain(&*e)),
    };
    let secret = NewSecret {
        v1_id: v1.id,
        user: v1.username.clone(),
        replacement_id: r.id,
        key: r.display.clone(),
        token,
    };
    let Err(e) = sink.push(&secret) else {
        return ApplyOutcome::Created { id: r.id, display: r.display };
    };
    report.sink_error = Some(e);
    if sink.can_hand_over() {
        report.unwritten.push(secret);
        return ApplyOutcome::Unwritten(r.id);
    }
    match target.delete(r.id).await {
        Ok(()) => ApplyOutcome::Withdrawn(r.id),
        Err(e) => ApplyOutcome::WithdrawFailed { id: r.id, error: chain(&*e) },
    }
}

/// What [`finalize`] did with one v1 token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FinalizeAction {
    /// Deleted (`--delete`).
    Deleted,
    /// Disabled.
    Disabled,
    /// Already disabled: nothing to do.
    AlreadyDisabled,
    /// Its replacement has not been used yet.
    Waiting,
    /// It has no replacement yet.
    NoReplacement,
    /// Revoking it failed; it is as it was.
    Failed(String),
}

/// One line of [`FinalizeReport`].
#[derive(Clone, Debug)]
pub struct FinalizeEntry {
    /// The v1 token, as it was before.
    pub v1: TokenInfo,
    /// Its replacement's id.
    pub replacement_id: Option<i64>,
    /// What was done.
    pub action: FinalizeAction,
}

/// What [`finalize`] did, by v1 token id.
#[derive(Clone, Debug, Default)]
pub struct FinalizeReport {
    /// One entry per v1 token, by id.
    pub entries: Vec<FinalizeEntry>,
    /// How many could not be revoked.
    pub failed: usize,
}

/// Revokes the v1 tokens whose replacement has been used (core's [`finalize_acts`]):
/// disables them, or with `delete` deletes them. The token the operations authenticate
/// with goes last: revoking it first would cut the branch the rest of the run sits on.
pub async fn finalize<T: Target>(
    target: &T,
    plan: &Plan,
    delete: bool,
    observer: &mut impl Observer,
) -> FinalizeReport {
    let (own, others): (Vec<&PlanItem>, Vec<&PlanItem>) =
        plan.items.iter().partition(|i| plan.caller.may_be_own(&i.v1));
    let mut report = FinalizeReport::default();
    for i in others.iter().chain(own.iter()) {
        let revoke = finalize_acts(i, delete);
        if revoke && plan.caller.may_be_own(&i.v1) {
            observer.revoking_own(&i.v1, delete);
        }
        let action = if revoke {
            let done = if delete { target.delete(i.v1.id).await } else { target.disable(i.v1.id).await };
            match done {
                Ok(()) if delete => FinalizeAction::Deleted,
                Ok(()) => FinalizeAction::Disabled,
                Err(e) => {
                    report.failed += 1;
                    FinalizeAction::Failed(chain(&*e))
                }
            }
        } else {
            match finalize_decision(i) {
                Finalize::AlreadyRevoked => FinalizeAction::AlreadyDisabled,
                Finalize::Waiting => FinalizeAction::Waiting,
                Finalize::NoReplacement | Finalize::Revoke => FinalizeAction::NoReplacement,
            }
        };
        report.entries.push(FinalizeEntry {
            v1: i.v1.clone(),
            replacement_id: i.replacement.as_ref().map(|r| r.id),
            action,
        });
    }
    report.entries.sort_by_key(|e| e.v1.id);
    report
}

/// An error and its causes, `outer: inner: innermost`, as reports show them.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}
