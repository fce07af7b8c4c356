//! The DC-only JPEG decoder on arbitrary bytes: `None` (left to jpeg-decoder) or an image
//! of the size its header gives, never a panic, an abort or a runaway loop.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(image) = contract::jpeg_dc::decode(data, 4096 * 4096) {
        assert_eq!(image.rgb.len(), image.width as usize * image.height as usize * 3);
    }
});
