//! Integration tests of nbtoken-client, compiled as one binary: against a
//! real nbtoken server started in-process, and against a scripted responder
//! for what a healthy server never does (503s, hang-ups, stalls).

#![allow(clippy::unwrap_used)]

mod harness;
mod responder;
mod server;
mod wire;
