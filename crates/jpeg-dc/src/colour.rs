//! Component planes at 1/8 scale: upsampled as jpeg-decoder does, then YCbCr to RGB.

/// One component's samples at 1/8 scale (one per block), `stride` apart per row.
pub(crate) struct Plane {
    pub(crate) data: Vec<u8>,
    pub(crate) stride: usize,
    pub(crate) width: usize,
    pub(crate) height: usize,
    /// Upsampling factors to the largest component's grid.
    pub(crate) factors: (usize, usize),
}

impl Plane {
    /// Row `y` of the plane; below the last row, the last row again (what jpeg-decoder's
    /// edge handling gives).
    pub(crate) fn row(&self, y: usize) -> &[u8] {
        let start = y.min(self.height - 1) * self.stride;
        &self.data[start..start + self.width]
    }

    /// Output row `y` at full resolution, as jpeg-decoder upsamples (and libjpeg's "fancy"
    /// upsampling): a triangle filter for factors of 2 (3/4 nearer sample, 1/4 farther),
    /// repetition for the others. A full-resolution row is borrowed, not copied.
    pub(crate) fn upsampled_row<'s>(&'s self, y: usize, out: &'s mut Vec<u8>) -> &'s [u8] {
        let (fh, fv) = self.factors;
        if (fh, fv) == (1, 1) {
            return self.row(y);
        }
        out.clear();
        // The vertical neighbour of a 2x row: the row above for even rows, below for odd.
        let (near, far) = if fv == 2 {
            let k = y / 2;
            let other = if y.is_multiple_of(2) {
                k.saturating_sub(1)
            } else {
                k + 1
            };
            (self.row(k), self.row(other))
        } else {
            (self.row(y / fv), self.row(y / fv))
        };
        let w = self.width;
        let at = |x: usize| u32::from(near[x]);
        match (fh, fv) {
            (1, 2) => out.extend(
                near.iter()
                    .zip(far)
                    .map(|(&n, &f)| ((3 * u32::from(n) + u32::from(f) + 2) >> 2) as u8),
            ),
            (2, 1) if w == 1 => out.extend([near[0]; 2]),
            (2, 1) => {
                out.resize(2 * w, 0);
                out[0] = near[0];
                out[2 * w - 1] = near[w - 1];
                // Output pixels 2x and 2x + 1 lie between inputs x and x + 1.
                for (x, pair) in out[1..2 * w - 1].chunks_exact_mut(2).enumerate() {
                    let (a, b) = (at(x), at(x + 1));
                    pair[0] = ((3 * a + b + 2) >> 2) as u8;
                    pair[1] = ((a + 3 * b + 2) >> 2) as u8;
                }
            }
            (2, 2) => {
                let t = |x: usize| 3 * u32::from(near[x]) + u32::from(far[x]);
                if w == 1 {
                    out.extend([((t(0) + 2) >> 2) as u8; 2]);
                    return out;
                }
                out.resize(2 * w, 0);
                out[0] = ((t(0) + 2) >> 2) as u8;
                out[2 * w - 1] = ((t(w - 1) + 2) >> 2) as u8;
                for (x, pair) in out[1..2 * w - 1].chunks_exact_mut(2).enumerate() {
                    let (t0, t1) = (t(x), t(x + 1));
                    pair[0] = ((3 * t0 + t1 + 8) >> 4) as u8;
                    pair[1] = ((3 * t1 + t0 + 8) >> 4) as u8;
                }
            }
            _ => {
                for &v in near {
                    out.extend(std::iter::repeat_n(v, fh));
                }
            }
        }
        out
    }
}

/// JFIF's YCbCr to RGB, in jpeg-decoder's 20-bit fixed point.
pub(crate) fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    pub(crate) const SHIFT: i32 = 20;
    let fixed = |f: f32| (f * (1 << SHIFT) as f32 + 0.5) as i32;
    let y = (i32::from(y) << SHIFT) + (1 << (SHIFT - 1));
    let (cb, cr) = (i32::from(cb) - 128, i32::from(cr) - 128);
    let px = |v: i32| (v >> SHIFT).clamp(0, 255) as u8;
    [
        px(y + fixed(1.402) * cr),
        px(y - fixed(0.34414) * cb - fixed(0.71414) * cr),
        px(y + fixed(1.772) * cb),
    ]
}
