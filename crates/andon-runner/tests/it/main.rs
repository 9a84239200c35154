//! The runner's behaviour, end to end: real processes, real git repositories.
//!
//! One test binary (modules below) so the crate links once.

// Helpers outside #[test] fns unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod artifacts;
mod bwrap;
mod checkout;
mod container;
mod junit;
mod kill;
mod logs;
// One private-Podman helper for both crates' container tests.
#[path = "../../../andon-deploy/tests/deploy/podman.rs"]
mod podman;
mod schedule;
