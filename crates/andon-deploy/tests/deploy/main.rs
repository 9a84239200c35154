//! The controller against real processes: the sample service started from
//! artifacts, an in-process router, traffic through it.

// Tests: a panic is a failed test with a line number.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod external;
mod support;

mod blue_green;
mod canary;
mod containers;
mod haproxy;
mod instances;
mod manual;
mod podman;
mod prometheus;
mod recover;
