//! Layer composition: `strata.toml` projects of `layer.toml` layers, their
//! dependency graph, and the checks on composed images.

mod assemble;
pub mod build;
pub mod cache;
pub mod check;
pub mod configure;
pub mod debfacts;
pub mod debsrc;
pub mod echo;
pub mod env;
pub mod graph;
mod hoststack;
mod inputs;
pub mod layertest;
pub mod lock;
pub mod plan;
pub mod platforms;
pub mod project;
pub mod provides;
mod publish;
pub mod regcache;
mod report;
pub mod repro;
pub mod source;
pub mod step;
pub mod suggest;
pub mod tags;
pub mod vars;
mod verify;

pub use graph::Graph;
pub use project::Project;
pub use publish::PushStats;
