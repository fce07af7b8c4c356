//! The networks. Both take normalised float NCHW `[N, 3, 32, 32]` and return logits;
//! the exported graph adds the uint8 NHWC front and the softmax around them.

use burn::module::{Module, Param, ParamId};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{gelu, relu, sigmoid, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::TrainConfig;
pub use crate::config::{Activation, Arch, WHITEN_PATCH, WHITEN_WIDTH};
use crate::tta::Tta;

fn conv3(c_in: usize, c_out: usize, bias: bool, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(bias)
        .init(device)
}

fn pool2() -> MaxPool2d {
    MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init()
}

#[derive(Module, Debug)]
pub struct SeedNet {
    convs: Vec<Conv2d>,
    dense: Vec<Linear>,
    out: Linear,
    pool: MaxPool2d,
    dropout: Dropout,
}

impl SeedNet {
    pub fn new(config: &TrainConfig, classes: usize, device: &Device) -> Self {
        let convs: Vec<usize> = std::iter::once(3)
            .chain(config.net.seed_conv_widths.iter().copied())
            .collect();
        // Each conv block halves the 32-pixel side.
        let side = 32 >> config.net.seed_conv_widths.len();
        let flat = convs[convs.len() - 1] * side * side;
        let dense: Vec<usize> = std::iter::once(flat)
            .chain(config.net.seed_dense_widths.iter().copied())
            .collect();
        Self {
            convs: convs.windows(2).map(|w| conv3(w[0], w[1], true, device)).collect(),
            dense: dense
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
            out: LinearConfig::new(dense[dense.len() - 1], classes).init(device),
            pool: pool2(),
            dropout: DropoutConfig::new(config.net.dropout).init(),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        for conv in &self.convs {
            x = self.pool.forward(relu(conv.forward(x)));
        }
        let [n, c, h, w] = x.dims();
        let mut x = x.reshape([n, c * h * w]);
        for layer in &self.dense {
            x = self.dropout.forward(relu(layer.forward(x)));
        }
        self.out.forward(x)
    }
}

/// Batch norm as airbench uses it: its own momentum and epsilon, optionally a scale
/// fixed at 1.
fn batch_norm(c: usize, config: &TrainConfig, device: &Device) -> BatchNorm {
    let mut norm = BatchNormConfig::new(c)
        .with_momentum(config.net.bn_momentum)
        .with_epsilon(config.net.bn_eps)
        .init(device);
    if config.net.bn_fixed_scale {
        norm.gamma = norm.gamma.set_require_grad(false);
    }
    norm
}

/// A 3x3 conv whose first `c_in` filters pass their input channel through (dirac init),
/// so a fresh net starts close to the identity along its depth.
fn conv3_dirac(c_in: usize, c_out: usize, dirac: bool, device: &Device) -> Conv2d {
    let mut conv = conv3(c_in, c_out, false, device);
    if dirac {
        let weight = conv.weight.val();
        let shape = weight.dims();
        let mut w: Vec<f32> = weight.into_data().try_to_vec().expect("f32 weights");
        for o in 0..c_in.min(c_out) {
            let filter = &mut w[o * c_in * 9..(o + 1) * c_in * 9];
            filter.fill(0.0);
            filter[o * 9 + 4] = 1.0;
        }
        conv.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, shape), device));
    }
    conv
}

/// The airbench net's nonlinearity as the module runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Relu,
    Gelu,
    /// Export only: burn-onnx lowers no `Erf`/`Gelu`, so the traced graph carries a
    /// `Sigmoid` in each GELU's place, and [`crate::export`] rewrites those nodes into
    /// the erf form. The parity check against the real GELU model catches a bad rewrite.
    GeluMarker,
}

impl Act {
    fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Act::Relu => relu(x),
            Act::Gelu => gelu(x),
            Act::GeluMarker => sigmoid(x),
        }
    }
}

impl From<Activation> for Act {
    fn from(a: Activation) -> Self {
        match a {
            Activation::Relu => Act::Relu,
            Activation::Gelu => Act::Gelu,
        }
    }
}

/// conv -> [pool] -> BN -> act -> conv -> BN -> act, as in airbench's ConvGroup.
#[derive(Module, Debug)]
pub struct ConvGroup {
    conv1: Conv2d,
    norm1: BatchNorm,
    conv2: Conv2d,
    norm2: BatchNorm,
    pool: MaxPool2d,
}

