//! End-to-end tests of the router over real sockets on 127.0.0.1: in-process router, in-test
//! backends, a plain hyper client. Every loop is bounded in count and time.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod admin;
mod mirror;
mod resilience;
mod split;
mod switch;
