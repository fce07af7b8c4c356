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

use std::ops::ControlFlow;

/// Huffman lookahead: codes up to this many bits decode with one table read.
const FAST_BITS: u32 = 9;
/// Lookahead of the AC skip table, which steps over several coefficients per read.
const SKIP_BITS: u32 = 12;
/// Skip-table flag: the entry ends with the end-of-block code.
const SKIP_EOB: u16 = 1 << 12;
/// Skip-table entry for a code longer than the lookahead: it claims all 63 positions, so
/// the one test for running past the block's end also sends it to the slow path.
const SKIP_SLOW: u16 = 63 << 6;
/// Most bits one AC skip entry covers: a code within the lookahead and its at most 10
/// extra bits (8-bit samples). [`Bits::skip_ac`]'s buffer arithmetic rests on it.
const MAX_STEP_BITS: u32 = 22;
/// Largest DC difference size a DC table entry holds (10 bits of two's complement).
const DC_ENTRY_MAX_SIZE: u32 = 9;

/// A JPEG at 1/8 scale: `ceil(width / 8) x ceil(height / 8)` RGB pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct DcImage<'a> {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    /// The EXIF payload (from the TIFF header on), for the orientation.
    pub exif: Option<&'a [u8]>,
}

struct Huffman {
    /// Indexed by the next `FAST_BITS` bits: `(length << 8) | symbol`, 0 if longer.
    fast: Vec<u16>,
    /// For DC tables, indexed by the next `SKIP_BITS` bits: see [`Huffman::dc_entry`].
    /// For AC tables, by the same index: the coefficients whose codes
    /// start inside them, as `bits of their codes and extra bits | zig-zag positions
    /// advanced << 6 | SKIP_EOB`; `SKIP_SLOW` if the first code is longer. Skipping needs no
    /// coefficient value, so one read steps over every coefficient it covers: the serial
    /// chain from one code's length to the next code's position is most of the work.
    /// 16-bit entries keep all four tables (32 KiB) in the L1 cache.
    skip: Box<[u16; 1 << SKIP_BITS]>,
    /// Largest code of each length (index 1..=16), -1 when there is none.
    maxcode: [i32; 17],
    /// Added to a code of each length to index `values`.
    offset: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    /// From a DHT segment's 16 counts and its symbols (JPEG Annex C); `ac` builds the
    /// skip table too.
    fn new(counts: &[u8; 16], values: &[u8], ac: bool) -> Option<Self> {
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
    fn decode(&self, bits: u64) -> Option<(u32, u8)> {
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
    fn dc_entry(&self, pattern: u64) -> u16 {
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
    fn skip_entry(&self, pattern: u64) -> u16 {
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

/// A scan's entropy-coded data with its byte stuffing undone and its restart markers
/// taken out, so the reader can load eight bytes anywhere without looking for 0xFF.
struct Unstuffed {
    bytes: Vec<u8>,
    /// Where each restart interval after the first starts in `bytes`.
    restarts: Vec<usize>,
    /// File position of the marker that ended the scan (the file's end if none did).
    end: usize,
}

impl Unstuffed {
    fn new(data: &[u8], start: usize) -> Self {
        let mut bytes = Vec::with_capacity(data.len().saturating_sub(start));
        let mut restarts = Vec::new();
        let mut pos = start.min(data.len());
        loop {
            let Some(rel) = memchr::memchr(0xFF, &data[pos..]) else {
                bytes.extend_from_slice(&data[pos..]);
                pos = data.len();
                break;
            };
            bytes.extend_from_slice(&data[pos..pos + rel]);
            pos += rel;
            match data.get(pos + 1) {
                Some(0x00) => bytes.push(0xFF),
                Some(0xD0..=0xD7) => restarts.push(bytes.len()),
                _ => break, // any other marker (or fill bytes before one) ends the scan
            }
            pos += 2;
        }
        Unstuffed {
            bytes,
            restarts,
            end: pos,
        }
    }
}

/// MSB-first reader of unstuffed entropy-coded data. Each refill tops the buffer up to
/// at least 56 bits without a branch on how many it holds (bits past the data read as
/// zeros, and reading them is noticed by [`Bits::overran`]): the skip loop's serial chain
/// is then one table read and one shift per step.
struct Bits<'a> {
    data: &'a Unstuffed,
    /// Bytes loaded into `acc` so far.
    pos: usize,
    acc: u64,
    /// Valid bits at the top of `acc` in its low 6 bits ([`Bits::count`]); the bits above
    /// are borrows of no meaning, left by table entries subtracted whole (see
    /// [`Bits::consume_entry`]).
    count_bits: u32,
    /// End of the current restart interval in `data.bytes`.
    limit: usize,
    /// Restart intervals begun.
    interval: usize,
}

impl<'a> Bits<'a> {
    /// A reader with its buffer filled, as every block's start expects (see
    /// [`Bits::dc_diff`]).
    fn new(data: &'a Unstuffed) -> Self {
        let mut bits = Bits {
            data,
            pos: 0,
            acc: 0,
            count_bits: 0,
            limit: data.restarts.first().copied().unwrap_or(data.bytes.len()),
            interval: 0,
        };
        bits.refill();
        bits
    }

    /// Keep at least 56 bits buffered: two skip steps (<= 22 bits each) or one code and
    /// its extra bits (<= 32).
    #[inline(always)]
    fn refill(&mut self) {
        let word = self
            .data
            .bytes
            .get(self.pos..)
            .and_then(|b| b.first_chunk::<8>())
            .map_or_else(|| self.tail_word(), |b| u64::from_be_bytes(*b));
        // The bits past the count in `acc` are already these same bits (or zeros).
        self.acc |= word.wrapping_shr(self.count_bits);
        self.pos += (63 - self.count() as usize) >> 3;
        self.count_bits |= 56;
    }

    /// Valid bits at the top of `acc`.
    #[inline(always)]
    fn count(&self) -> u32 {
        self.count_bits & 63
    }

    /// The last bytes of the data, then zeros.
    #[cold]
    fn tail_word(&self) -> u64 {
        let mut word = [0u8; 8];
        if let Some(rest) = self.data.bytes.get(self.pos..) {
            word[..rest.len()].copy_from_slice(rest);
        }
        u64::from_be_bytes(word)
    }

    #[inline(always)]
    fn take(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let v = (self.acc >> (64 - n)) as u32;
        self.consume(n);
        v
    }

    /// Drop `n` (< 64, <= the count) bits.
    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.acc <<= n;
        self.count_bits = self.count_bits.wrapping_sub(n);
    }

    /// Drop the bits a table entry covers (its low 6 bits). The shift and the count both
    /// take the entry whole, the shift because it uses the low 6 bits of its amount (as
    /// the x86 and arm64 instructions do), the count because only its own low 6 bits
    /// mean anything: no mask sits between the table read and the next index.
    #[inline(always)]
    fn consume_entry(&mut self, e: u16) {
        self.acc = self.acc.wrapping_shl(u32::from(e));
        self.count_bits = self.count_bits.wrapping_sub(u32::from(e));
    }

    #[inline]
    fn symbol(&mut self, table: &Huffman) -> Option<u8> {
        let (len, symbol) = table.decode(self.acc)?;
        self.consume(len);
        Some(symbol)
    }

    /// `table.skip`'s entry for the next bits (0 when there is none: take the slow path).
    #[inline(always)]
    fn skip_entry(&self, table: &Huffman) -> u16 {
        table.skip[self.skip_index()]
    }

    /// The next `SKIP_BITS` bits, a `skip` table index.
    #[inline(always)]
    fn skip_index(&self) -> usize {
        (self.acc >> (64 - SKIP_BITS)) as usize
    }

    /// A DC difference: its size category, then that many bits, sign-extended. At least 12
    /// bits are buffered at every block's start (after a refill, [`Bits::skip_ac`] or its
    /// slow path), so the index is read before the refill, as in `skip_ac`. Leaves at least
    /// 44 (56 less a 12-bit entry, or a refill after the slow path), what `skip_ac` counts
    /// on.
    #[inline(always)]
    fn dc_diff(&mut self, table: &Huffman) -> Option<i32> {
        let index = self.skip_index();
        self.refill();
        let e = table.skip[index];
        if e != 0 {
            self.consume_entry(e);
            return Some(i32::from((e as i16) >> 6));
        }
        self.dc_diff_slow(table)
    }

    #[inline(never)]
    fn dc_diff_slow(&mut self, table: &Huffman) -> Option<i32> {
        let size = u32::from(self.symbol(table)?);
        if size > 16 {
            return None;
        }
        let v = self.take(size) as i32;
        self.refill();
        Some(extend(v, size))
    }

    /// Step over one block's 63 AC coefficients, two table steps per refill. The second
    /// step's table index is read before the refill, so the refill's OR runs beside that
    /// lookup instead of in the chain of lookups, which is all this loop waits on: a
    /// lookup, then a shift, then the next lookup.
    #[inline(always)]
    fn skip_ac(&mut self, table: &Huffman) -> Option<()> {
        let mut k = 1;
        // Steps take at most `MAX_STEP_BITS` (22). On entry at least 44 bits are buffered
        // (see `dc_diff`) and at the loop's top at least 34 (56 after the refill, less one
        // step), so the first step leaves at least 12: the second step's index.
        loop {
            let e = self.skip_entry(table);
            k = match self.skip_step(table, e, k) {
                ControlFlow::Continue(k) => k,
                ControlFlow::Break(done) => return done,
            };
            let index = self.skip_index();
            self.refill();
            k = match self.skip_step(table, table.skip[index], k) {
                ControlFlow::Continue(k) => k,
                ControlFlow::Break(done) => return done,
            };
        }
    }

    /// One `skip_ac` step from position `k` with skip entry `e`: the position after it, or
    /// the block's outcome once it ends here or needs the slow path.
    #[inline(always)]
    fn skip_step(&mut self, table: &Huffman, e: u16, k: u32) -> ControlFlow<Option<()>, u32> {
        let end = k + u32::from((e >> 6) & 63);
        // Taken whole only if every coefficient it covers lies in this block (an
        // end-of-block code can only follow a position below 63).
        if end >= 64 {
            return ControlFlow::Break(self.skip_ac_slow(table, k));
        }
        self.consume_entry(e);
        if e & SKIP_EOB != 0 {
            return ControlFlow::Break(Some(()));
        }
        ControlFlow::Continue(end)
    }

    /// The rest of a block from position `k`, a code at a time: codes longer than the skip
    /// table's lookahead, and the last coefficients of a block filled to position 63.
    #[inline(never)]
    fn skip_ac_slow(&mut self, table: &Huffman, mut k: u32) -> Option<()> {
        while k < 64 {
            self.refill();
            let e = self.skip_entry(table);
            let end = k + u32::from((e >> 6) & 63);
            if e != SKIP_SLOW && (end < 64 || (end == 64 && e & SKIP_EOB == 0)) {
                self.consume_entry(e);
                if e & SKIP_EOB != 0 {
                    break;
                }
                k = end;
                continue;
            }
            let rs = self.symbol(table)?;
            let (run, size) = (u32::from(rs >> 4), u32::from(rs & 15));
            if size == 0 {
                if run != 15 {
                    break; // end of block
                }
                k += 16;
            } else {
                self.take(size);
                k += run + 1;
            }
        }
        Some(())
    }

    /// Start the next restart interval: drop buffered bits and move to its data. A file
    /// with fewer restart markers than its interval count is handed to the full decoder.
    fn restart(&mut self) -> Option<()> {
        if self.overran() {
            return None;
        }
        self.pos = *self.data.restarts.get(self.interval)?;
        self.interval += 1;
        self.limit = self
            .data
            .restarts
            .get(self.interval)
            .copied()
            .unwrap_or(self.data.bytes.len());
        self.acc = 0;
        self.count_bits = 0;
        self.refill();
        Some(())
    }

    /// Whether the scan consumed bits past the end of its data (or of its restart
    /// interval): a valid scan's last byte is padded with ones, never read.
    fn overran(&self) -> bool {
        8 * self.pos as u64 - u64::from(self.count()) > 8 * self.limit as u64
    }
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
    quant: usize,
    /// DC coefficients, one per block of the MCU-padded grid, row-major.
    dc: Vec<i32>,
    /// Blocks per row in `dc`.
    stride: usize,
}

/// JPEG's sign extension of a `size`-bit magnitude category value (F.12).
fn extend(v: i32, size: u32) -> i32 {
    if size > 0 && v < 1 << (size - 1) {
        v - (1 << size) + 1
    } else {
        v
    }
}

/// Position just past the next marker's `FF xx` (xx not a stuffed zero or a restart),
/// and that marker.
fn next_marker(data: &[u8], mut pos: usize) -> Option<(usize, u8)> {
    loop {
        pos += data.get(pos..)?.iter().position(|&b| b == 0xFF)?;
        let m = *data.get(pos + 1)?;
        match m {
            0x00 | 0xD0..=0xD7 | 0xFF => pos += 1,
            _ => return Some((pos + 2, m)),
        }
    }
}

fn be16(data: &[u8], pos: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([*data.get(pos)?, *data.get(pos + 1)?])))
}

/// The frame header's width and height, or `None` when no frame header comes before the
/// first scan (the full decoder then names the problem). Reads the marker segments only.
pub fn dimensions(data: &[u8]) -> Option<(u32, u32)> {
    if data.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut pos = 2;
    loop {
        let (after, marker) = next_marker(data, pos)?;
        match marker {
            0xD9 | 0xDA => return None,
            // Start of frame, any coding (0xC4, 0xC8 and 0xCC are tables and a reserved code).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let height = be16(data, after + 3)?;
                let width = be16(data, after + 5)?;
                return Some((width as u32, height as u32));
            }
            _ => pos = after + be16(data, after)?,
        }
    }
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

/// One component's samples at 1/8 scale (one per block), `stride` apart per row.
struct Plane {
    data: Vec<u8>,
    stride: usize,
    width: usize,
    height: usize,
    /// Upsampling factors to the largest component's grid.
    factors: (usize, usize),
}

impl Plane {
    /// Row `y` of the plane; below the last row, the last row again (what jpeg-decoder's
    /// edge handling gives).
    fn row(&self, y: usize) -> &[u8] {
        let start = y.min(self.height - 1) * self.stride;
        &self.data[start..start + self.width]
    }

