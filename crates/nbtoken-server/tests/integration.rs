//! The server's integration tests, one binary (`cargo test -p nbtoken-server --test integration`):
//! each module is one area, run over a real socket against SQLite and, where
//! `NBTOKEN_TEST_DATABASE_URL` is set, PostgreSQL. One binary links once.

#![allow(clippy::unwrap_used, missing_docs)]

#[macro_use]
mod harness;

mod api;
mod bad_input;
mod cluster_budgets;
mod disk_full;
mod echo;
mod enumeration;
mod escalation;
mod forward_auth;
mod http_edge;
mod limits;
mod metrics;
mod openapi;
mod pg_outage;
mod resilience;
mod slow_clients;
mod teardown;
mod ui;
