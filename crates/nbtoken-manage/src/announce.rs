//! How a change makes itself known: every operation that writes calls [`Announce`] once.
//!
//! The server's token cache implements it, so its own writes drop what it holds at once;
//! other processes learn through the store's change feed (PostgreSQL) or the cache's TTL.

/// Told of each change an operation made.
pub trait Announce: Send + Sync {
    /// Token `id` was created, changed, rotated or deleted.
    fn token_changed(&self, id: i64);
    /// User `id` was created, changed or deleted (and with it, perhaps, every token of theirs).
    fn user_changed(&self, id: i64);
}

/// Tells no one: for the CLI, whose process ends with the command.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl Announce for Quiet {
    fn token_changed(&self, _id: i64) {}
    fn user_changed(&self, _id: i64) {}
}
