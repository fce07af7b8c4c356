//! The grid convolution's product (tract-core's `ops/cnn/conv/grid.rs` plans it): AVX-512F
//! tiles of `rows` output channels by `vecs` runs of 16 positions, read in place from the
//! zero-padded input.

/// Positions a vector holds.
pub const LANES: usize = 16;

/// The `(rows, vecs)` tiles there are kernels for.
pub const TILES: [(usize, usize); 4] = [(6, 4), (8, 3), (12, 2), (16, 1)];

/// Whether this host runs the kernels (AVX-512F).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One image's product: for every run of `vecs * 16` positions below `q_pad` and every tile
/// of `rows` output channels, tile `t`'s rows of `grid` (`q_pad` apart) get `bias[t * rows..]`
/// plus the sum over taps of `weights[(t * taps + tap) * rows + row]` times `padded` at the
/// position plus `offsets[tap]`. False (nothing written) where the host lacks AVX-512F or
/// `(rows, vecs)` is not in [`TILES`].
///
/// # Safety
/// `padded` is valid at every `q + offsets[tap]` for `q < q_pad`; `weights` holds
/// `tiles * offsets.len() * rows` floats, `bias` `tiles * rows` and `grid` `tiles * rows * q_pad`,
/// with `q_pad` a multiple of `vecs * 16`.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub unsafe fn tiles(
    padded: *const f32,
    offsets: &[isize],
    weights: *const f32,
    bias: *const f32,
    grid: *mut f32,
    (rows, vecs): (usize, usize),
    tiles: usize,
    q_pad: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if !available() {
            return false;
        }
        // SAFETY: AVX-512F checked above; the bounds are the caller's.
        unsafe {
            match (rows, vecs) {
                (6, 4) => run::<6, 4>(padded, offsets, weights, bias, grid, tiles, q_pad),
                (8, 3) => run::<8, 3>(padded, offsets, weights, bias, grid, tiles, q_pad),
                (12, 2) => run::<12, 2>(padded, offsets, weights, bias, grid, tiles, q_pad),
                (16, 1) => run::<16, 1>(padded, offsets, weights, bias, grid, tiles, q_pad),
                _ => return false,
            }
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (padded, offsets, weights, bias, grid, rows, vecs, tiles, q_pad);
        false
    }
}

/// One grid convolution's shape, as tract-core's `GridConv::plan` makes it.
#[derive(Debug, Clone, Copy)]
pub struct Geometry<'a> {
    /// Input channels, rows and columns.
    pub chw: (usize, usize, usize),
    /// Output channels.
    pub oc: usize,
    /// Padding before the first row and the first column.
    pub pad: (usize, usize),
    /// Padded width: floats between two rows of the padded input and of the grid.
    pub wp: usize,
    /// Output rows and columns.
    pub out: (usize, usize),
    /// Floats between two channels of the padded input.
    pub plane: usize,
    /// Positions computed per image: the output rows of the grid, rounded up to whole tiles.
    pub q_pad: usize,
    /// `(rows, vecs)`, one of [`TILES`].
    pub tile: (usize, usize),
    /// Offset of each tap `(c, ky, kx)`, in that order, from a position to what it reads.
    pub offsets: &'a [isize],
}

