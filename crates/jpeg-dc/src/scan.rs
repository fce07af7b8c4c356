//! One scan's DC coefficients, block by block, AC coefficients stepped over.

use crate::bits::Bits;
use crate::huffman::Huffman;

pub(crate) struct Component {
    pub(crate) id: u8,
    pub(crate) h: usize,
    pub(crate) v: usize,
    pub(crate) quant: usize,
    /// DC coefficients, one per block of the MCU-padded grid, row-major.
    pub(crate) dc: Vec<i32>,
    /// Blocks per row in `dc`.
    pub(crate) stride: usize,
}

pub(crate) struct DcScan<'t> {
    pub(crate) dc_tables: &'t [Option<Huffman>; 4],
    pub(crate) ac_tables: &'t [Option<Huffman>; 4],
    /// A progressive DC refinement scan: one bit per block.
    pub(crate) refine: bool,
    /// A sequential scan: each block's AC coefficients follow its DC.
    pub(crate) skip_ac: bool,
    /// Successive-approximation shift of a progressive DC scan.
    pub(crate) shift: u32,
    pub(crate) restart_interval: usize,
    pub(crate) mcu: (usize, usize),
    /// Width, height, largest horizontal and vertical sampling factors.
    pub(crate) size: (usize, usize, usize, usize),
}

/// One block of an MCU in coding order: its component's index in the scan, the blocks
/// of that component one MCU spans across and down (1 x 1 in a non-interleaved scan), and
/// where this block lies among them.
struct Unit {
    scan: usize,
    comp: usize,
    span: (usize, usize),
    offset: (usize, usize),
}

pub(crate) fn decode_dc_scan(
    bits: &mut Bits<'_>,
    components: &mut [Component],
    scan: &[(usize, usize, usize)],
    s: DcScan<'_>,
) -> Option<()> {
    // Each scan component's (DC, AC) tables, checked once rather than per block: a slot
    // out of range hands the file over. A progressive first DC scan codes no AC; a
    // refinement scan codes neither.
    let mut tables: Vec<(&Huffman, Option<&Huffman>)> = Vec::with_capacity(scan.len());
    for &(_, td, ta) in scan {
        let (dc, ac) = (s.dc_tables.get(td)?.as_ref(), s.ac_tables.get(ta)?.as_ref());
        if !s.refine {
            tables.push((dc?, if s.skip_ac { Some(ac?) } else { None }));
        }
    }
    let (width, height, hmax, vmax) = s.size;
    // The MCU grid and the blocks of one MCU. A non-interleaved scan's MCU is one block of
    // its component's own grid, in raster order.
    let (units, (mcux, mcuy)) = if let [(c, _, _)] = *scan {
        let comp = &components[c];
        let bw = (width * comp.h).div_ceil(hmax).div_ceil(8);
        let bh = (height * comp.v).div_ceil(vmax).div_ceil(8);
        let one = Unit {
            scan: 0,
            comp: c,
            span: (1, 1),
            offset: (0, 0),
        };
        (vec![one], (bw, bh))
    } else {
        let mut units = Vec::new();
        for (i, &(c, _, _)) in scan.iter().enumerate() {
            let comp = &components[c];
            for dy in 0..comp.v {
                for dx in 0..comp.h {
                    units.push(Unit {
                        scan: i,
                        comp: c,
                        span: (comp.h, comp.v),
                        offset: (dx, dy),
                    });
                }
            }
        }
        (units, s.mcu)
    };
    let mut preds = vec![0i32; scan.len()];
    let total = mcux * mcuy;
    let mut until_restart = s.restart_interval;
    for my in 0..mcuy {
        for mx in 0..mcux {
            for u in &units {
                let comp = &mut components[u.comp];
                let (bx, by) = (mx * u.span.0 + u.offset.0, my * u.span.1 + u.offset.1);
                let slot = comp.dc.get_mut(by * comp.stride + bx);
                if s.refine {
                    bits.refill();
                    if bits.take(1) == 1
                        && let Some(d) = slot
                    {
                        *d |= 1 << s.shift;
                    }
                    continue;
                }
                let (dc, ac) = tables[u.scan];
                let pred = &mut preds[u.scan];
                *pred = pred.wrapping_add(bits.dc_diff(dc)?);
                if let Some(d) = slot {
                    *d = *pred << s.shift;
                }
                if let Some(ac) = ac {
                    bits.skip_ac(ac)?;
                }
            }
            if s.restart_interval > 0 {
                until_restart -= 1;
                if until_restart == 0 && my * mcux + mx + 1 < total {
                    until_restart = s.restart_interval;
                    preds.fill(0);
                    bits.restart()?;
                }
            }
        }
        // A scan that ran out of data is not decoded to its end on zero bits.
        if bits.overran() {
            return None;
        }
    }
    Some(())
}
