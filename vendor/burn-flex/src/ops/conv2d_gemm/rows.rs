//! "Same" convolutions (stride 1, no dilation, one group, an odd kernel centred by its
//! padding: every 3x3 layer of the shipped net) through a row im2col.
//!
//! Why: the full im2col copies each input value `kh * kw` times, and `gemm` then packs
//! that copy again, from a strided layout. Here each buffer row holds one input row's
//! `kw` horizontal taps per output column (`[x, (kx, c)]`, channels last), so the copy is
//! `kw` times the input; the `kh` vertical taps are the same buffer read `ky` rows further
//! on, and each is one GEMM accumulating into the output, reading the buffer in place.
//! Images of a chunk are stacked with `kh / 2` zero rows between them, so one GEMM spans
//! the chunk; the output rows facing those separators are computed and dropped
//! (`(h + kh / 2) / h` times the work: 7 % at 15 px, 14 % at 7 px). On the shipped net's
//! layers at batch 1,024 this runs the GEMMs at 140-155 GFLOP/s a core where the full
//! im2col ran 95-120 (AVX-512, one thread, packing included).
//!
//! The input gradient is the same convolution of the output gradient with the kernel
//! flipped and its channel axes swapped; the weight gradient is `kh` GEMMs of the output
//! gradient (separator rows zero, so the dropped rows add nothing) against the buffer.

use alloc::vec;
use alloc::vec::Vec;
use core::mem::MaybeUninit;

use super::{Float, Geometry, Scratch, for_each_chunk, scratch, sum_over_chunks};

/// Whether `g` is a convolution this path computes.
pub(super) fn applies(g: &Geometry) -> bool {
    g.groups == 1
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.kh % 2 == 1
        && g.kw % 2 == 1
        && g.pad == [g.kh / 2, g.kw / 2]
        && [g.oh, g.ow] == [g.h, g.w]
}

/// `dst[m, n] (+)= lhs[m, k] * rhs[k, n]`; each matrix is `(pointer, row stride, column
/// stride)` in elements.
///
/// # Safety
/// Every index the shapes and strides name must lie inside its buffer.
pub(super) unsafe fn gemm_at<T: Float>(
    [m, n, k]: [usize; 3],
    (dst, dst_rs, dst_cs): (*mut T, usize, usize),
    accumulate: bool,
    (lhs, lhs_rs, lhs_cs): (*const T, usize, usize),
    (rhs, rhs_rs, rhs_cs): (*const T, usize, usize),
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The plane and kernel shape, and the row layout of a chunk's buffer.
#[derive(Clone, Copy)]
struct Rows {
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
}

impl Rows {
    fn new(g: &Geometry) -> Self {
        Rows {
            h: g.h,
            w: g.w,
            kh: g.kh,
            kw: g.kw,
        }
    }
    /// Buffer rows per image: its own and the zero rows after it.
    fn span(&self) -> usize {
        self.h + self.kh / 2
    }
    /// Output rows a chunk's GEMMs compute (separators between images included).
    fn out_rows(&self, images: usize) -> usize {
        images * self.span() - self.kh / 2
    }
    fn plane(&self) -> usize {
        self.h * self.w
    }
}

/// `w[o, c, ky, kx]` as `[(ky, kx), c, o]`: the GEMMs' left operand, output channels
/// contiguous. With `flip`, the input gradient's kernel instead: `[(ky, kx), o, c]` of
/// `w[o, c, kh - 1 - ky, kw - 1 - kx]`.
fn taps_first<T: Float>(w: &[T], c_out: usize, c_in: usize, taps: usize, flip: bool) -> Vec<T> {
    let mut out = vec![T::ZERO; w.len()];
    for o in 0..c_out {
        for c in 0..c_in {
            for t in 0..taps {
                let v = w[(o * c_in + c) * taps + t];
                if flip {
                    out[((taps - 1 - t) * c_out + o) * c_in + c] = v;
                } else {
                    out[(t * c_in + c) * c_out + o] = v;
                }
            }
        }
    }
    out
}

/// `dst[j, i] = src[i, j]` for a `rows x cols` row-major `src`. Every conv pass here
/// turns NCHW into channels-last and back, so this runs on every activation: 8x8 blocks
/// in AVX registers where the CPU has them (two to four times the scalar loop's speed).
/// `dst` may be uninitialised: every one of its `rows * cols` elements is written.
pub(super) fn transpose<T: Float>(src: &[T], rows: usize, cols: usize, dst: &mut [MaybeUninit<T>]) {
    let (src, dst) = (&src[..rows * cols], &mut dst[..rows * cols]);
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if core::mem::size_of::<T>() == 4 && std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX was detected; T is a 4-byte Pod float, so both are f32 views (the
        // destination written, never read).
        return unsafe {
            let dst = core::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<MaybeUninit<f32>>(), dst.len());
            transpose_avx(bytemuck::cast_slice(src), rows, cols, dst)
        };
    }
    transpose_block(src, rows, cols, dst, 0, 0);
}

