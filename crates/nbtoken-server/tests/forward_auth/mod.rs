//! Forward-auth: the endpoint's contract over a real socket (`contract`); one end-to-end matrix
//! run behind real nginx, Caddy and HAProxy with the documented configurations (`matrix`); and
//! the Traefik and Envoy configurations, which cannot run here, checked against the option
//! names their documentation publishes (`checked_configs`).

#![allow(clippy::unwrap_used, missing_docs)]

mod checked_configs;
mod contract;
mod matrix;
mod proxies;
mod upstream;