    /// Output row `y` at full resolution, as jpeg-decoder upsamples (and libjpeg's "fancy"
    /// upsampling): a triangle filter for factors of 2 (3/4 nearer sample, 1/4 farther),
    /// repetition for the others. A full-resolution row is borrowed, not copied.
    fn upsampled_row<'s>(&'s self, y: usize, out: &'s mut Vec<u8>) -> &'s [u8] {
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
fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    const SHIFT: i32 = 20;
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

struct DcScan<'t> {
    dc_tables: &'t [Option<Huffman>; 4],
    ac_tables: &'t [Option<Huffman>; 4],
    /// A progressive DC refinement scan: one bit per block.
    refine: bool,
    /// A sequential scan: each block's AC coefficients follow its DC.
    skip_ac: bool,
    /// Successive-approximation shift of a progressive DC scan.
    shift: u32,
    restart_interval: usize,
    mcu: (usize, usize),
    /// Width, height, largest horizontal and vertical sampling factors.
    size: (usize, usize, usize, usize),
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

fn decode_dc_scan(
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

#[cfg(test)]
mod tests {
    use super::*;
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

    /// Gradients, blocky shapes and noise, so DC values, AC runs and chroma all vary.
    fn picture(w: usize, h: usize) -> Vec<u8> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut out = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let n = (state % 40) as usize;
                let disc = ((x as i64 - 400).pow(2) + (y as i64 - 300).pow(2)) < 200 * 200;
                out.extend([
                    ((x * 255 / w + n) % 256) as u8,
                    if disc { 220 } else { ((y * 255 / h) % 256) as u8 },
                    (((x / 37 + y / 23) % 5) * 50 + n) as u8,
                ]);
            }
        }
        out
    }

