//! The one way an exported model is run: tract-onnx, f16-stored weights expanded, batch
//! norms folded into the convs before them, the input fixed to one uint8 image, optimised
//! once. `trainer evaluate`, the export check and the function all score through it, so
//! their answers agree.

mod classifier;
mod error;
pub mod fold;
pub mod half;
pub mod saliency;
#[cfg(test)]
mod test_graphs;
#[cfg(test)]
mod tract_kernels;

pub use classifier::{Answer, Classifier, Conformal, Plan, metadata_of, parse_proto};
pub use error::ModelError;
