//! Max pools whose windows tile the input (tract-core's `OptMaxPool::try_tiled` takes them).

/// Channel-first planes of `h x w` into planes of `oh x ow`: each output the largest of its
/// `kh x kw` window at `(oy * kh, ox * kw)`, folded in the generic pool's order and with its
/// comparison (`acc < v`, from `min`), so it picks the same values, NaNs included. Generic
/// for any element; [`max_tiled_f32`] is its f32 instance compiled here.
///
/// # Panics
/// Where a window reaches outside its plane (`oh * kh > h` or `ow * kw > w`).
pub fn max_tiled<T: Copy + PartialOrd>(
    input: &[T],
    output: &mut [T],
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    (kh, kw): (usize, usize),
    min: T,
) {
    assert!(
        oh * kh <= h && ow * kw <= w,
        "a {kh}x{kw} window outside a {h}x{w} plane"
    );
    #[inline(always)]
    fn fold<T: Copy + PartialOrd>(acc: T, v: T) -> T {
        if acc < v { v } else { acc }
    }
    for (plane, out_plane) in input.chunks_exact(h * w).zip(output.chunks_exact_mut(oh * ow)) {
        for (oy, out_row) in out_plane.chunks_exact_mut(ow).enumerate() {
            let rows = &plane[oy * kh * w..][..kh * w];
            if (kh, kw) == (2, 2) {
                let (r0, r1) = rows.split_at(w);
                for (ox, o) in out_row.iter_mut().enumerate() {
                    let m = fold(min, r0[2 * ox]);
                    let m = fold(m, r0[2 * ox + 1]);
                    let m = fold(m, r1[2 * ox]);
                    *o = fold(m, r1[2 * ox + 1]);
                }
            } else {
                for (ox, o) in out_row.iter_mut().enumerate() {
                    let mut m = min;
                    for row in rows.chunks_exact(w) {
                        for &v in &row[ox * kw..][..kw] {
                            m = fold(m, v);
                        }
                    }
                    *o = m;
                }
            }
        }
    }
}

/// [`max_tiled`] for f32, from `f32::MIN`.
#[inline(never)]
pub fn max_tiled_f32(input: &[f32], output: &mut [f32], hw: (usize, usize), ohw: (usize, usize), khw: (usize, usize)) {
    max_tiled(input, output, hw, ohw, khw, f32::MIN)
}

#[cfg(test)]
mod tests {
    /// 2x2 and 3x2 windows over odd sides against the largest of each window, with a tie, an
    /// infinity and a NaN (which `acc < v` never picks, as the generic pool).
    #[test]
    fn each_output_is_its_windows_largest() {
        let (h, w) = (7usize, 9usize);
        let mut input: Vec<f32> = (0..2 * h * w).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
        input[3] = f32::INFINITY;
        input[h * w + 10] = f32::NAN;
        for (kh, kw) in [(2, 2), (3, 2), (1, 1)] {
            let (oh, ow) = (h / kh, w / kw);
            let mut out = vec![0f32; 2 * oh * ow];
            super::max_tiled_f32(&input, &mut out, (h, w), (oh, ow), (kh, kw));
            for c in 0..2 {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let want = (0..kh)
                            .flat_map(|dy| (0..kw).map(move |dx| (oy * kh + dy, ox * kw + dx)))
                            .map(|(y, x)| input[c * h * w + y * w + x])
                            .fold(f32::MIN, |m, v| if m < v { v } else { m });
                        assert_eq!(out[(c * oh + oy) * ow + ox].to_bits(), want.to_bits(), "{kh}x{kw}");
                    }
                }
            }
        }
        assert_eq!(out_of(&input), f32::INFINITY);
    }

    fn out_of(input: &[f32]) -> f32 {
        let mut out = vec![0f32; 2 * 3 * 4];
        super::max_tiled_f32(input, &mut out, (7, 9), (3, 4), (2, 2));
        out[1]
    }
}
