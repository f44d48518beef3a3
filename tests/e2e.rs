//! End-to-end tests on the real kernel: labs of network namespaces wired by
//! the real CNI plugins, real agents, real traffic. Every test builds its own
//! uniquely named lab and tears it down on drop, even when it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "conformance/suite.rs"]
mod suite;
mod support;

mod e2e {
    mod agents;
    mod api;
    mod blocks;
    mod closed_loop;
    mod conformance;
    mod console;
    mod controller;
    mod exposure;
    mod flood;
    mod fuzz;
    mod hub;
    mod image;
    mod install;
    mod lifecycle;
    mod listening;
    mod malformed;
    mod policy;
    mod quarantine;
    mod restart;
    mod scan;
    mod services;
    mod trail;
    mod types;
}
