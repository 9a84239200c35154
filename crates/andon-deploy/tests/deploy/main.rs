//! The controller against real processes: the sample service started from
//! artifacts, an in-process router, traffic through it.

// Tests: a panic is a failed test with a line number.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod blue_green;
mod canary;
mod instances;
mod manual;
mod recover;
