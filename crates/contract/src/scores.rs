//! Reading a row of class probabilities, the same way in training, evaluation and serving.

/// Index and value of the largest probability.
pub fn argmax(row: &[f32]) -> (usize, f32) {
    row.iter().copied().enumerate().fold(
        (0, f32::NEG_INFINITY),
        |best, (i, p)| if p > best.1 { (i, p) } else { best },
    )
}

/// Indices of the `k` largest probabilities, largest first.
pub fn top_k(row: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}