impl ConvGroup {
    fn new(c_in: usize, c_out: usize, config: &TrainConfig, device: &Device) -> Self {
        Self {
            conv1: conv3_dirac(c_in, c_out, config.net.dirac_init, device),
            norm1: batch_norm(c_out, config, device),
            conv2: conv3_dirac(c_out, c_out, config.net.dirac_init, device),
            norm2: batch_norm(c_out, config, device),
            pool: pool2(),
        }
    }

    fn forward(&self, x: Tensor<4>, act: Act) -> Tensor<4> {
        let x = act.apply(self.norm1.forward(self.pool.forward(self.conv1.forward(x))));
        act.apply(self.norm2.forward(self.conv2.forward(x)))
    }
}

#[derive(Module, Debug)]
pub struct AirbenchNet {
    /// Frozen 2x2 patch-whitening conv (weights fitted to the data, bias trained for
    /// the first epochs), or `None` for a plain 3x3 stem.
    whiten: Option<Conv2d>,
    stem: Option<Conv2d>,
    stem_norm: Option<BatchNorm>,
    groups: Vec<ConvGroup>,
    /// Global max pool over what is left of the grid (a MaxPool the exporter can lower).
    global_pool: MaxPool2d,
    head: Linear,
    scale: f32,
    #[module(skip)]
    act: Act,
}

impl AirbenchNet {
    /// `whitening`: the 24 filters, `[24, 3, 2, 2]` flattened, when the config whitens.
    pub fn new(classes: usize, config: &TrainConfig, whitening: Option<Vec<f32>>, device: &Device) -> Self {
        let widths = &config.net.widths;
        let stem_width = widths[0];
        let (whiten, stem, stem_norm, mut side) = match whitening {
            Some(filters) => {
                let mut conv = Conv2dConfig::new([3, WHITEN_WIDTH], [WHITEN_PATCH, WHITEN_PATCH])
                    .with_bias(true)
                    .init(device);
                let shape = [WHITEN_WIDTH, 3, WHITEN_PATCH, WHITEN_PATCH];
                conv.weight = Param::from_tensor(Tensor::from_data(TensorData::new(filters, shape), device))
                    .set_require_grad(false);
                conv.bias = Some(Param::from_tensor(Tensor::zeros([WHITEN_WIDTH], device)));
                (Some(conv), None, None, contract::IMAGE_SIDE - WHITEN_PATCH + 1)
            }
            None => (
                None,
                Some(conv3(3, stem_width, false, device)),
                Some(batch_norm(stem_width, config, device)),
                contract::IMAGE_SIDE,
            ),
        };
        let mut c_in = stem_width;
        let groups = widths[1..]
            .iter()
            .map(|&w| {
                let g = ConvGroup::new(c_in, w, config, device);
                c_in = w;
                side /= 2;
                g
            })
            .collect();
        Self {
            global_pool: MaxPool2dConfig::new([side, side]).with_strides([side, side]).init(),
            whiten,
            stem,
            stem_norm,
            groups,
            head: LinearConfig::new(c_in, classes).with_bias(false).init(device),
            scale: config.net.head_scale,
            act: config.net.activation.into(),
        }
    }

    fn first_layer(&self, x: Tensor<4>) -> Tensor<4> {
        match (&self.whiten, &self.stem, &self.stem_norm) {
            (Some(whiten), _, _) => self.act.apply(whiten.forward(x)),
            (None, Some(stem), Some(norm)) => self.act.apply(norm.forward(stem.forward(x))),
            _ => unreachable!("an airbench net has a whitening layer or a stem"),
        }
    }

    pub fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.first_layer(x);
        for g in &self.groups {
            x = g.forward(x, self.act);
        }
        let x = self.global_pool.forward(x);
        let [n, c, _, _] = x.dims();
        let x = x.reshape([n, c]);
        self.head.forward(x).mul_scalar(self.scale)
    }

    /// The trained 3x3 filter banks (Muon's parameters; the whitening filters are frozen).
    pub fn conv_filter_ids(&self) -> Vec<ParamId> {
        let stem = self.stem.iter().map(|c| c.weight.id);
        let groups = self.groups.iter().flat_map(|g| [g.conv1.weight.id, g.conv2.weight.id]);
        stem.chain(groups).collect()
    }

    /// Parameters whose learning rate is scaled up: the batch-norm biases.
    pub fn norm_bias_ids(&self) -> Vec<ParamId> {
        let stem = self.stem_norm.iter().map(|n| n.beta.id);
        let groups = self.groups.iter().flat_map(|g| [g.norm1.beta.id, g.norm2.beta.id]);
        stem.chain(groups).collect()
    }

    /// Stop training the whitening layer's bias.
    pub fn freeze_whitening(mut self) -> Self {
        if let Some(conv) = self.whiten.as_mut() {
            conv.bias = conv.bias.take().map(|b| b.set_require_grad(false));
        }
        self
    }
}

