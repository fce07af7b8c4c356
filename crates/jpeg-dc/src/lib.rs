//! Large JPEGs decoded at 1/8 scale from their DC coefficients alone.
//!
//! At 1/8 scale each 8x8 block becomes one pixel, the block's mean, which is its DC
//! coefficient: no inverse DCT, and no AC coefficient kept. A sequential file's AC
//! coefficients must still be entropy-decoded to find where the next block starts, but
//! only to be skipped (no dequantising, zig-zag order or coefficient buffer); a progressive
//! file's AC scans are skipped whole. The values are jpeg-decoder's 1/8 scale (its 1x1
//! IDCT is the same DC rounding), which stays the fallback for everything this does not
//! take: arithmetic coding, 12-bit samples, lossless, CMYK/YCCK and RGB-coded files, and
//! any file it finds malformed (so the fallback names the error).

mod bits;
mod colour;
mod huffman;
mod markers;
mod scan;
#[cfg(test)]
mod tests;

use bits::{Bits, Unstuffed};
use colour::{Plane, ycbcr_to_rgb};
use huffman::Huffman;
pub use markers::dimensions;
use markers::{be16, next_marker};
use scan::{Component, DcScan, decode_dc_scan};

/// A JPEG at 1/8 scale: `ceil(width / 8) x ceil(height / 8)` RGB pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct DcImage<'a> {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    /// The EXIF payload (from the TIFF header on), for the orientation.
    pub exif: Option<&'a [u8]>,
}

