//! The two f32 passes around the erf of GELU(x) = 0.5 * x * (1 + erf(x / sqrt(2))).

/// `scaled[i] = xs[i] * c` over the shorter of the two.
#[inline(never)]
pub fn scale(scaled: &mut [f32], xs: &[f32], c: f32) {
    scaled.iter_mut().zip(xs).for_each(|(s, x)| *s = *x * c);
}

/// `xs[i] = 0.5 * xs[i] * (1 + erf[i])` over the shorter of the two.
#[inline(never)]
pub fn finish(xs: &mut [f32], erf: &[f32]) {
    xs.iter_mut().zip(erf).for_each(|(x, e)| *x = (*x * 0.5) * (*e + 1.0));
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_passes_make_gelu_from_erf() {
        let xs = [-2.0f32, -0.5, 0.0, 0.5, 3.0];
        let mut scaled = [0f32; 5];
        super::scale(&mut scaled, &xs, 0.5);
        assert_eq!(scaled, [-1.0, -0.25, 0.0, 0.25, 1.5]);
        let mut out = xs;
        super::finish(&mut out, &[-1.0, 0.0, 0.0, 0.5, 1.0]);
        assert_eq!(out, [0.0, -0.25, 0.0, 0.375, 3.0]);
    }
}
