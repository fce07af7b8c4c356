//! Error answers: a stable `code` clients switch on, and a message that says what to fix.

use serde::{Deserialize, Serialize};

/// Every refusal the API answers with, and the HTTP status that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    MissingImage,
    AmbiguousRequest,
    InvalidImageField,
    EmptyBatch,
    InvalidBase64,
    InvalidBodyEncoding,
    InvalidImage,
    EmptyBody,
    InvalidTopK,
    InvalidMinProbability,
    InvalidExplain,
    InvalidLabel,
    InvalidFeedback,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    TooManyImages,
    ImageTooLarge,
    UnsupportedMediaType,
    MissingContentType,
    UnsupportedImageFormat,
    InferenceFailed,
    FeedbackUnavailable,
}

impl ErrorCode {
    /// All codes, in the order `openapi.yaml` lists them.
    pub const ALL: [ErrorCode; 25] = [
        Self::InvalidJson,
        Self::MissingImage,
        Self::AmbiguousRequest,
        Self::InvalidImageField,
        Self::EmptyBatch,
        Self::InvalidBase64,
        Self::InvalidBodyEncoding,
        Self::InvalidImage,
        Self::EmptyBody,
        Self::InvalidTopK,
        Self::InvalidMinProbability,
        Self::InvalidExplain,
        Self::InvalidLabel,
        Self::InvalidFeedback,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::PayloadTooLarge,
        Self::TooManyImages,
        Self::ImageTooLarge,
        Self::UnsupportedMediaType,
        Self::MissingContentType,
        Self::UnsupportedImageFormat,
        Self::InferenceFailed,
        Self::FeedbackUnavailable,
    ];

    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidJson
            | MissingImage
            | AmbiguousRequest
            | InvalidImageField
            | EmptyBatch
            | InvalidBase64
            | InvalidBodyEncoding
            | InvalidImage
            | EmptyBody
            | InvalidTopK
            | InvalidMinProbability
            | InvalidExplain
            | InvalidLabel
            | InvalidFeedback => 400,
            Forbidden => 403,
            NotFound => 404,
            MethodNotAllowed => 405,
            PayloadTooLarge | TooManyImages | ImageTooLarge => 413,
            UnsupportedMediaType | MissingContentType | UnsupportedImageFormat => 415,
            InferenceFailed => 500,
            FeedbackUnavailable => 503,
        }
    }

    /// The wire name (`invalid_top_k`), for logs.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidJson => "invalid_json",
            MissingImage => "missing_image",
            AmbiguousRequest => "ambiguous_request",
            InvalidImageField => "invalid_image_field",
            EmptyBatch => "empty_batch",
            InvalidBase64 => "invalid_base64",
            InvalidBodyEncoding => "invalid_body_encoding",
            InvalidImage => "invalid_image",
            EmptyBody => "empty_body",
            InvalidTopK => "invalid_top_k",
            InvalidMinProbability => "invalid_min_probability",
            InvalidExplain => "invalid_explain",
            InvalidLabel => "invalid_label",
            InvalidFeedback => "invalid_feedback",
            Forbidden => "forbidden",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            PayloadTooLarge => "payload_too_large",
            TooManyImages => "too_many_images",
            ImageTooLarge => "image_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            MissingContentType => "missing_content_type",
            UnsupportedImageFormat => "unsupported_image_format",
            InferenceFailed => "inference_failed",
            FeedbackUnavailable => "feedback_unavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// The request's id, as in the `x-request-id` header and the logs: what a user quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The body of every error answer: `{"error": {"code", "message", "request_id"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
                request_id: None,
            },
        }
    }

    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.error.request_id = Some(id.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert_eq!(serde_json::from_value::<ErrorCode>(code.as_str().into()).unwrap(), code);
        }
    }
}
