//! The controller against real processes: the sample service started from
//! artifacts, an in-process router, traffic through it.

mod support;

mod blue_green;
mod canary;
mod instances;
mod manual;
mod recover;
