//! The HTTP API's wire types, defined once: the function builds its answers from them,
//! the client and the tests read answers into them, and a test holds them to
//! `openapi.yaml`. serde only, so a client links no model runtime.

pub mod error;
pub mod info;
pub mod media;
pub mod predict;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use info::{FloatRange, Health, InputSpec, IntRange, Limits, ModelInfo};
pub use predict::{
    BatchPredictResponse, ImageResult, Images, PredictAnswer, PredictRequest, PredictResponse, Prediction, RequestError,
};

/// Default `top_k` when a request names none.
pub const DEFAULT_TOP_K: usize = 5;
