//! `POST /feedback`: a user's correction of an answer, naming the label it should have been
//! and either the request it corrects (a captured prediction) or the image itself.

use serde::{Deserialize, Serialize};

/// A correction. Exactly one of `request_id` and `image`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// One of the model's own labels (`GET /model`).
    pub label: String,
    /// The `x-request-id` of the answer being corrected. Capture is sampled and
    /// asynchronous, so it is stored as given; the trainer joins it with the captured
    /// records and counts the ones it cannot find.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The image, base64 or a data URL, as in `POST /predict`; stored as the 32x32 image
    /// the model sees, never the upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// What a stored correction answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackResponse {
    /// The correction's own id (the id of the `POST /feedback` request).
    pub feedback_id: String,
    /// The model serving when the correction arrived.
    pub model_version: String,
}

/// Largest `POST /feedback` body: one image, already shrunk by a client (the page sends
/// at most 512 px), with room to spare.
pub const DEFAULT_MAX_FEEDBACK_BYTES: usize = 1_000_000;
