//! Trainer: data, model, training, export and publishing in separate modules,
//! as burn's examples split them.

pub mod backend;
pub mod bench;
pub mod calibration;
pub mod config;
pub mod data;
pub mod error;
pub mod export;
pub mod lookahead;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod models;
pub mod muon;
pub mod plots;
pub mod publish;
pub mod run;
pub mod store;
pub mod training;
pub mod tta;

pub use error::{Result, TrainError};
