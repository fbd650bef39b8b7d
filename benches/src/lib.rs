//! Benchmarks of prism-graph; see BENCHMARKS.md for what each measures and how to run it.

pub mod cost_baseline;
pub mod harness;
pub mod rmat;
