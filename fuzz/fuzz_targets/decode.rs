//! Image decode and preprocessing on arbitrary bytes: an error or a 32x32 image, never a
//! panic, an abort or an allocation past the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = contract::DecodeLimits {
        max_side: 4096,
        max_pixels: 4096 * 4096,
        max_alloc: 256 << 20,
    };
    let _ = contract::decode_rgb32(data, &limits);
});