/// The 24 whitening filters `[24, 3, 2, 2]` (flattened) for normalised NCHW `images`:
/// the eigenvectors of the (uncentred) covariance of all 2x2 patches, scaled by
/// 1/sqrt(eigenvalue + eps), and their negatives. A conv with them turns patches into
/// coordinates of unit variance along every direction.
pub fn whitening_filters(images: &[f32], eps: f64) -> Vec<f32> {
    let side = contract::IMAGE_SIDE;
    let plane = side * side;
    let dim = WHITEN_WIDTH / 2;
    let mut cov = vec![0f64; dim * dim];
    let mut patch = vec![0f64; dim];
    let mut count = 0usize;
    for img in images.chunks_exact(3 * plane) {
        for y in 0..side - 1 {
            for x in 0..side - 1 {
                for c in 0..3 {
                    for ky in 0..WHITEN_PATCH {
                        for kx in 0..WHITEN_PATCH {
                            patch[c * 4 + ky * 2 + kx] = f64::from(img[c * plane + (y + ky) * side + x + kx]);
                        }
                    }
                }
                for i in 0..dim {
                    for j in i..dim {
                        cov[i * dim + j] += patch[i] * patch[j];
                    }
                }
                count += 1;
            }
        }
    }
    for i in 0..dim {
        for j in i..dim {
            cov[i * dim + j] /= count.max(1) as f64;
            cov[j * dim + i] = cov[i * dim + j];
        }
    }
    let (values, vectors) = symmetric_eigen(cov, dim);
    let mut filters = vec![0f32; WHITEN_WIDTH * dim];
    for k in 0..dim {
        let scale = 1.0 / (values[k].max(0.0) + eps).sqrt();
        for i in 0..dim {
            let v = (vectors[i * dim + k] * scale) as f32;
            filters[k * dim + i] = v;
            filters[(k + dim) * dim + i] = -v;
        }
    }
    filters
}

/// Eigen-decomposition of a symmetric `n x n` matrix (row-major) by cyclic Jacobi
/// rotations: eigenvalues and the eigenvectors as the columns of a row-major matrix.
pub fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        let scale: f64 = (0..n)
            .map(|i| a[i * n + i] * a[i * n + i])
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
        if off <= 1e-30 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// The network being trained, whichever architecture the config chose.
// One model lives per process, so the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Net {
    Seed(SeedNet),
    Airbench(AirbenchNet),
}

impl Net {
    /// `whitening`: the fitted whitening filters when the config whitens (see
    /// [`whitening_filters`]).
    pub fn new(config: &TrainConfig, classes: usize, whitening: Option<Vec<f32>>, device: &Device) -> Self {
        match config.net.arch {
            Arch::Seed => Net::Seed(SeedNet::new(config, classes, device)),
            Arch::Airbench => Net::Airbench(AirbenchNet::new(classes, config, whitening, device)),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Net::Seed(m) => m.forward(x),
            Net::Airbench(m) => m.logits(x),
        }
    }

