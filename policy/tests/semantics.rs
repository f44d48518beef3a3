//! Semantics tests: the evaluator against the transcribed upstream
//! conformance tables, and the compiled dataplane entries against the
//! evaluator (conformance cases and random property tests).

// Strategies and helpers outside #[test] functions panic on impossible input too.
#![allow(clippy::unwrap_used)]

#[path = "../../tests/conformance/suite.rs"]
mod suite;

mod semantics {
    pub mod agreement;
    pub mod dataplane;
    pub mod netpol_cases;
}
