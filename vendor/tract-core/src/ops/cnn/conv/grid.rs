//! Direct f32 convolution over the padded input grid, for unit-stride, undilated, group-1 NCHW
//! convolutions on hosts with AVX-512.
//!
//! With the input copied once into a zero-padded plane per channel, `wp` floats a row, the output
//! position `q = y * wp + x` reads its tap `(c, ky, kx)` at `q + c * plane + ky * wp + kx`: sixteen
//! consecutive positions read sixteen consecutive floats. So the convolution is a matrix product
//! whose right-hand panels are the padded image itself, read in place, and no im2col buffer is
//! written. The price is the `wp - wo` positions each row computes past its end (2 of 33 at 31 px,
//! 2 of 9 at 7 px), dropped when the grid is copied out.

use crate::internal::*;
use tract_core_kernels::grid::LANES;

/// One product tile: `rows` output channels by `vecs` runs of 16 positions. At most 24
/// accumulators, so the tile, its `vecs` input loads and a broadcast weight fit in AVX-512's 32
/// registers.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub struct GridTile {
    pub rows: usize,
    pub vecs: usize,
}

/// The tiles there are kernels for, in order of preference on a tie, each with the relative
/// cost of its padded work: 16x1 issues a broadcast per two FMAs, where the others issue one
/// per four or more, and ran 20-30 % slower per multiply-add on an Emerald Rapids core
/// (6x4, 8x3 and 12x2 within 5 % of each other on the same shapes).
const TILES: [(GridTile, usize); 4] = [
    (GridTile { rows: 6, vecs: 4 }, 4),
    (GridTile { rows: 8, vecs: 3 }, 4),
    (GridTile { rows: 12, vecs: 2 }, 4),
    (GridTile { rows: 16, vecs: 1 }, 5),
];

/// Whether convolutions become grid convolutions here: the host runs the kernels and the knob
/// does not turn them off.
pub fn grid_conv_available() -> bool {
    host_has_kernels() && !TRACT_DISABLE_GRID_CONV.get()
}

