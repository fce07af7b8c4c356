//! Reading a scan's entropy-coded bits: stuffing undone once, then a branch-free refill.

use std::ops::ControlFlow;

use crate::huffman::{Huffman, SKIP_BITS, SKIP_EOB, SKIP_SLOW, extend};

/// A scan's entropy-coded data with its byte stuffing undone and its restart markers
/// taken out, so the reader can load eight bytes anywhere without looking for 0xFF.
pub(crate) struct Unstuffed {
    bytes: Vec<u8>,
    /// Where each restart interval after the first starts in `bytes`.
    restarts: Vec<usize>,
    /// File position of the marker that ended the scan (the file's end if none did).
    pub(crate) end: usize,
}

impl Unstuffed {
    pub(crate) fn new(data: &[u8], start: usize) -> Self {
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
pub(crate) struct Bits<'a> {
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
    pub(crate) fn new(data: &'a Unstuffed) -> Self {
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
    pub(crate) fn refill(&mut self) {
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
    pub(crate) fn count(&self) -> u32 {
        self.count_bits & 63
    }

    /// The last bytes of the data, then zeros.
    #[cold]
    pub(crate) fn tail_word(&self) -> u64 {
        let mut word = [0u8; 8];
        if let Some(rest) = self.data.bytes.get(self.pos..) {
            word[..rest.len()].copy_from_slice(rest);
        }
        u64::from_be_bytes(word)
    }

    #[inline(always)]
    pub(crate) fn take(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let v = (self.acc >> (64 - n)) as u32;
        self.consume(n);
        v
    }

    /// Drop `n` (< 64, <= the count) bits.
    #[inline(always)]
    pub(crate) fn consume(&mut self, n: u32) {
        self.acc <<= n;
        self.count_bits = self.count_bits.wrapping_sub(n);
    }

    /// Drop the bits a table entry covers (its low 6 bits). The shift and the count both
    /// take the entry whole, the shift because it uses the low 6 bits of its amount (as
    /// the x86 and arm64 instructions do), the count because only its own low 6 bits
    /// mean anything: no mask sits between the table read and the next index.
    #[inline(always)]
    pub(crate) fn consume_entry(&mut self, e: u16) {
        self.acc = self.acc.wrapping_shl(u32::from(e));
        self.count_bits = self.count_bits.wrapping_sub(u32::from(e));
    }

    #[inline]
    pub(crate) fn symbol(&mut self, table: &Huffman) -> Option<u8> {
        let (len, symbol) = table.decode(self.acc)?;
        self.consume(len);
        Some(symbol)
    }

    /// `table.skip`'s entry for the next bits (0 when there is none: take the slow path).
    #[inline(always)]
    pub(crate) fn skip_entry(&self, table: &Huffman) -> u16 {
        table.skip[self.skip_index()]
    }

    /// The next `SKIP_BITS` bits, a `skip` table index.
    #[inline(always)]
    pub(crate) fn skip_index(&self) -> usize {
        (self.acc >> (64 - SKIP_BITS)) as usize
    }

    /// A DC difference: its size category, then that many bits, sign-extended. At least 12
    /// bits are buffered at every block's start (after a refill, [`Bits::skip_ac`] or its
    /// slow path), so the index is read before the refill, as in `skip_ac`. Leaves at least
    /// 44 (56 less a 12-bit entry, or a refill after the slow path), what `skip_ac` counts
    /// on.
    #[inline(always)]
    pub(crate) fn dc_diff(&mut self, table: &Huffman) -> Option<i32> {
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
    pub(crate) fn dc_diff_slow(&mut self, table: &Huffman) -> Option<i32> {
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
    pub(crate) fn skip_ac(&mut self, table: &Huffman) -> Option<()> {
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
    pub(crate) fn skip_step(&mut self, table: &Huffman, e: u16, k: u32) -> ControlFlow<Option<()>, u32> {
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
    pub(crate) fn skip_ac_slow(&mut self, table: &Huffman, mut k: u32) -> Option<()> {
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
    pub(crate) fn restart(&mut self) -> Option<()> {
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
    pub(crate) fn overran(&self) -> bool {
        8 * self.pos as u64 - u64::from(self.count()) > 8 * self.limit as u64
    }
}
