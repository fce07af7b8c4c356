//! Where the model looked, by occlusion: a square of the image is painted over with the
//! image's mean colour at each position of a grid, and the drop in the class's
//! probability is that cell's share. tract has no gradients, and the shipped net's last
//! feature map is 3x3, too coarse for class activation maps to place an object in a
//! corner (measured in `trainer/tests/uncertainty.rs`); occlusion works on any model, at
//! the price of one forward pass per cell.

use contract::{IMAGE_SIDE, Rgb32};

use crate::{Classifier, ModelError};

/// Side of the painted square, in pixels of the 32x32 input.
pub const PATCH: usize = 8;
/// Step between squares: half a square, so each pixel is covered by up to four.
pub const STRIDE: usize = 4;
/// Cells per side of the map: (32 - 8) / 4 + 1.
pub const SIDE: usize = (IMAGE_SIDE - PATCH) / STRIDE + 1;

/// Per cell, rows first, how much the probability of `class` fell from `probability`
/// (what the model gave it on `image` whole, from the answer already computed) when that
/// square was hidden (0 where hiding it did not lower it). `SIDE * SIDE` forward passes.
pub fn occlusion(
    classifier: &Classifier,
    image: &Rgb32,
    class: usize,
    probability: f32,
) -> Result<Vec<f32>, ModelError> {
    let pixels = (IMAGE_SIDE * IMAGE_SIDE) as u32;
    let mean: [u8; 3] =
        std::array::from_fn(|c| (image.chunks_exact(3).map(|p| u32::from(p[c])).sum::<u32>() / pixels) as u8);
    let mut hidden = Vec::with_capacity(SIDE * SIDE);
    for row in 0..SIDE {
        for col in 0..SIDE {
            let mut copy = *image;
            for y in row * STRIDE..row * STRIDE + PATCH {
                for x in col * STRIDE..col * STRIDE + PATCH {
                    copy[(y * IMAGE_SIDE + x) * 3..][..3].copy_from_slice(&mean);
                }
            }
            hidden.push(copy);
        }
    }
    Ok(classifier
        .probabilities(&hidden)?
        .iter()
        .map(|row| (probability - row[class]).max(0.0))
        .collect())
}
