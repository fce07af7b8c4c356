//! Test-time augmentation: which views of each image the exported graph averages.
//!
//! Each view is a pair of index lists (rows, columns) into the 32x32 image, so burn's
//! forward pass (`select`) and the ONNX graph (`Gather`) build the same views from one
//! definition, and the parity check at export compares like with like.

use contract::IMAGE_SIDE;
use serde::{Deserialize, Serialize};

/// The views averaged at inference (airbench's TTA levels: mirror, then the +/-1-pixel
/// shifts of the image and of its mirror).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tta {
    pub mirror: bool,
    pub shift: bool,
}

/// One view: output pixel (i, j) is input pixel (rows[i], cols[j]); `weight` is its
/// share of the averaged logits.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub rows: Vec<i64>,
    pub cols: Vec<i64>,
    pub weight: f32,
}

impl View {
    /// Whether the view is the image as it is (no gather needed).
    pub fn is_identity(&self) -> bool {
        is_identity(&self.rows) && is_identity(&self.cols)
    }
}

/// Whether gathering by `index` leaves the axis as it is.
pub fn is_identity(index: &[i64]) -> bool {
    index.iter().enumerate().all(|(i, &v)| v == i as i64)
}

/// Indices of a one-pixel shift with reflect padding, as the training translate pads:
/// `-1` moves content down/right (row 0 is the reflection of row 1), `+1` up/left.
fn shifted(by: i64) -> Vec<i64> {
    let last = IMAGE_SIDE as i64 - 1;
    (0..=last)
        .map(|i| {
            let j = i + by;
            if j < 0 {
                -j
            } else if j > last {
                2 * last - j
            } else {
                j
            }
        })
        .collect()
}

impl Tta {
    /// The name written into the model's metadata (`contract::meta::TTA`).
    pub fn name(self) -> &'static str {
        match (self.mirror, self.shift) {
            (false, false) => "none",
            (true, false) => "mirror",
            (false, true) => "shift",
            (true, true) => "mirror+shift",
        }
    }

    /// The views, the unaugmented image first. Half the weight goes to the unshifted views
    /// and half to the shifted ones (airbench's weighting), each half split evenly.
    pub fn views(self) -> Vec<View> {
        let straight = shifted(0);
        let mut groups: Vec<Vec<(Vec<i64>, Vec<i64>)>> = Vec::new();
        let with_mirror = |rows: Vec<i64>, cols: Vec<i64>| {
            let mut v = vec![(rows.clone(), cols.clone())];
            if self.mirror {
                v.push((rows, cols.iter().rev().copied().collect()));
            }
            v
        };
        groups.push(with_mirror(straight.clone(), straight));
        if self.shift {
            let mut g = with_mirror(shifted(-1), shifted(-1));
            g.extend(with_mirror(shifted(1), shifted(1)));
            groups.push(g);
        }
        let group_weight = 1.0 / groups.len() as f32;
        groups
            .into_iter()
            .flat_map(|g| {
                let w = group_weight / g.len() as f32;
                g.into_iter().map(move |(rows, cols)| View { rows, cols, weight: w })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_and_weights_follow_airbench() {
        assert_eq!(Tta::default().views().len(), 1);
        assert!(Tta::default().views()[0].is_identity());
        let mirror = Tta {
            mirror: true,
            shift: false,
        }
        .views();
        assert_eq!(mirror.len(), 2);
        assert_eq!(mirror[1].cols[0], IMAGE_SIDE as i64 - 1);
        assert_eq!(mirror.iter().map(|v| v.weight).collect::<Vec<_>>(), [0.5, 0.5]);
        let all = Tta {
            mirror: true,
            shift: true,
        }
        .views();
        assert_eq!(all.len(), 6);
        assert_eq!(
            all.iter().map(|v| v.weight).collect::<Vec<_>>(),
            [0.25, 0.25, 0.125, 0.125, 0.125, 0.125]
        );
        let shift_only = Tta {
            mirror: false,
            shift: true,
        }
        .views();
        assert_eq!(
            shift_only.iter().map(|v| v.weight).collect::<Vec<_>>(),
            [0.5, 0.25, 0.25]
        );
    }

    #[test]
    fn shifts_reflect_at_the_border_like_padding_then_cropping() {
        // Reflect-pad by one, then crop at offset 0 (content moves down) or 2 (up).
        let side = IMAGE_SIDE as i64;
        let padded: Vec<i64> = std::iter::once(1)
            .chain(0..side)
            .chain(std::iter::once(side - 2))
            .collect();
        assert_eq!(shifted(-1), padded[0..side as usize]);
        assert_eq!(shifted(1), padded[2..side as usize + 2]);
        assert!(is_identity(&shifted(0)));
    }
}
