//! im2col's panel rows (tract-core's `panels_2d` plans them), by element width: the copy
//! moves bits, so one function per width serves every datum type of that width.

/// For every k row: `r` lanes, those below `split` read from `src + koff + lo`, the others
/// from `src + koff + hi` (lane `j` at offset `j` from either), with `r` known at compile
/// time for the panel widths tract's kernels use (1-6, 8, 12, 16, 32), so each row is two
/// loads, a blend and a store.
///
/// # Safety
/// Both `r`-wide source runs of every k row and the `koffs.len() * r` destination elements
/// are in bounds.
#[inline(always)]
unsafe fn copy_runs<T: Copy>(
    src: *const T,
    koffs: &[isize],
    dst: *mut T,
    r: usize,
    lo: isize,
    hi: isize,
    split: usize,
) {
    #[inline(always)]
    unsafe fn rows<T: Copy, const R: usize>(
        src: *const T,
        koffs: &[isize],
        dst: *mut T,
        lo: isize,
        hi: isize,
        split: usize,
    ) {
        let low: [bool; R] = std::array::from_fn(|j| j < split);
        for (kk, &off) in koffs.iter().enumerate() {
            unsafe {
                let a = (src.offset(off + lo) as *const [T; R]).read_unaligned();
                let mut row = (src.offset(off + hi) as *const [T; R]).read_unaligned();
                for j in 0..R {
                    if low[j] {
                        row[j] = a[j];
                    }
                }
                (dst.add(kk * R) as *mut [T; R]).write_unaligned(row);
            }
        }
    }
    unsafe {
        match r {
            1 => rows::<T, 1>(src, koffs, dst, lo, hi, split),
            2 => rows::<T, 2>(src, koffs, dst, lo, hi, split),
            3 => rows::<T, 3>(src, koffs, dst, lo, hi, split),
            4 => rows::<T, 4>(src, koffs, dst, lo, hi, split),
            5 => rows::<T, 5>(src, koffs, dst, lo, hi, split),
            6 => rows::<T, 6>(src, koffs, dst, lo, hi, split),
            8 => rows::<T, 8>(src, koffs, dst, lo, hi, split),
            12 => rows::<T, 12>(src, koffs, dst, lo, hi, split),
            16 => rows::<T, 16>(src, koffs, dst, lo, hi, split),
            32 => rows::<T, 32>(src, koffs, dst, lo, hi, split),
            _ => {
                for (kk, &off) in koffs.iter().enumerate() {
                    let d = dst.add(kk * r);
                    std::ptr::copy_nonoverlapping(src.offset(off + lo), d, split);
                    std::ptr::copy_nonoverlapping(src.offset(off + hi + split as isize), d.add(split), r - split);
                }
            }
        }
    }
}

/// For every k row: lane `j` from `src + koff + bases[j]`, `bases.len()` lanes, rows `r`
/// apart (panels spread over several input rows, strided ones, the last partial panel).
///
/// # Safety
/// Every `src + koff + bases[j]` and the `koffs.len() * r` destination elements are in bounds,
/// and `bases.len() <= r`.
#[inline(always)]
unsafe fn gather<T: Copy>(src: *const T, koffs: &[isize], dst: *mut T, r: usize, bases: &[isize]) {
    for (kk, &off) in koffs.iter().enumerate() {
        unsafe {
            let s = src.offset(off);
            let d = dst.add(kk * r);
            for (j, &b) in bases.iter().enumerate() {
                *d.add(j) = *s.offset(b);
            }
        }
    }
}

/// One 2-D im2col: where the panels are and how output positions map to input offsets.
#[derive(Debug, Clone, Copy)]
pub struct Panels {
    /// Lanes a panel holds (the matrix kernel's `nr`).
    pub r: usize,
    /// Elements between two panels.
    pub panel_len: usize,
    /// Output positions.
    pub n: usize,
    /// Output width: positions a row.
    pub ow: usize,
    /// Strides along y and x.
    pub strides: (usize, usize),
    /// Elements between two input rows.
    pub row_stride: isize,
}