/// Whether this host runs the grid kernels (AVX-512F), whatever the knob says.
pub fn host_has_kernels() -> bool {
    tract_core_kernels::grid::available()
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct GridConv {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oc: usize,
    kernel: [usize; 2],
    pad_top: usize,
    pad_left: usize,
    /// Padded width: floats between two rows of the padded input and of the grid.
    wp: usize,
    ho: usize,
    wo: usize,
    tile: GridTile,
    /// Positions computed per image: the `ho` grid rows, rounded up to whole tiles.
    q_pad: usize,
    /// Floats between two channels of the padded input: the padded plane, or more where the last
    /// tile's furthest tap reads beyond it.
    plane: usize,
    /// Offset of each tap `(c, ky, kx)`, in that order, from a position to what it reads.
    offsets: Vec<isize>,
}

impl GridConv {
    /// The op for an input of `n x c x h x w`, `oc` output channels, a `kernel` and the padding
    /// before and after each spatial axis; `None` where the output would be empty. The tile is
    /// the one with the least padded work, weighted by its cost (`TRACT_GRID_CONV_TILE=RxV`
    /// forces one).
    pub fn plan(
        n: usize,
        c: usize,
        [h, w]: [usize; 2],
        oc: usize,
        kernel: [usize; 2],
        pad_before: [usize; 2],
        pad_after: [usize; 2],
    ) -> Option<GridConv> {
        if n == 0 || c == 0 || oc == 0 || kernel.contains(&0) {
            return None;
        }
        let hp = h + pad_before[0] + pad_after[0];
        let wp = w + pad_before[1] + pad_after[1];
        let ho = (hp + 1).checked_sub(kernel[0]).filter(|&x| x > 0)?;
        let wo = (wp + 1).checked_sub(kernel[1]).filter(|&x| x > 0)?;
        let q = ho * wp;
        let cost = |(t, weight): &(GridTile, usize)| {
            oc.div_ceil(t.rows) * t.rows * q.next_multiple_of(t.vecs * LANES) * weight
        };
        let forced = TRACT_GRID_CONV_TILE.get();
        let tile = TILES
            .iter()
            .find(|(t, _)| forced == format!("{}x{}", t.rows, t.vecs))
            .or_else(|| TILES.iter().min_by_key(|t| cost(t)))?
            .0;
        let q_pad = q.next_multiple_of(tile.vecs * LANES);
        let reach = (kernel[0] - 1) * wp + kernel[1] - 1;
        let plane = (hp * wp).max(q_pad + reach);
        let mut offsets = Vec::with_capacity(c * kernel[0] * kernel[1]);
        for ci in 0..c {
            for ky in 0..kernel[0] {
                for kx in 0..kernel[1] {
                    offsets.push((ci * plane + ky * wp + kx) as isize);
                }
            }
        }
        Some(GridConv {
            n,
            c,
            h,
            w,
            oc,
            kernel,
            pad_top: pad_before[0],
            pad_left: pad_before[1],
            wp,
            ho,
            wo,
            tile,
            q_pad,
            plane,
            offsets,
        })
    }

    fn tiles_oc(&self) -> usize {
        self.oc.div_ceil(self.tile.rows)
    }

    /// The weights (`oc x c x kh x kw`, any shape of that volume) laid out as the kernels read
    /// them: per tile of `rows` output channels, per tap, the `rows` weights, zeros past `oc`;
    /// and the bias (one per output channel, or one for all) padded the same way.
    pub fn pack(&self, kernel: &Tensor, bias: &Tensor) -> TractResult<(Tensor, Tensor)> {
        let k = self.offsets.len();
        let r = self.tile.rows;
        let kernel = kernel.cast_to::<f32>()?;
        let kernel = kernel.try_as_plain_ram()?;
        let kernel = kernel.as_slice::<f32>()?;
        ensure!(kernel.len() == self.oc * k, "grid conv: kernel of {} for {}x{}", kernel.len(), self.oc, k);
        let bias = bias.cast_to::<f32>()?;
        let bias = bias.try_as_plain_ram()?;
        let bias = bias.as_slice::<f32>()?;
        ensure!(bias.len() == self.oc || bias.len() == 1, "grid conv: bias of {}", bias.len());
        let tiles = self.tiles_oc();
        let mut packed = vec![0f32; tiles * k * r];
        let mut bias_packed = vec![0f32; tiles * r];
        for o in 0..self.oc {
            let (t, row) = (o / r, o % r);
            for tap in 0..k {
                packed[(t * k + tap) * r + row] = kernel[o * k + tap];
            }
            bias_packed[o] = if bias.len() == 1 { bias[0] } else { bias[o] };
        }
        Ok((tensor1(&packed), tensor1(&bias_packed)))
    }

    pub fn ho(&self) -> usize {
        self.ho
    }

    pub fn wo(&self) -> usize {
        self.wo
    }

    /// Bytes of scratch one call takes: the padded input and the output grid.
    pub fn scratch_bytes(&self) -> usize {
        (self.c * self.plane + self.tiles_oc() * self.tile.rows * self.q_pad) * 4
    }

    fn output_shape(&self) -> [usize; 4] {
        [self.n, self.oc, self.ho, self.wo]
    }

    fn eval_f32(&self, x: &[f32], weights: &[f32], bias: &[f32]) -> TractResult<Tensor> {
        ensure!(host_has_kernels(), "GridConv needs AVX-512");
        let (c, h, w, oc) = (self.c, self.h, self.w, self.oc);
        let (k, r, q_pad, wp) = (self.offsets.len(), self.tile.rows, self.q_pad, self.wp);
        let tiles_oc = self.tiles_oc();
        ensure!(x.len() == self.n * c * h * w, "GridConv: input of {} floats", x.len());
        ensure!(weights.len() == tiles_oc * k * r && bias.len() == tiles_oc * r);
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.output_shape())? };
        let out = unsafe { output.as_slice_mut_unchecked::<f32>() };
        let mut padded = vec![0f32; c * self.plane];
        // Every cell is written by a tile before it is read, so it needs no zeroing; the rows
        // past `oc` are computed and never read.
        let mut grid = unsafe { Tensor::uninitialized::<f32>(&[tiles_oc * r * q_pad])? };
        let grid = unsafe { grid.as_slice_mut_unchecked::<f32>() };
        let geo = tract_core_kernels::grid::Geometry {
            chw: (c, h, w),
            oc,
            pad: (self.pad_top, self.pad_left),
            wp,
            out: (self.ho, self.wo),
            plane: self.plane,
            q_pad,
            tile: (self.tile.rows, self.tile.vecs),
            offsets: &self.offsets,
        };
        let per_image = oc * self.ho * self.wo;
        for (image, out) in x.chunks_exact(c * h * w).zip(out.chunks_exact_mut(per_image)) {
            // In `tract-core-kernels`, which keeps the loops at speed when this crate is built
            // for size. SAFETY: `plan` made the geometry (`plane` covers the furthest tap of
            // the last tile), `padded` starts zeroed and only its interior is written, the
            // scratch and the packed weights are sized for it (checked above).
            let done = unsafe {
                tract_core_kernels::grid::image(&geo, image, (weights, bias), &mut padded, grid, out)
            };
            ensure!(done, "GridConv: no kernel for {:?} on this host", self.tile);
        }
        Ok(output)
    }
}

impl Op for GridConv {
    fn name(&self) -> StaticName {
        "GridConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{}x{}x{}x{} -> {} channels, kernel {:?}, tile {}x{}",
            self.n, self.c, self.h, self.w, self.oc, self.kernel, self.tile.rows, self.tile.vecs
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for GridConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, weights, bias) = args_3!(inputs);
        ensure!(x.datum_type() == f32::datum_type(), "GridConv is f32 only");
        let (x, weights, bias) =
            (x.try_as_plain_ram()?, weights.try_as_plain_ram()?, bias.try_as_plain_ram()?);
        let output =
            self.eval_f32(x.as_slice::<f32>()?, weights.as_slice::<f32>()?, bias.as_slice::<f32>()?)?;
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for GridConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 3);
        Ok(tvec!(f32::fact(self.output_shape())))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let fmas = self.n * self.oc * self.ho * self.wo * self.offsets.len();
        Ok(tvec!((Cost::FMA(f32::datum_type()), fmas.to_dim())))
    }

    as_op!();
}

crate::declare_knob!(
    scopable TRACT_DISABLE_GRID_CONV,
    bool,
    false,
    "Disable the direct grid convolution, falling back to im2col and a matrix product."
);

crate::declare_knob!(
    scopable TRACT_GRID_CONV_TILE,
    String,
    String::new(),
    "Force the grid convolution's tile, as `RxV` (6x4, 8x3, 12x2 or 16x1)."
);