    fn encode(rgb: &[u8], w: usize, h: usize, sampling: SamplingFactor, progressive: bool, restart: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = Encoder::new(&mut out, 80);
        enc.set_sampling_factor(sampling);
        enc.set_progressive(progressive);
        enc.set_restart_interval(restart);
        enc.encode(rgb, w as u16, h as u16, ColorType::Rgb).unwrap();
        out
    }

    fn gray(rgb: &[u8]) -> Vec<u8> {
        rgb.chunks(3).map(|p| p[1]).collect()
    }

    /// jpeg-decoder at its 1/8 scale, as RGB.
    fn reference(jpeg: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut d = jpeg_decoder::Decoder::new(jpeg);
        d.read_info().unwrap();
        let info = d.info().unwrap();
        let (w, h) = d.scale(info.width.div_ceil(8), info.height.div_ceil(8)).unwrap();
        let px = d.decode().unwrap();
        let rgb = match d.info().unwrap().pixel_format {
            jpeg_decoder::PixelFormat::L8 => px.iter().flat_map(|&l| [l, l, l]).collect(),
            jpeg_decoder::PixelFormat::RGB24 => px,
            other => panic!("{other:?}"),
        };
        (u32::from(w), u32::from(h), rgb)
    }

    fn compare(jpeg: &[u8], what: &str, max_mean: f64, max_abs: u8) {
        let ours = decode(jpeg, u64::MAX).unwrap_or_else(|| panic!("{what}: fell back"));
        let (w, h, want) = reference(jpeg);
        assert_eq!((ours.width, ours.height), (w, h), "{what}");
        let diffs: Vec<u8> = ours.rgb.iter().zip(&want).map(|(a, b)| a.abs_diff(*b)).collect();
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        let max = diffs.iter().copied().max().unwrap();
        assert!(mean <= max_mean && max <= max_abs, "{what}: mean {mean:.3}, max {max}");
    }

