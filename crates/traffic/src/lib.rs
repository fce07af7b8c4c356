//! What real users sent, read back for the trainer: captured predictions exactly as the
//! stack's Firehose stream writes them (gzipped CloudWatch Logs envelopes) or as the
//! function prints them (JSON lines), users' corrections joined to them, and a drift
//! report against the profile a model carries from its validation split.

pub mod drift;
pub mod error;
pub mod join;
pub mod profile;
pub mod read;

pub use error::{Result, TrafficError};
