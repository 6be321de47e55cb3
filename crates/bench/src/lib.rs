//! agora-bench: load generation, result model, charts and reports.

pub mod engine;
pub mod model;
pub mod report;
pub mod shop;
pub mod social;
pub mod ugc_storage;