/// Every panel of `geo`: k row `kk` of output position `pos` is `src[koffs[kk] + base(pos)]`,
/// `base(pos) = (pos / ow) * sy * row_stride + (pos % ow) * sx`. A unit-stride panel inside
/// one input row is one `r`-wide copy per k row, one that ends a row and starts the next two
/// loads and a blend; the others gather lane by lane. Generic for any element; the
/// `panels_<width>` functions are its instances compiled here.
///
/// # Safety
/// Every `src + koffs[kk] + base(pos)` for `pos < n` is in bounds, and so are the
/// `n.div_ceil(r)` panels of `panel_len >= koffs.len() * r` elements from `pack`; with a unit
/// x stride, so is each full panel's `r`-wide run from its first lane's source, and from its
/// second row's first lane's source `split` lanes before it.
pub unsafe fn panels<T: Copy>(src: *const T, koffs: &[isize], pack: *mut T, geo: &Panels) {
    let Panels {
        r,
        panel_len,
        n,
        ow,
        strides: (sy, sx),
        row_stride,
    } = *geo;
    let mut bases = vec![0isize; r];
    for (p, first) in (0..n).step_by(r.max(1)).enumerate() {
        let lanes = r.min(n - first);
        for (j, base) in bases.iter_mut().enumerate().take(lanes) {
            let pos = first + j;
            *base = ((pos / ow) * sy) as isize * row_stride + ((pos % ow) * sx) as isize;
        }
        let (row_first, row_last) = (first / ow, (first + lanes - 1) / ow);
        unsafe {
            let dst = pack.add(p * panel_len);
            if lanes == r && sx == 1 && row_first == row_last {
                copy_runs(src, koffs, dst, r, bases[0], bases[0], r);
            } else if lanes == r && sx == 1 && row_last == row_first + 1 {
                // The panel ends one row and starts the next: lanes below `split` come from
                // the first run, the others from the second (read as if it began `split`
                // lanes earlier, which stays between the two runs' addresses).
                let split = row_last * ow - first;
                let hi = bases[split] - split as isize;
                copy_runs(src, koffs, dst, r, bases[0], hi, split);
            } else {
                gather(src, koffs, dst, r, &bases[..lanes]);
            }
        }
    }
}

/// Where the taps reach outside the input: `ci` planes of `h x w` (`strides` apart: channel,
/// row) copied into `ci` planes of `hp x wp` at `dst`, each at row `top` and column `left`,
/// every other element `value`. Generic for any element; the `pad_<width>` functions are its
/// instances compiled here.
///
/// # Safety
/// `src` is valid for every row read, `dst` for `ci * hp * wp` writes (it may be
/// uninitialised: every element is written), and `top + h <= hp`, `left + w <= wp`.
pub unsafe fn pad<T: Copy>(
    src: *const T,
    (c_stride, h_stride): (usize, usize),
    (ci, h, w): (usize, usize, usize),
    (top, left): (usize, usize),
    (hp, wp): (usize, usize),
    value: T,
    dst: *mut T,
) {
    unsafe {
        for i in 0..ci * hp * wp {
            dst.add(i).write(value);
        }
        for c in 0..ci {
            for y in 0..h {
                let to = dst.add((c * hp + y + top) * wp + left);
                std::ptr::copy_nonoverlapping(src.add(c * c_stride + y * h_stride), to, w);
            }
        }
    }
}

/// The offset of each k row from an output position's source: channel-major, then the
/// kernel's taps, `origin + c * channel_stride + dy * row_stride + dx` for `(dy, dx)` in
/// `taps`.
#[inline(never)]
pub fn offsets(
    taps: &[(isize, isize)],
    channels: usize,
    origin: isize,
    (channel_stride, row_stride): (isize, isize),
) -> Vec<isize> {
    let mut koffs = Vec::with_capacity(channels * taps.len());
    for c in 0..channels as isize {
        let base = origin + c * channel_stride;
        koffs.extend(taps.iter().map(|&(dy, dx)| base + dy * row_stride + dx));
    }
    koffs
}