/// One image of `geo`: `x` (`c x h x w`) copied into the interior of `padded`, the product
/// into `grid` ([`tiles`]), and its `oc x ho x wo` outputs copied into `out`. False (`out`
/// unwritten) where [`tiles`] has no kernel. Only interior cells of `padded` are written, so
/// its border stays as it was (zero) from one image to the next.
///
/// # Safety
/// `geo` is consistent as `GridConv::plan` makes it (`plane` covers the furthest tap of the
/// last tile), `padded` holds `c * plane` floats with a zero border, `grid` `tiles * rows *
/// q_pad`, and `weights` and `bias` are packed for `geo` (`tiles * taps * rows` and
/// `tiles * rows`).
#[inline(never)]
pub unsafe fn image(
    geo: &Geometry,
    x: &[f32],
    (weights, bias): (&[f32], &[f32]),
    padded: &mut [f32],
    grid: &mut [f32],
    out: &mut [f32],
) -> bool {
    let ((c, h, w), (ho, wo), (top, left)) = (geo.chw, geo.out, geo.pad);
    for ci in 0..c {
        for y in 0..h {
            let to = ci * geo.plane + (y + top) * geo.wp + left;
            padded[to..][..w].copy_from_slice(&x[(ci * h + y) * w..][..w]);
        }
    }
    let n_tiles = geo.oc.div_ceil(geo.tile.0);
    // SAFETY: the caller's bounds.
    let done = unsafe {
        tiles(
            padded.as_ptr(),
            geo.offsets,
            weights.as_ptr(),
            bias.as_ptr(),
            grid.as_mut_ptr(),
            geo.tile,
            n_tiles,
            geo.q_pad,
        )
    };
    if done {
        for o in 0..geo.oc {
            for y in 0..ho {
                out[(o * ho + y) * wo..][..wo].copy_from_slice(&grid[o * geo.q_pad + y * geo.wp..][..wo]);
            }
        }
    }
    done
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn run<const R: usize, const V: usize>(
    padded: *const f32,
    offsets: &[isize],
    weights: *const f32,
    bias: *const f32,
    grid: *mut f32,
    tiles: usize,
    q_pad: usize,
) {
    let k = offsets.len();
    for q0 in (0..q_pad).step_by(V * LANES) {
        for t in 0..tiles {
            // SAFETY: the caller's bounds, tile by tile.
            unsafe {
                tile::<R, V>(
                    padded.add(q0),
                    offsets,
                    weights.add(t * k * R),
                    bias.add(t * R),
                    grid.add(t * R * q_pad + q0),
                    q_pad,
                )
            }
        }
    }
}

/// `R` output channels by `V * 16` positions from `x`, over every tap, into `out` (rows
/// `stride` apart), starting from the bias: at most 24 accumulators, so they, the `V` input
/// loads and a broadcast weight fit in AVX-512's 32 registers.
///
/// # Safety
/// AVX-512F present; `x` valid at every `offset + V * 16`, `w` for `offsets.len() * R` floats,
/// `bias` for `R`, `out` for `R` rows of `V * 16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const R: usize, const V: usize>(
    x: *const f32,
    offsets: &[isize],
    w: *const f32,
    bias: *const f32,
    out: *mut f32,
    stride: usize,
) {
    use std::arch::x86_64::*;
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for (r, row) in acc.iter_mut().enumerate() {
            *row = [_mm512_set1_ps(*bias.add(r)); V];
        }
        let mut wr = w;
        for &off in offsets {
            let p = x.offset(off);
            let mut xs = [_mm512_setzero_ps(); V];
            for (v, xv) in xs.iter_mut().enumerate() {
                *xv = _mm512_loadu_ps(p.add(v * LANES));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let b = _mm512_set1_ps(*wr.add(r));
                for (a, xv) in row.iter_mut().zip(xs.iter()) {
                    *a = _mm512_fmadd_ps(*xv, b, *a);
                }
            }
            wr = wr.add(R);
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, a) in row.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * stride + v * LANES), *a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every tile against the sum it stands for, on a 1-D "image" of 3 taps.
    #[test]
    fn each_tile_sums_its_taps_from_the_bias() {
        if !super::available() {
            return;
        }
        for (rows, vecs) in super::TILES {
            let q_pad = 2 * vecs * super::LANES;
            let offsets = [0isize, 1, 5];
            let padded: Vec<f32> = (0..q_pad + 8).map(|i| (i % 7) as f32 - 3.0).collect();
            let tiles = 2;
            let weights: Vec<f32> = (0..tiles * 3 * rows).map(|i| (i % 5) as f32 * 0.5 - 1.0).collect();
            let bias: Vec<f32> = (0..tiles * rows).map(|i| i as f32).collect();
            let mut grid = vec![f32::NAN; tiles * rows * q_pad];
            let done = unsafe {
                super::tiles(
                    padded.as_ptr(),
                    &offsets,
                    weights.as_ptr(),
                    bias.as_ptr(),
                    grid.as_mut_ptr(),
                    (rows, vecs),
                    tiles,
                    q_pad,
                )
            };
            assert!(done);
            for t in 0..tiles {
                for row in 0..rows {
                    for q in 0..q_pad {
                        let want = bias[t * rows + row]
                            + (0..3)
                                .map(|tap| weights[(t * 3 + tap) * rows + row] * padded[q + offsets[tap] as usize])
                                .sum::<f32>();
                        assert_eq!(grid[(t * rows + row) * q_pad + q], want, "tile {rows}x{vecs}");
                    }
                }
            }
        }
        assert!(!unsafe {
            super::tiles(
                std::ptr::null(),
                &[],
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null_mut(),
                (5, 5),
                0,
                0,
            )
        });
    }

    /// A 1x1 conv padded by one on every side: the border is the bias, the interior the
    /// weighted sum of the channels, over two images through the same scratch.
    #[test]
    fn an_image_is_padded_multiplied_and_copied_out() {
        if !super::available() {
            return;
        }
        let (c, h, w, oc) = (3usize, 4usize, 5usize, 7usize);
        for (rows, vecs) in super::TILES {
            let (wp, ho, wo) = (w + 2, h + 2, w + 2);
            let q_pad = (ho * wp).next_multiple_of(vecs * super::LANES);
            let plane = ((h + 2) * wp).max(q_pad);
            let offsets: Vec<isize> = (0..c).map(|ci| (ci * plane) as isize).collect();
            let geo = super::Geometry {
                chw: (c, h, w),
                oc,
                pad: (1, 1),
                wp,
                out: (ho, wo),
                plane,
                q_pad,
                tile: (rows, vecs),
                offsets: &offsets,
            };
            let n_tiles = oc.div_ceil(rows);
            let kernel: Vec<f32> = (0..oc * c).map(|i| (i % 4) as f32 - 1.5).collect();
            let mut weights = vec![0f32; n_tiles * c * rows];
            let mut bias = vec![0f32; n_tiles * rows];
            for o in 0..oc {
                bias[o] = o as f32;
                for ci in 0..c {
                    weights[((o / rows) * c + ci) * rows + o % rows] = kernel[o * c + ci];
                }
            }
            let mut padded = vec![0f32; c * plane];
            let mut grid = vec![f32::NAN; n_tiles * rows * q_pad];
            for image in 0..2 {
                let x: Vec<f32> = (0..c * h * w).map(|i| ((i * 7 + image) % 9) as f32).collect();
                let mut out = vec![f32::NAN; oc * ho * wo];
                let done = unsafe { super::image(&geo, &x, (&weights, &bias), &mut padded, &mut grid, &mut out) };
                assert!(done);
                for o in 0..oc {
                    for y in 0..ho {
                        for xx in 0..wo {
                            let inside = (1..=h).contains(&y) && (1..=w).contains(&xx);
                            let want = o as f32
                                + if inside {
                                    (0..c)
                                        .map(|ci| kernel[o * c + ci] * x[(ci * h + y - 1) * w + xx - 1])
                                        .sum()
                                } else {
                                    0.0
                                };
                            assert_eq!(
                                out[(o * ho + y) * wo + xx],
                                want,
                                "{rows}x{vecs} image {image} ({o}, {y}, {xx})"
                            );
                        }
                    }
                }
            }
        }
    }
}
