//! The DC-only JPEG decoder on arbitrary bytes: `None` (left to jpeg-decoder) or an image
//! of the size its header gives, never a panic, an abort or a runaway loop; and the
//! header-only size read agrees that a frame header is there.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let size = jpeg_dc::dimensions(data);
    if let Some(image) = jpeg_dc::decode(data, 4096 * 4096) {
        assert_eq!(image.rgb.len(), image.width as usize * image.height as usize * 3);
        let (w, h) = size.expect("a decoded file has a frame header");
        assert_eq!((image.width, image.height), (w.div_ceil(8), h.div_ceil(8)));
    }
});
