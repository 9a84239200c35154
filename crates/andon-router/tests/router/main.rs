//! End-to-end tests of the router over real sockets on 127.0.0.1: in-process router, in-test
//! backends, a plain hyper client. Every loop is bounded in count and time.

mod support;

mod admin;
mod mirror;
mod resilience;
mod split;
mod switch;
