//! Where published models live and how one becomes the served one: a store (an S3
//! bucket and prefix, or a folder), publishing under content-addressed keys, listing, and
//! promoting by moving `models/latest.json`. Used by the trainer's CLI and the e2e tests;
//! the function reads the same store through `contract`'s pointer format.

pub mod error;
pub mod publish;
pub mod releases;
pub mod s3;
pub mod store;

pub use error::{RegistryError, Result};
pub use publish::{Pointer, Published, publish, publish_model};
pub use releases::{PublishedModel, list, promote};
pub use store::Store;