/// `s` as a slice [`transpose`] may write into.
pub(super) fn writable<T: Float>(s: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: same layout; whoever writes through the result writes initialised `T`s
    // (Copy, no drop), so `s` stays initialised.
    unsafe { core::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) }
}

/// The scalar transpose of rows `i0..` and, for rows before `i0`, columns `j0..`: what
/// the 8x8 blocks leave.
fn transpose_block<T: Copy>(src: &[T], rows: usize, cols: usize, dst: &mut [MaybeUninit<T>], i0: usize, j0: usize) {
    for i in 0..rows {
        for j in if i < i0 { j0 } else { 0 }..cols {
            dst[j * rows + i].write(src[i * cols + j]);
        }
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx")]
unsafe fn transpose_avx(src: &[f32], rows: usize, cols: usize, dst: &mut [MaybeUninit<f32>]) {
    use core::arch::x86_64::*;
    let (rb, cb) = (rows / 8 * 8, cols / 8 * 8);
    for i0 in (0..rb).step_by(8) {
        for j0 in (0..cb).step_by(8) {
            // SAFETY: rows i0..i0 + 8 and columns j0..j0 + 8 lie inside both matrices.
            unsafe {
                let at = src.as_ptr().add(i0 * cols + j0);
                let r: [__m256; 8] = core::array::from_fn(|i| _mm256_loadu_ps(at.add(i * cols)));
                let lo = |a, b| _mm256_unpacklo_ps(r[a], r[b]);
                let hi = |a, b| _mm256_unpackhi_ps(r[a], r[b]);
                let t = [
                    lo(0, 1),
                    hi(0, 1),
                    lo(2, 3),
                    hi(2, 3),
                    lo(4, 5),
                    hi(4, 5),
                    lo(6, 7),
                    hi(6, 7),
                ];
                let u = [
                    _mm256_shuffle_ps::<0x44>(t[0], t[2]),
                    _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
                    _mm256_shuffle_ps::<0x44>(t[1], t[3]),
                    _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
                    _mm256_shuffle_ps::<0x44>(t[4], t[6]),
                    _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
                    _mm256_shuffle_ps::<0x44>(t[5], t[7]),
                    _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
                ];
                let out = dst.as_mut_ptr().add(j0 * rows + i0).cast::<f32>();
                for j in 0..4 {
                    _mm256_storeu_ps(out.add(j * rows), _mm256_permute2f128_ps::<0x20>(u[j], u[j + 4]));
                    _mm256_storeu_ps(out.add((j + 4) * rows), _mm256_permute2f128_ps::<0x31>(u[j], u[j + 4]));
                }
            }
        }
    }
    transpose_block(src, rows, cols, dst, rb, cb);
}

/// The chunk's buffer from `images` NCHW images of `c` channels: `kh / 2` zero rows, then
/// per image its rows followed by `kh / 2` zero rows; each row `[x, (kx, c)]` holds the
/// input pixel at `x + kx - kw / 2` (zero outside the plane). `nhwc` is scratch.
fn fill_rows<T: Float>(buf: &mut Vec<T>, nhwc: &mut Vec<T>, x: &[T], c: usize, images: usize, r: Rows) {
    let (pw, row) = (r.kw / 2, r.w * r.kw * c);
    scratch(buf, (r.kh / 2 + images * r.span()) * row);
    scratch(nhwc, r.plane() * c);
    buf[..r.kh / 2 * row].fill(T::ZERO);
    for b in 0..images {
        transpose(&x[b * c * r.plane()..][..c * r.plane()], c, r.plane(), writable(nhwc));
        let img = &mut buf[(r.kh / 2 + b * r.span()) * row..][..r.span() * row];
        for (y, dst_row) in img.chunks_exact_mut(row).take(r.h).enumerate() {
            let src_row = &nhwc[y * r.w * c..][..r.w * c];
            for ox in 0..r.w {
                let dst = &mut dst_row[ox * r.kw * c..][..r.kw * c];
                if ox >= pw && ox + pw < r.w {
                    // All taps inside: one run of kw pixels.
                    dst.copy_from_slice(&src_row[(ox - pw) * c..][..r.kw * c]);
                    continue;
                }
                for (kx, tap) in dst.chunks_exact_mut(c).enumerate() {
                    match (ox + kx).checked_sub(pw).filter(|&ix| ix < r.w) {
                        Some(ix) => tap.copy_from_slice(&src_row[ix * c..][..c]),
                        None => tap.fill(T::ZERO),
                    }
                }
            }
        }
        img[r.h * row..].fill(T::ZERO);
    }
}

/// `out = conv(x, w) (+ bias)` for a same convolution: `x` NCHW with `c_in` channels,
/// `w_taps` from [`taps_first`], `out` NCHW with `c_out` channels.
fn same_conv<T: Float>(
    x: &[T],
    (c_in, c_out): (usize, usize),
    w_taps: &[T],
    bias: Option<&[T]>,
    r: Rows,
    per_chunk: usize,
    out: &mut [MaybeUninit<T>],
) {
    let row = r.w * r.kw * c_in;
    let chunk = |b0: usize, out_chunk: &mut [MaybeUninit<T>], bufs: &mut Scratch<T>| {
        let Scratch { col, tmp, nhwc } = bufs;
        let images = out_chunk.len() / (c_out * r.plane());
        fill_rows(col, nhwc, &x[b0 * c_in * r.plane()..], c_in, images, r);
        let q = r.out_rows(images) * r.w;
        scratch(tmp, q * c_out);
        if let Some(bias) = bias {
            tmp.chunks_exact_mut(c_out).for_each(|t| t.copy_from_slice(bias));
        }
        for ky in 0..r.kh {
            // tmp[q, o] (+)= sum over (kx, c) of buf[q + ky rows, (kx, c)] * w[(ky, kx), c, o]
            // SAFETY: tmp is q x c_out; the buffer holds q + (kh - 1) * w positions of
            // kw * c_in values (kh / 2 zero rows before and after); w_taps is kh slices.
            unsafe {
                gemm_at(
                    [q, c_out, r.kw * c_in],
                    (tmp.as_mut_ptr(), c_out, 1),
                    ky > 0 || bias.is_some(),
                    (col.as_ptr().add(ky * row), r.kw * c_in, 1),
                    (w_taps.as_ptr().add(ky * r.kw * c_in * c_out), c_out, 1),
                );
            }
        }
        for (b, img) in out_chunk.chunks_exact_mut(c_out * r.plane()).enumerate() {
            transpose(
                &tmp[b * r.span() * r.w * c_out..][..r.plane() * c_out],
                r.plane(),
                c_out,
                img,
            );
        }
    };
    for_each_chunk(out, c_out * r.plane(), per_chunk, chunk);
}

/// Forward pass: `x` NCHW, `w` `[c_out, c, kh, kw]`.
pub(super) fn forward<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Geometry) -> Vec<T> {
    let r = Rows::new(g);
    let w_taps = taps_first(w, g.c_out, g.c, g.kh * g.kw, false);
    let len = g.n * g.c_out * r.plane();
    let mut y = Vec::with_capacity(len);
    same_conv(
        x,
        (g.c, g.c_out),
        &w_taps,
        bias,
        r,
        g.images_per_chunk(),
        &mut y.spare_capacity_mut()[..len],
    );
    // SAFETY: the chunks' transposes wrote every image's planes, all `len` elements.
    unsafe { y.set_len(len) };
    y
}

/// Input gradient: the same convolution of `dy` with the flipped, transposed kernel.
pub(super) fn x_grad<T: Float>(w: &[T], dy: &[T], g: &Geometry) -> Vec<T> {
    let r = Rows::new(g);
    let w_taps = taps_first(w, g.c_out, g.c, g.kh * g.kw, true);
    let len = g.n * g.c * r.plane();
    let mut dx = Vec::with_capacity(len);
    same_conv(
        dy,
        (g.c_out, g.c),
        &w_taps,
        None,
        r,
        g.images_per_chunk(),
        &mut dx.spare_capacity_mut()[..len],
    );
    // SAFETY: as in `forward`.
    unsafe { dx.set_len(len) };
    dx
}

/// Weight gradient, `[c_out, c, kh, kw]`: per chunk, `dw[(ky, kx), c, o] += sum over q of
/// buf[q + ky rows, (kx, c)] * dy[q, o]`, summed over chunks.
pub(super) fn weight_grad<T: Float>(x: &[T], dy: &[T], g: &Geometry) -> Vec<T> {
    let r = Rows::new(g);
    let (c, c_out, taps) = (g.c, g.c_out, g.kh * g.kw);
    let row = r.w * r.kw * c;
    let chunk_grad = |b0: usize, b1: usize, dw: &mut [T], bufs: &mut Scratch<T>| {
        let Scratch { col, tmp: dyq, nhwc } = bufs;
        let images = b1 - b0;
        fill_rows(col, nhwc, &x[b0 * c * r.plane()..], c, images, r);
        let q = r.out_rows(images) * r.w;
        scratch(dyq, q * c_out);
        for b in 0..images {
            let at = b * r.span() * r.w * c_out;
            let src = &dy[(b0 + b) * c_out * r.plane()..][..c_out * r.plane()];
            transpose(src, c_out, r.plane(), writable(&mut dyq[at..][..r.plane() * c_out]));
            let gap = (at + r.plane() * c_out)..(at + r.span() * r.w * c_out).min(q * c_out);
            dyq[gap].fill(T::ZERO);
        }
        for ky in 0..r.kh {
            // dw[(ky, kx), c, o] += sum over q of buf[q + ky rows, (kx, c)] * dyq[q, o]
            // SAFETY: as in `same_conv`; dw is kh slices of kw * c x c_out, dyq q x c_out.
            unsafe {
                gemm_at(
                    [r.kw * c, c_out, q],
                    (dw.as_mut_ptr().add(ky * r.kw * c * c_out), c_out, 1),
                    true,
                    (col.as_ptr().add(ky * row), 1, r.kw * c),
                    (dyq.as_ptr(), c_out, 1),
                );
            }
        }
    };
    let dw = sum_over_chunks(g.n, g.images_per_chunk(), taps * c * c_out, chunk_grad);
    // [(ky, kx), c, o] -> [o, c, (ky, kx)]: `taps_first` swaps the outer and inner axes,
    // so it undoes itself.
    taps_first(&dw, taps, c, c_out, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_matches_its_definition() {
        // Whole 8x8 blocks, ragged edges on either side, and a tall plane.
        for (rows, cols) in [(1, 1), (3, 17), (8, 8), (9, 23), (16, 5), (24, 961), (961, 64)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut dst = vec![f32::NAN; rows * cols];
            transpose(&src, rows, cols, writable(&mut dst));
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(dst[j * rows + i], src[i * cols + j], "{rows}x{cols} at ({i}, {j})");
                }
            }
            let src64: Vec<f64> = src.iter().map(|&v| f64::from(v)).collect();
            let mut dst64 = vec![f64::NAN; rows * cols];
            transpose(&src64, rows, cols, writable(&mut dst64));
            assert!(dst64.iter().zip(&dst).all(|(a, &b)| *a == f64::from(b)));
        }
    }
}
