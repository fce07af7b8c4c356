//! Marker segments: finding the next one, and the frame header's size.

/// Position just past the next marker's `FF xx` (xx not a stuffed zero or a restart),
/// and that marker.
pub(crate) fn next_marker(data: &[u8], mut pos: usize) -> Option<(usize, u8)> {
    loop {
        pos += data.get(pos..)?.iter().position(|&b| b == 0xFF)?;
        let m = *data.get(pos + 1)?;
        match m {
            0x00 | 0xD0..=0xD7 | 0xFF => pos += 1,
            _ => return Some((pos + 2, m)),
        }
    }
}

pub(crate) fn be16(data: &[u8], pos: usize) -> Option<usize> {
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