macro_rules! by_width {
    ($($panels:ident, $pad:ident: $t:ty;)*) => {$(
        /// [`panels`] for elements of this width (the copy moves bits).
        ///
        /// # Safety
        /// As [`panels`].
        #[inline(never)]
        pub unsafe fn $panels(src: *const $t, koffs: &[isize], pack: *mut $t, geo: &Panels) {
            unsafe { panels(src, koffs, pack, geo) }
        }

        /// [`pad`] for elements of this width.
        ///
        /// # Safety
        /// As [`pad`].
        #[inline(never)]
        pub unsafe fn $pad(
            src: *const $t,
            strides: (usize, usize),
            chw: (usize, usize, usize),
            at: (usize, usize),
            padded: (usize, usize),
            value: $t,
            dst: *mut $t,
        ) {
            unsafe { pad(src, strides, chw, at, padded, value, dst) }
        }
    )*};
}

by_width! {
    panels_1, pad_1: u8;
    panels_2, pad_2: u16;
    panels_4, pad_4: u32;
    panels_8, pad_8: u64;
}

#[cfg(test)]
mod tests {
    use super::Panels;

    /// Every panel width and stride against the definition: lane `j` of panel `p`, k row
    /// `kk`, is the input at `koffs[kk] + base(p * r + j)`; a partial last panel leaves the
    /// lanes past `n` as they were.
    #[test]
    fn panels_hold_each_positions_taps() {
        let (h, w) = (9usize, 11usize);
        let src: Vec<u32> = (0..(h * w) as u32).map(|v| v * 3 + 1).collect();
        // A 2x2 kernel: taps at (0, 0), (0, 1), (1, 0), (1, 1).
        let koffs = [0isize, 1, w as isize, w as isize + 1];
        for r in [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 32] {
            for (sy, sx) in [(1, 1), (2, 2), (1, 2)] {
                let (oh, ow) = ((h - 2) / sy + 1, (w - 2) / sx + 1);
                let n = oh * ow;
                let geo = Panels {
                    r,
                    panel_len: koffs.len() * r,
                    n,
                    ow,
                    strides: (sy, sx),
                    row_stride: w as isize,
                };
                let mut pack = vec![u32::MAX; n.div_ceil(r) * geo.panel_len];
                unsafe { super::panels_4(src.as_ptr(), &koffs, pack.as_mut_ptr(), &geo) };
                for p in 0..n.div_ceil(r) {
                    for (kk, off) in koffs.iter().enumerate() {
                        for j in 0..r {
                            let got = pack[p * geo.panel_len + kk * r + j];
                            let pos = p * r + j;
                            let want = if pos < n {
                                src[(off + ((pos / ow) * sy * w + (pos % ow) * sx) as isize) as usize]
                            } else {
                                u32::MAX
                            };
                            assert_eq!(got, want, "r {r} strides {sy}x{sx} panel {p} row {kk} lane {j}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pad_places_each_row_inside_a_border_of_the_value() {
        // Two 2x3 planes, rows 4 apart and planes 10 apart, into 4x6 planes at (1, 2).
        let src: Vec<u16> = (0..20).collect();
        let mut dst = Vec::with_capacity(2 * 4 * 6);
        unsafe {
            super::pad_2(src.as_ptr(), (10, 4), (2, 2, 3), (1, 2), (4, 6), 99, dst.as_mut_ptr());
            dst.set_len(2 * 4 * 6);
        }
        #[rustfmt::skip]
        let want: Vec<u16> = vec![
            99, 99, 99, 99, 99, 99,
            99, 99, 0, 1, 2, 99,
            99, 99, 4, 5, 6, 99,
            99, 99, 99, 99, 99, 99,
            99, 99, 99, 99, 99, 99,
            99, 99, 10, 11, 12, 99,
            99, 99, 14, 15, 16, 99,
            99, 99, 99, 99, 99, 99,
        ];
        assert_eq!(dst, want);
    }

    #[test]
    fn offsets_walk_channels_then_taps() {
        let koffs = super::offsets(&[(0, 0), (0, 1), (1, -1)], 2, 5, (100, 10));
        assert_eq!(koffs, [5, 6, 14, 105, 106, 114]);
    }
}