/// Decode at 1/8 scale, or `None` for a file to hand to the full decoder (see the module
/// doc for which) or one whose header claims more than `max_pixels` (the full decoder's
/// limits then name the problem).
pub fn decode(data: &[u8], max_pixels: u64) -> Option<DcImage<'_>> {
    if data.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut dc_tables: [Option<Huffman>; 4] = Default::default();
    let mut ac_tables: [Option<Huffman>; 4] = Default::default();
    let mut quant_dc = [None::<i32>; 4];
    let mut components: Vec<Component> = Vec::new();
    let (mut width, mut height, mut progressive) = (0usize, 0usize, false);
    let (mut mcux, mut mcuy, mut hmax, mut vmax) = (0usize, 0usize, 1usize, 1usize);
    let mut restart_interval = 0usize;
    let mut exif = None;
    let mut adobe_transform = None;
    let mut pos = 2;
    loop {
        let (after, marker) = next_marker(data, pos)?;
        pos = after;
        if marker == 0xD9 {
            break; // EOI
        }
        let len = be16(data, pos)?;
        let seg = data.get(pos + 2..pos + len)?;
        let seg_end = pos + len;
        match marker {
            0xE1 if seg.starts_with(b"Exif\0\0") && exif.is_none() => exif = Some(&seg[6..]),
            0xEE if seg.starts_with(b"Adobe") && seg.len() >= 12 => adobe_transform = Some(seg[11]),
            0xDB => {
                let mut p = 0;
                while p < seg.len() {
                    let (precision, id) = (seg[p] >> 4, usize::from(seg[p] & 15));
                    let q0 = if precision == 0 {
                        i32::from(*seg.get(p + 1)?)
                    } else {
                        i32::from(u16::from_be_bytes([*seg.get(p + 1)?, *seg.get(p + 2)?]))
                    };
                    *quant_dc.get_mut(id)? = Some(q0);
                    p += 1 + 64 * (usize::from(precision) + 1);
                }
            }
            0xC4 => {
                let mut p = 0;
                while p < seg.len() {
                    let (class, id) = (seg[p] >> 4, usize::from(seg[p] & 15));
                    let counts: [u8; 16] = seg.get(p + 1..p + 17)?.try_into().ok()?;
                    let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
                    let table = Huffman::new(&counts, seg.get(p + 17..p + 17 + n)?, class != 0)?;
                    let slot = if class == 0 { &mut dc_tables } else { &mut ac_tables };
                    *slot.get_mut(id)? = Some(table);
                    p += 17 + n;
                }
            }
            0xDD => restart_interval = be16(seg, 0)?,
            0xC0..=0xC2 => {
                if seg.first() != Some(&8) || !components.is_empty() {
                    return None; // 12-bit samples, or a second frame
                }
                progressive = marker == 0xC2;
                height = be16(seg, 1)?;
                width = be16(seg, 3)?;
                let n = usize::from(*seg.get(5)?);
                if height == 0 || width == 0 || !(n == 1 || n == 3) {
                    return None; // DNL-sized, or CMYK/YCCK
                }
                if (width as u64) * (height as u64) > max_pixels {
                    return None;
                }
                for c in 0..n {
                    let b = seg.get(6 + 3 * c..9 + 3 * c)?;
                    let (h, v) = (usize::from(b[1] >> 4), usize::from(b[1] & 15));
                    if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                        return None;
                    }
                    components.push(Component {
                        id: b[0],
                        h,
                        v,
                        quant: usize::from(b[2] & 3),
                        dc: Vec::new(),
                        stride: 0,
                    });
                }
                hmax = components.iter().map(|c| c.h).max()?;
                vmax = components.iter().map(|c| c.v).max()?;
                mcux = width.div_ceil(8 * hmax);
                mcuy = height.div_ceil(8 * vmax);
                for c in &mut components {
                    c.stride = mcux * c.h;
                    c.dc = vec![0; c.stride * mcuy * c.v];
                }
            }
            // Other frame types: lossless, hierarchical, arithmetic coding.
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
            0xDA => {
                if components.is_empty() {
                    return None;
                }
                let ns = usize::from(*seg.first()?);
                let mut scan = Vec::with_capacity(ns);
                for i in 0..ns {
                    let b = seg.get(1 + 2 * i..3 + 2 * i)?;
                    let c = components.iter().position(|c| c.id == b[0])?;
                    scan.push((c, usize::from(b[1] >> 4), usize::from(b[1] & 15)));
                }
                let tail = seg.get(1 + 2 * ns..4 + 2 * ns)?;
                let (ss, ah, al) = (tail[0], tail[2] >> 4, u32::from(tail[2] & 15));
                pos = if progressive && ss > 0 {
                    seg_end // an AC scan: nothing of it is needed
                } else {
                    let refine = progressive && ah > 0;
                    let sequential = !progressive;
                    let unstuffed = Unstuffed::new(data, seg_end);
                    let mut bits = Bits::new(&unstuffed);
                    decode_dc_scan(
                        &mut bits,
                        &mut components,
                        &scan,
                        DcScan {
                            dc_tables: &dc_tables,
                            ac_tables: &ac_tables,
                            refine,
                            skip_ac: sequential,
                            shift: if progressive { al } else { 0 },
                            restart_interval,
                            mcu: (mcux, mcuy),
                            size: (width, height, hmax, vmax),
                        },
                    )?;
                    if bits.overran() {
                        return None;
                    }
                    unstuffed.end
                };
                continue;
            }
            _ => {}
        }
        pos = seg_end;
    }
    if components.is_empty() {
        return None;
    }
    // RGB-coded three-component files (Adobe transform 0) are left to the full decoder.
    if components.len() == 3 && adobe_transform == Some(0) {
        return None;
    }
    let planes: Vec<Plane> = components
        .iter()
        .map(|c| {
            let q = i64::from(quant_dc[c.quant]?);
            // jpeg-decoder's 1x1 IDCT: dequantise, level-shift, divide by 8, clamp (a
            // negative sum clamps to 0 whichever way it rounds).
            let data =
                c.dc.iter()
                    .map(|&d| ((i64::from(d) * q + 1024) >> 3).clamp(0, 255) as u8)
                    .collect();
            Some(Plane {
                data,
                stride: c.stride,
                width: (width * c.h).div_ceil(hmax).div_ceil(8),
                height: (height * c.v).div_ceil(vmax).div_ceil(8),
                factors: (hmax / c.h, vmax / c.v),
            })
        })
        .collect::<Option<_>>()?;
    let (w, h) = (width.div_ceil(8), height.div_ceil(8));
    if planes.iter().any(|p| p.width * p.factors.0 < w) {
        return None; // sampling factors that do not divide the largest
    }
    let mut rgb = vec![0u8; w * h * 3];
    let mut scratch = vec![Vec::new(); planes.len()];
    for (y, out) in rgb.chunks_exact_mut(w * 3).enumerate() {
        let rows: Vec<&[u8]> = planes
            .iter()
            .zip(&mut scratch)
            .map(|(plane, buf)| &plane.upsampled_row(y, buf)[..w])
            .collect();
        match rows.as_slice() {
            [l] => {
                for (px, &l) in out.chunks_exact_mut(3).zip(*l) {
                    px.fill(l);
                }
            }
            [l, cb, cr] => {
                for (px, ((&l, &cb), &cr)) in out.chunks_exact_mut(3).zip(l.iter().zip(*cb).zip(*cr)) {
                    px.copy_from_slice(&ycbcr_to_rgb(l, cb, cr));
                }
            }
            _ => return None,
        }
    }
    Some(DcImage {
        width: w as u32,
        height: h as u32,
        rgb,
        exif,
    })
}
