//! Media types of raw image bodies: what the function accepts and what a client sends.

/// Image types a raw `POST /predict` body may declare, in the order error messages list them.
pub const IMAGE_MEDIA_TYPES: [&str; 5] = ["image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp"];
/// Sniffed like an image body: a common misspelling, and "bytes of unknown type".
pub const RAW_ALIASES: [&str; 2] = ["image/jpg", "application/octet-stream"];
pub const JSON: &str = "application/json";

/// True when a raw body of this (lower-case, parameter-free) media type is decoded as an image.
pub fn is_raw_image(media_type: &str) -> bool {
    IMAGE_MEDIA_TYPES.contains(&media_type) || RAW_ALIASES.contains(&media_type)
}

/// The media type to send a file with, from its extension.
pub fn for_extension(ext: &str) -> &'static str {
    match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_extension_type_is_accepted() {
        for ext in ["png", "JPG", "jpeg", "webp", "gif", "bmp", "heic"] {
            assert!(is_raw_image(for_extension(ext)), "{ext}");
        }
        assert_eq!(for_extension("JPG"), "image/jpeg");
        assert!(!is_raw_image("text/plain"));
    }
}
