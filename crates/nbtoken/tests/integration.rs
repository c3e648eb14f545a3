//! The command's integration tests, one binary (`cargo test -p nbtoken --test integration`):
//! each module is one area and runs the real `nbtoken` binary. The `netbox_*` modules talk to
//! a real NetBox (`./test.sh` prepares it; without it they print a skip, and fail under `CI`).

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

mod cli;
mod database_file;
mod logs;
mod netbox_clients;
mod netbox_companion;
mod netbox_differential;
mod netbox_guard;
mod netbox_harness;
mod netbox_remote;
mod ops;
mod production;
mod provision_memory;
mod pynetbox;
mod pynetbox_tls;
mod rules;
mod scale;
mod scan;
mod secrets;
