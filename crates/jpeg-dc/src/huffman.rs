//! Huffman tables (JPEG Annex C) with the lookups the scan needs: one read per code up
//! to `FAST_BITS`, and skip entries that step over several AC coefficients per read.

/// Huffman lookahead: codes up to this many bits decode with one table read.
pub(crate) const FAST_BITS: u32 = 9;
/// Lookahead of the AC skip table, which steps over several coefficients per read.
pub(crate) const SKIP_BITS: u32 = 12;
/// Skip-table flag: the entry ends with the end-of-block code.
pub(crate) const SKIP_EOB: u16 = 1 << 12;
/// Skip-table entry for a code longer than the lookahead: it claims all 63 positions, so
/// the one test for running past the block's end also sends it to the slow path.
pub(crate) const SKIP_SLOW: u16 = 63 << 6;
/// Most bits one AC skip entry covers: a code within the lookahead and its at most 10
/// extra bits (8-bit samples). [`Bits::skip_ac`]'s buffer arithmetic rests on it.
pub(crate) const MAX_STEP_BITS: u32 = 22;
/// Largest DC difference size a DC table entry holds (10 bits of two's complement).
pub(crate) const DC_ENTRY_MAX_SIZE: u32 = 9;

pub(crate) struct Huffman {
    /// Indexed by the next `FAST_BITS` bits: `(length << 8) | symbol`, 0 if longer.
    pub(crate) fast: Vec<u16>,
    /// For DC tables, indexed by the next `SKIP_BITS` bits: see [`Huffman::dc_entry`].
    /// For AC tables, by the same index: the coefficients whose codes
    /// start inside them, as `bits of their codes and extra bits | zig-zag positions
    /// advanced << 6 | SKIP_EOB`; `SKIP_SLOW` if the first code is longer. Skipping needs no
    /// coefficient value, so one read steps over every coefficient it covers: the serial
    /// chain from one code's length to the next code's position is most of the work.
    /// 16-bit entries keep all four tables (32 KiB) in the L1 cache.
    pub(crate) skip: Box<[u16; 1 << SKIP_BITS]>,
    /// Largest code of each length (index 1..=16), -1 when there is none.
    pub(crate) maxcode: [i32; 17],
    /// Added to a code of each length to index `values`.
    pub(crate) offset: [i32; 17],
    pub(crate) values: Vec<u8>,
}

impl Huffman {
    /// From a DHT segment's 16 counts and its symbols (JPEG Annex C); `ac` builds the
    /// skip table too.
    pub(crate) fn new(counts: &[u8; 16], values: &[u8], ac: bool) -> Option<Self> {
        let mut fast = vec![0u16; 1 << FAST_BITS];
        let mut maxcode = [-1i32; 17];
        let mut offset = [0i32; 17];
        let (mut code, mut k) = (0i32, 0usize);
        for len in 1..=16u32 {
            let n = usize::from(counts[len as usize - 1]);
            if n > 0 {
                offset[len as usize] = k as i32 - code;
                for _ in 0..n {
                    if code >= 1 << len {
                        return None; // more codes than the length has room for
                    }
                    let symbol = *values.get(k)?;
                    if len <= FAST_BITS {
                        let shift = FAST_BITS - len;
                        let first = (code as usize) << shift;
                        for entry in &mut fast[first..first + (1 << shift)] {
                            *entry = ((len as u16) << 8) | u16::from(symbol);
                        }
                    }
                    code += 1;
                    k += 1;
                }
                maxcode[len as usize] = code - 1;
            }
            code <<= 1;
        }
        let mut table = Huffman {
            fast,
            skip: Box::new([0; 1 << SKIP_BITS]),
            maxcode,
            offset,
            values: values[..k].to_vec(),
        };
        for p in 0..1u64 << SKIP_BITS {
            table.skip[p as usize] = if ac { table.skip_entry(p) } else { table.dc_entry(p) };
        }
        Some(table)
    }

    /// The code at the top of `bits`: its length and symbol.
    pub(crate) fn decode(&self, bits: u64) -> Option<(u32, u8)> {
        let entry = self.fast[(bits >> (64 - FAST_BITS)) as usize];
        if entry != 0 {
            return Some((u32::from(entry >> 8), entry as u8));
        }
        (FAST_BITS + 1..=16).find_map(|len| {
            let code = (bits >> (64 - len)) as i32;
            (code <= self.maxcode[len as usize])
                .then(|| {
                    self.values
                        .get((code + self.offset[len as usize]) as usize)
                        .map(|&s| (len, s))
                })
                .flatten()
        })
    }

    /// A DC table's `skip` entry: `bits of the code and its extra bits | difference << 6`
    /// (10 bits, two's complement) when both fit in the `SKIP_BITS`-bit `pattern` and the
    /// size is at most `DC_ENTRY_MAX_SIZE`, else 0.
    pub(crate) fn dc_entry(&self, pattern: u64) -> u16 {
        let bits = pattern << (64 - SKIP_BITS);
        match self.decode(bits) {
            Some((len, size)) if u32::from(size) <= DC_ENTRY_MAX_SIZE && len + u32::from(size) <= SKIP_BITS => {
                let size = u32::from(size);
                let v = if size == 0 {
                    0
                } else {
                    ((bits << len) >> (64 - size)) as i32
                };
                (len + size) as u16 | ((extend(v, size) as u16) << 6)
            }
            _ => 0,
        }
    }

    /// The `skip` entry for the `SKIP_BITS`-bit pattern `pattern`.
    pub(crate) fn skip_entry(&self, pattern: u64) -> u16 {
        let (mut pos, mut advance) = (0u32, 0u32);
        let entry = |pos: u32, advance: u32| (pos | advance << 6) as u16;
        while pos < SKIP_BITS {
            // Bits past the pattern read as zeros: a code must end inside it.
            let Some((len, rs)) = self.decode(pattern << (64 - SKIP_BITS + pos)) else {
                break;
            };
            if pos + len > SKIP_BITS {
                break;
            }
            let (run, size) = (u32::from(rs >> 4), u32::from(rs & 15));
            let step = match (size, run) {
                (0, 15) => 16,
                (0, _) => return entry(pos + len, advance) | SKIP_EOB,
                _ => run + 1,
            };
            if advance + step > 63 {
                break; // the 6-bit field is full (a table of short zero-run codes)
            }
            if pos + len + size > MAX_STEP_BITS {
                break; // only a size over 10, which 8-bit samples never code, gets here first
            }
            pos += len + size; // the extra bits may run past the pattern: only counted
            advance += step;
        }
        if pos == 0 { SKIP_SLOW } else { entry(pos, advance) }
    }
}

/// JPEG's sign extension of a `size`-bit magnitude category value (F.12).
pub(crate) fn extend(v: i32, size: u32) -> i32 {
    if size > 0 && v < 1 << (size - 1) {
        v - (1 << size) + 1
    } else {
        v
    }
}
