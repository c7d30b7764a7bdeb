//! Layer composition: `strata.toml` projects of `layer.toml` layers, their
//! dependency graph, and the checks on composed images.

pub mod build;
pub mod cache;
pub mod check;
pub mod debsrc;
pub mod env;
pub mod graph;
pub mod layertest;
pub mod lock;
pub mod plan;
pub mod project;
pub mod repro;
pub mod step;

pub use graph::Graph;
pub use project::Project;