    /// Logits averaged over the test-time views of each image (one forward pass over all
    /// views stacked along N): what the exported graph computes.
    pub fn forward_tta(&self, x: Tensor<4>, tta: Tta) -> Tensor<2> {
        let views = tta.views();
        if views.len() == 1 {
            return self.forward(x);
        }
        let device = x.device();
        let index = |v: &[i64]| Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device);
        let n = x.dims()[0];
        let stacked = views
            .iter()
            .map(|v| {
                if v.is_identity() {
                    x.clone()
                } else {
                    x.clone().select(2, index(&v.rows)).select(3, index(&v.cols))
                }
            })
            .collect();
        let logits = self.forward(Tensor::cat(stacked, 0));
        let classes = logits.dims()[1];
        let weights: Vec<f32> = views.iter().map(|v| v.weight).collect();
        let weights = Tensor::<1>::from_data(TensorData::new(weights, [views.len()]), &device);
        logits
            .reshape([views.len(), n, classes])
            .mul(weights.reshape([views.len(), 1, 1]))
            .sum_dim(0)
            .reshape([n, classes])
    }

    /// What the exported graph computes after its uint8 front: softmax of the TTA-averaged
    /// logits divided by the temperature.
    pub fn forward_probabilities(&self, x: Tensor<4>, tta: Tta, temperature: f32) -> Tensor<2> {
        softmax(self.forward_tta(x, tta).div_scalar(temperature), 1)
    }

    pub fn norm_bias_ids(&self) -> Vec<ParamId> {
        match self {
            Net::Seed(_) => Vec::new(),
            Net::Airbench(m) => m.norm_bias_ids(),
        }
    }

    pub fn conv_filter_ids(&self) -> Vec<ParamId> {
        match self {
            Net::Seed(m) => m.convs.iter().map(|c| c.weight.id).collect(),
            Net::Airbench(m) => m.conv_filter_ids(),
        }
    }

    /// The module the ONNX exporter traces: GELUs become markers (see [`Act::GeluMarker`]).
    /// Returns whether any were placed.
    pub fn for_export(&self) -> (Self, bool) {
        match self {
            Net::Airbench(m) if m.act == Act::Gelu => {
                let mut m = m.clone();
                m.act = Act::GeluMarker;
                (Net::Airbench(m), true)
            }
            other => (other.clone(), false),
        }
    }

    pub fn freeze_whitening(self) -> Self {
        match self {
            Net::Airbench(m) => Net::Airbench(m.freeze_whitening()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_recovers_a_known_decomposition() {
        // A = Q diag(3, 1, 0.5) Q^T for a rotation Q.
        let (c, s) = (0.6f64, 0.8f64);
        let q = [c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0];
        let d = [3.0, 1.0, 0.5];
        let mut a = vec![0f64; 9];
        for i in 0..3 {
            for j in 0..3 {
                a[i * 3 + j] = (0..3).map(|k| q[i * 3 + k] * d[k] * q[j * 3 + k]).sum();
            }
        }
        let (values, vectors) = symmetric_eigen(a.clone(), 3);
        for k in 0..3 {
            // A v = lambda v for each returned pair.
            for i in 0..3 {
                let av: f64 = (0..3).map(|j| a[i * 3 + j] * vectors[j * 3 + k]).sum();
                assert!((av - values[k] * vectors[i * 3 + k]).abs() < 1e-9);
            }
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        assert!((sorted[0] - 0.5).abs() < 1e-9 && (sorted[2] - 3.0).abs() < 1e-9);
    }

    #[test]
    fn whitened_patches_have_identity_covariance() {
        // Correlated random images: neighbouring pixels and channels share a component.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let plane = contract::IMAGE_SIDE * contract::IMAGE_SIDE;
        let images: Vec<f32> = (0..20)
            .flat_map(|_| {
                let base: Vec<f32> = (0..plane).map(|_| rng.random_range(-1.0..1.0)).collect();
                let noise: Vec<f32> = (0..3 * plane).map(|_| rng.random_range(-0.3..0.3)).collect();
                (0..3 * plane)
                    .map(|i| base[i % plane] * (1.0 + (i / plane) as f32) + noise[i])
                    .collect::<Vec<_>>()
            })
            .collect();
        let filters = whitening_filters(&images, 0.0);
        // Output covariance of the first 12 filters over the fitting patches.
        let side = contract::IMAGE_SIDE;
        let mut cov = [[0f64; 12]; 12];
        let mut n = 0f64;
        for img in images.chunks_exact(3 * plane) {
            for y in 0..side - 1 {
                for x in 0..side - 1 {
                    let out: Vec<f64> = (0..12)
                        .map(|k| {
                            let mut acc = 0f64;
                            for c in 0..3 {
                                for ky in 0..2 {
                                    for kx in 0..2 {
                                        acc += f64::from(filters[k * 12 + c * 4 + ky * 2 + kx])
                                            * f64::from(img[c * plane + (y + ky) * side + x + kx]);
                                    }
                                }
                            }
                            acc
                        })
                        .collect();
                    for i in 0..12 {
                        for j in 0..12 {
                            cov[i][j] += out[i] * out[j];
                        }
                    }
                    n += 1.0;
                }
            }
        }
        for (i, row) in cov.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let expect = if i == j { 1.0 } else { 0.0 };
                assert!((v / n - expect).abs() < 1e-3, "cov[{i}][{j}] = {}", v / n);
            }
        }
        // The second half are the negatives of the first.
        assert!(filters[..144].iter().zip(&filters[144..]).all(|(a, b)| *a == -*b));
    }

    #[test]
    fn dirac_conv_passes_its_first_channels_through() {
        let device = Device::flex();
        let conv = conv3_dirac(4, 6, true, &device);
        let x = Tensor::<4>::random([2, 4, 5, 5], burn::tensor::Distribution::Default, &device);
        let y = conv.forward(x.clone());
        let first = y.slice([0..2, 0..4, 0..5, 0..5]);
        let diff: f32 = first.sub(x).abs().max().into_scalar();
        assert!(diff < 1e-6, "max |y - x| = {diff}");
    }
}