    #[test]
    fn matches_jpeg_decoders_eighth_scale() {
        // Sides that are not multiples of the MCU, so partial MCUs and padding blocks occur.
        let (w, h) = (1037, 771);
        let rgb = picture(w, h);
        // Full-resolution chroma: the same values but for jpeg-decoder's SIMD colour
        // conversion, which rounds at lower precision than its scalar code (and this).
        for (progressive, restart) in [(false, 0), (false, 7), (true, 0), (true, 5)] {
            let jpeg = encode(&rgb, w, h, SamplingFactor::F_1_1, progressive, restart);
            compare(
                &jpeg,
                &format!("4:4:4 progressive {progressive} restart {restart}"),
                0.05,
                1,
            );
            assert_eq!(dimensions(&jpeg), Some((w as u32, h as u32)));
        }
        // Subsampled chroma, upsampled the same way (4:1:1 by repetition in both).
        for sampling in [
            SamplingFactor::F_2_2,
            SamplingFactor::F_2_1,
            SamplingFactor::F_1_2,
            SamplingFactor::F_4_1,
        ] {
            for (progressive, restart) in [(false, 0), (false, 3), (true, 2)] {
                let jpeg = encode(&rgb, w, h, sampling, progressive, restart);
                compare(
                    &jpeg,
                    &format!("{sampling:?} progressive {progressive} restart {restart}"),
                    0.05,
                    1,
                );
            }
        }
        // Quality 100: blocks coded to their last position (no end-of-block code) and long
        // codes, the skip loop's slow paths.
        let mut jpeg = Vec::new();
        let mut enc = Encoder::new(&mut jpeg, 100);
        enc.set_sampling_factor(SamplingFactor::F_2_2);
        enc.set_restart_interval(6);
        enc.encode(&rgb, w as u16, h as u16, ColorType::Rgb).unwrap();
        compare(&jpeg, "quality 100, 4:2:0, restart 6", 0.05, 1);
        // Greyscale.
        for (progressive, restart) in [(false, 0), (true, 4)] {
            let mut jpeg = Vec::new();
            let mut enc = Encoder::new(&mut jpeg, 80);
            enc.set_progressive(progressive);
            enc.set_restart_interval(restart);
            enc.encode(&gray(&rgb), w as u16, h as u16, ColorType::Luma).unwrap();
            compare(&jpeg, &format!("grey progressive {progressive}"), 0.0, 0);
        }
    }

