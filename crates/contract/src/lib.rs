//! The facts the trainer and the function must agree on, defined once: class labels,
//! the ONNX input/output contract, metadata keys, pixel preprocessing, the published
//! model pointer and model locations. Running a model is `inference`'s; talking to S3 is
//! `registry`'s.

pub mod capture;
pub mod conformal;
pub mod error;
pub mod location;
pub mod pointer;
pub mod preprocess;
pub mod scores;

pub use error::ImageError;
pub use location::Location;
pub use pointer::{Candidate, ModelPointer, Split, sha256_hex};
pub use preprocess::{DecodeLimits, Rgb32, decode_rgb32};
pub use scores::{argmax, top_k};

/// CIFAR-10 class names in label order (0..9), as the official release numbers them.
pub const CIFAR10_LABELS: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Side of the square input the model sees.
pub const IMAGE_SIDE: usize = 32;
/// RGB.
pub const CHANNELS: usize = 3;
/// Bytes in one preprocessed image (HWC, uint8).
pub const IMAGE_BYTES: usize = IMAGE_SIDE * IMAGE_SIDE * CHANNELS;

/// Name of the graph input: uint8 `[N, 32, 32, 3]`, RGB, NHWC.
pub const INPUT_NAME: &str = "image";
/// Name of the graph output: float32 `[N, classes]`, softmax.
pub const OUTPUT_NAME: &str = "probabilities";
/// Optional output: float32 `[N]`, the energy of the calibrated logits
/// (-logsumexp): higher means further from the training data.
pub const OOD_OUTPUT: &str = "ood_score";

/// Per-channel mean and standard deviation (0-255 scale) of the CIFAR-10 training set.
/// The exported graph normalises with these; the trainer normalises with the same numbers.
pub const CHANNEL_MEAN: [f32; 3] = [125.307, 122.950, 113.865];
pub const CHANNEL_STD: [f32; 3] = [62.993, 62.089, 66.705];

/// Keys of the ONNX `metadata_props` the trainer writes and the function reads.
pub mod meta {
    /// JSON array of class names in output order.
    pub const LABELS: &str = "labels";
    /// Stable content id of the weights (sha256 prefix of the weight bytes).
    pub const MODEL_VERSION: &str = "model_version";
    pub const DATASET: &str = "dataset";
    pub const VAL_ACCURACY: &str = "val_accuracy";
    pub const TRAINED_AT: &str = "trained_at";
    /// JSON of the training config.
    pub const CONFIG: &str = "config";
    /// Softmax temperature already applied inside the graph (absent: 1).
    pub const TEMPERATURE: &str = "temperature";
    /// Validation expected calibration error (15 bins) of the graph's probabilities.
    pub const VAL_ECE: &str = "val_ece";
    /// Test-time augmentation inside the graph: "mirror" or "none".
    pub const TTA: &str = "tta";
    /// JSON of the validation split's profile (predicted classes, confidence, image
    /// statistics), the reference `trainer drift` compares captured traffic with.
    pub const REFERENCE_PROFILE: &str = "reference_profile";
    /// Accuracy on the held-out share of users' corrections, when trained with them.
    pub const REAL_TRAFFIC_ACCURACY: &str = "real_traffic_accuracy";
    /// The coverage level the prediction sets promise (e.g. 0.9).
    pub const COVERAGE: &str = "conformal_coverage";
    /// The conformal score threshold fitted for that level (see `conformal`).
    pub const CONFORMAL_THRESHOLD: &str = "conformal_threshold";
    /// `ood_score` above this is flagged out of distribution.
    pub const OOD_THRESHOLD: &str = "ood_threshold";
    /// Every key a valid model carries.
    pub const REQUIRED: [&str; 6] = [LABELS, MODEL_VERSION, DATASET, VAL_ACCURACY, TRAINED_AT, CONFIG];
}
