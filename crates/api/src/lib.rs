//! The HTTP API's wire types, defined once: the function builds its answers from them,
//! the client and the tests read answers into them, and a test holds them to
//! `openapi.yaml`. serde only, so a client links no model runtime.

pub mod error;
pub mod feedback;
pub mod info;
pub mod media;
pub mod predict;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use feedback::{DEFAULT_MAX_FEEDBACK_BYTES, FeedbackRequest, FeedbackResponse};
pub use info::{
    CandidateStatus, FloatRange, Health, InputSpec, IntRange, Limits, ModelInfo, RefreshOutcome, RefreshStatus,
    UncertaintyInfo,
};
pub use predict::{
    BatchPredictResponse, ImageResult, Images, MAX_EXPLAIN_IMAGES, PredictAnswer, PredictRequest, PredictResponse,
    Prediction, RequestError, Saliency,
};

/// Response header naming the model version that produced a `POST /predict` answer.
pub const MODEL_VERSION_HEADER: &str = "x-model-version";
/// Header naming the request (API Gateway's request id): in every answer, its error body and
/// the function's log lines, so a user can quote it.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Default `top_k` when a request names none.
pub const DEFAULT_TOP_K: usize = 5;

/// The largest request body the function takes by default (`MAX_BODY_BYTES`). A raw image
/// body reaches it base64-encoded, so 4/3 its size, inside Lambda's 6 MB (6,291,456-byte)
/// invoke payload with the event's headers: 4.5 MB is the largest raw body that always
/// arrives. Over it, what arrives gets the API's own 413; what cannot arrive (raw bodies
/// over about 4.7 MB, JSON over about 6.2 MB) gets the gateway's answer.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4_500_000;