    #[test]
    fn dimensions_come_from_the_frame_header() {
        let jpeg = encode(&picture(53, 29), 53, 29, SamplingFactor::F_2_2, true, 0);
        assert_eq!(dimensions(&jpeg), Some((53, 29)));
        let sof = jpeg.windows(2).position(|m| m == [0xFF, 0xC2]).unwrap();
        // Cut inside the frame header, or with no frame header before the scan.
        assert_eq!(dimensions(&jpeg[..sof + 6]), None);
        let mut no_frame = jpeg.clone();
        no_frame[sof + 1] = 0xDA;
        assert_eq!(dimensions(&no_frame), None);
        assert_eq!(dimensions(b"not a jpeg"), None);
        assert_eq!(dimensions(&[0xFF, 0xD8]), None);
    }

    #[test]
    fn libjpeg_files_match_too() {
        // Written by Pillow's libjpeg: another encoder's tables, padding and restart
        // markers, at sides (40x24) that leave partial MCUs. The fuzzer starts from them.
        let seeds = [
            &include_bytes!("../../fuzz/seeds/jpeg_dc/baseline-420.jpg")[..],
            include_bytes!("../../fuzz/seeds/jpeg_dc/baseline-422.jpg"),
            include_bytes!("../../fuzz/seeds/jpeg_dc/baseline-444.jpg"),
            include_bytes!("../../fuzz/seeds/jpeg_dc/progressive-420.jpg"),
            include_bytes!("../../fuzz/seeds/jpeg_dc/grey-progressive.jpg"),
            include_bytes!("../../fuzz/seeds/jpeg_dc/restart-420.jpg"),
        ];
        for (i, jpeg) in seeds.iter().enumerate() {
            compare(jpeg, &format!("libjpeg seed {i}"), 0.5, 1);
        }
    }

