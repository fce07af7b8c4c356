//! Images that are none of the classes, made here so the out-of-distribution score can
//! be measured anywhere without a second dataset: kinds far from any photo (noise, flat
//! colours, gradients, checkerboards, rendered text) and a near-distribution kind
//! (a real image cut into a 4x4 grid of patches and shuffled: its colours and textures
//! are in distribution, its objects are not).

use contract::{IMAGE_BYTES, IMAGE_SIDE, Rgb32};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The kinds, in the order reports list them.
pub const KINDS: [&str; 6] = ["noise", "flat", "gradient", "checkerboard", "text", "shuffled_patches"];

/// `n` images of `kind`; `shuffled_patches` cuts up `sources` (cycled), the others
/// ignore them. Unknown kinds give none.
pub fn images(kind: &str, n: usize, sources: &[Rgb32], seed: u64) -> Vec<Rgb32> {
    let mut rng = StdRng::seed_from_u64(seed ^ kind.bytes().fold(0u64, |h, b| h.wrapping_mul(31) + u64::from(b)));
    (0..n)
        .filter_map(|i| match kind {
            "noise" => Some(noise(&mut rng)),
            "flat" => Some(flat(&mut rng)),
            "gradient" => Some(gradient(&mut rng)),
            "checkerboard" => Some(checkerboard(&mut rng)),
            "text" => Some(text(&mut rng)),
            "shuffled_patches" if !sources.is_empty() => Some(shuffled(&sources[i % sources.len()], &mut rng)),
            _ => None,
        })
        .collect()
}

fn put(img: &mut Rgb32, x: usize, y: usize, c: [u8; 3]) {
    img[(y * IMAGE_SIDE + x) * 3..][..3].copy_from_slice(&c);
}

fn noise(rng: &mut StdRng) -> Rgb32 {
    let mut img = [0u8; IMAGE_BYTES];
    rng.fill(&mut img[..]);
    img
}

fn flat(rng: &mut StdRng) -> Rgb32 {
    let c: [u8; 3] = rng.random();
    let mut img = [0u8; IMAGE_BYTES];
    img.chunks_exact_mut(3).for_each(|p| p.copy_from_slice(&c));
    img
}

fn gradient(rng: &mut StdRng) -> Rgb32 {
    let (a, b): ([u8; 3], [u8; 3]) = (rng.random(), rng.random());
    let vertical = rng.random_bool(0.5);
    let mut img = [0u8; IMAGE_BYTES];
    for y in 0..IMAGE_SIDE {
        for x in 0..IMAGE_SIDE {
            let t = if vertical { y } else { x } as f32 / (IMAGE_SIDE - 1) as f32;
            let c = std::array::from_fn(|k| (f32::from(a[k]) * (1.0 - t) + f32::from(b[k]) * t) as u8);
            put(&mut img, x, y, c);
        }
    }
    img
}

fn checkerboard(rng: &mut StdRng) -> Rgb32 {
    let (a, b): ([u8; 3], [u8; 3]) = (rng.random(), rng.random());
    let cell = rng.random_range(2..9);
    let mut img = [0u8; IMAGE_BYTES];
    for y in 0..IMAGE_SIDE {
        for x in 0..IMAGE_SIDE {
            put(&mut img, x, y, if (x / cell + y / cell) % 2 == 0 { a } else { b });
        }
    }
    img
}

/// 5x7 glyphs of the capital letters and digits, one row per byte, bit 4 leftmost.
const GLYPHS: [[u8; 7]; 36] = [
    [14, 17, 17, 31, 17, 17, 17], // A
    [30, 17, 17, 30, 17, 17, 30], // B
    [14, 17, 16, 16, 16, 17, 14], // C
    [30, 17, 17, 17, 17, 17, 30], // D
    [31, 16, 16, 30, 16, 16, 31], // E
    [31, 16, 16, 30, 16, 16, 16], // F
    [14, 17, 16, 23, 17, 17, 15], // G
    [17, 17, 17, 31, 17, 17, 17], // H
    [14, 4, 4, 4, 4, 4, 14],      // I
    [7, 2, 2, 2, 2, 18, 12],      // J
    [17, 18, 20, 24, 20, 18, 17], // K
    [16, 16, 16, 16, 16, 16, 31], // L
    [17, 27, 21, 21, 17, 17, 17], // M
    [17, 17, 25, 21, 19, 17, 17], // N
    [14, 17, 17, 17, 17, 17, 14], // O
    [30, 17, 17, 30, 16, 16, 16], // P
    [14, 17, 17, 17, 21, 18, 13], // Q
    [30, 17, 17, 30, 20, 18, 17], // R
    [15, 16, 16, 14, 1, 1, 30],   // S
    [31, 4, 4, 4, 4, 4, 4],       // T
    [17, 17, 17, 17, 17, 17, 14], // U
    [17, 17, 17, 17, 17, 10, 4],  // V
    [17, 17, 17, 21, 21, 21, 10], // W
    [17, 17, 10, 4, 10, 17, 17],  // X
    [17, 17, 10, 4, 4, 4, 4],     // Y
    [31, 1, 2, 4, 8, 16, 31],     // Z
    [14, 17, 19, 21, 25, 17, 14], // 0
    [4, 12, 4, 4, 4, 4, 14],      // 1
    [14, 17, 1, 2, 4, 8, 31],     // 2
    [31, 2, 4, 2, 1, 17, 14],     // 3
    [2, 6, 10, 18, 31, 2, 2],     // 4
    [31, 16, 30, 1, 1, 17, 14],   // 5
    [6, 8, 16, 30, 17, 17, 14],   // 6
    [31, 1, 2, 4, 8, 8, 8],       // 7
    [14, 17, 17, 14, 17, 17, 14], // 8
    [14, 17, 17, 15, 1, 2, 12],   // 9
];

