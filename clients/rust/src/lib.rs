//! Clients of a deployed endpoint: classify files, and score the endpoint on a labelled
//! folder with bounded concurrency, retries with backoff, and latency percentiles.
//! Answers are read into the API's own types.

pub mod error;
pub mod evaluate;
pub mod http;

pub use error::ClientError;
pub use evaluate::{EndpointReport, evaluate};
pub use http::{Answer, Client, ClientOptions, Reply};