    #[test]
    fn the_exif_payload_is_found() {
        let rgb = picture(64, 48);
        let mut jpeg = Vec::new();
        let mut enc = Encoder::new(&mut jpeg, 80);
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend(b"MM\0\x2a\0\0\0\x08\0\0");
        enc.add_app_segment(1, exif.clone()).unwrap();
        enc.encode(&rgb, 64, 48, ColorType::Rgb).unwrap();
        assert_eq!(decode(&jpeg, u64::MAX).unwrap().exif, Some(&exif[6..]));
    }

    #[test]
    fn cmyk_falls_back_and_damaged_files_never_panic() {
        let (w, h) = (96, 80);
        let mut cmyk = Vec::new();
        Encoder::new(&mut cmyk, 80)
            .encode(&vec![100u8; w * h * 4], w as u16, h as u16, ColorType::Cmyk)
            .unwrap();
        assert_eq!(decode(&cmyk, u64::MAX), None);
        // Found by the fuzzer: a frame far larger than its scan's data, once decoded to
        // the end on zero bits until a counter overflowed.
        let overrun = include_bytes!("../../fuzz/seeds/jpeg_dc/regression-scan-past-its-data.jpg");
        assert_eq!(decode(overrun, u64::MAX), None);
        assert_eq!(decode(b"not a jpeg", u64::MAX), None);
        let rgb = picture(w, h);
        for (progressive, restart) in [(false, 0), (false, 2), (true, 0)] {
            let jpeg = encode(&rgb, w, h, SamplingFactor::F_2_2, progressive, restart);
            assert!(decode(&jpeg, u64::MAX).is_some());
            assert_eq!(decode(&jpeg, (w * h - 1) as u64), None, "larger than the limit");
            let mut state = 0x2545_F491u64;
            for cut in (0..jpeg.len()).step_by(7) {
                let _ = decode(&jpeg[..cut], u64::MAX);
            }
            for _ in 0..2000 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let mut bad = jpeg.clone();
                let i = (state % bad.len() as u64) as usize;
                bad[i] = (state >> 32) as u8;
                let _ = decode(&bad, u64::MAX);
            }
        }
    }
}