/// Up to four lines of random characters in one ink colour on a contrasting paper
/// colour: a screenshot of text, a sign, a label.
fn text(rng: &mut StdRng) -> Rgb32 {
    let paper: [u8; 3] = rng.random();
    let ink: [u8; 3] = std::array::from_fn(|k| paper[k].wrapping_add(128));
    let mut img = [0u8; IMAGE_BYTES];
    img.chunks_exact_mut(3).for_each(|p| p.copy_from_slice(&paper));
    let lines = rng.random_range(2..=4);
    for line in 0..lines {
        let top = 1 + line * 8;
        for col in 0..5 {
            let glyph = GLYPHS[rng.random_range(0..GLYPHS.len())];
            for (dy, bits) in glyph.iter().enumerate() {
                for dx in 0..5 {
                    if bits & (16 >> dx) != 0 {
                        put(&mut img, 1 + col * 6 + dx, top + dy, ink);
                    }
                }
            }
        }
    }
    img
}

fn shuffled(source: &Rgb32, rng: &mut StdRng) -> Rgb32 {
    const GRID: usize = 4;
    const PATCH: usize = IMAGE_SIDE / GRID;
    let mut order: Vec<usize> = (0..GRID * GRID).collect();
    order.shuffle(rng);
    let mut img = [0u8; IMAGE_BYTES];
    for (to, &from) in order.iter().enumerate() {
        let (ty, tx, fy, fx) = (
            to / GRID * PATCH,
            to % GRID * PATCH,
            from / GRID * PATCH,
            from % GRID * PATCH,
        );
        for dy in 0..PATCH {
            let row = |y: usize, x: usize| (y * IMAGE_SIDE + x) * 3;
            img[row(ty + dy, tx)..][..PATCH * 3].copy_from_slice(&source[row(fy + dy, fx)..][..PATCH * 3]);
        }
    }
    img
}

/// Area under the ROC curve of a score meant to be higher for `outside` than for
/// `inside`: the chance that a random outside image outscores a random inside one
/// (ties count half).
pub fn auroc(inside: &[f32], outside: &[f32]) -> f64 {
    let mut all: Vec<(f32, bool)> = inside
        .iter()
        .map(|&s| (s, false))
        .chain(outside.iter().map(|&s| (s, true)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann-Whitney U from mid-ranks.
    let mut rank_sum = 0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let mid = (i + j + 1) as f64 / 2.0;
        rank_sum += mid * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let (n_out, n_in) = (outside.len() as f64, inside.len() as f64);
    if n_out == 0.0 || n_in == 0.0 {
        return f64::NAN;
    }
    (rank_sum - n_out * (n_out + 1.0) / 2.0) / (n_out * n_in)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_of_separated_tied_and_reversed_scores() {
        assert_eq!(auroc(&[0.0, 1.0], &[2.0, 3.0]), 1.0);
        assert_eq!(auroc(&[2.0, 3.0], &[0.0, 1.0]), 0.0);
        assert_eq!(auroc(&[1.0, 1.0], &[1.0]), 0.5);
        assert!((auroc(&[0.0, 2.0], &[1.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn every_kind_is_made_and_shuffling_keeps_the_pixels() {
        let mut source = [0u8; IMAGE_BYTES];
        source.iter_mut().enumerate().for_each(|(i, p)| *p = (i % 251) as u8);
        for kind in KINDS {
            let made = images(kind, 6, &[source], 3);
            assert_eq!(made.len(), 6, "{kind}");
            assert_ne!(made[0], made[1], "{kind} varies");
        }
        let shuffled = &images("shuffled_patches", 1, &[source], 3)[0];
        let (mut a, mut b) = (source.to_vec(), shuffled.to_vec());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        assert_ne!(shuffled[..], source[..]);
        assert!(images("nope", 3, &[], 1).is_empty());
    }
}
