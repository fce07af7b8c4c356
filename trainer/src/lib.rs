//! Trainer: data, model, training and export in separate modules, as burn's examples
//! split them. Publishing is the `registry` crate's.

pub mod backend;
pub mod calibration;
pub mod cli;
pub mod config;
pub mod data;
pub mod error;
pub mod export;
pub mod lookahead;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod muon;
pub mod ood;
pub mod plots;
pub mod run;
pub mod sharded;
pub mod training;
pub mod tta;
pub mod uncertainty;

pub use error::{Result, TrainError};
