//! The networks. Both take normalised float NCHW `[N, 3, 32, 32]` and return logits;
//! the exported graph adds the uint8 NHWC front and the softmax around them.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;

/// Which network to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// The Keras seed: 3 conv blocks 32/64/128, dense 128x3 + 10, dropout.
    Seed,
    /// airbench-style: batch-norm conv blocks (conv, pool, BN, ReLU, conv, BN, ReLU),
    /// global max pool, scaled linear head. Widths from `--widths`.
    Airbench,
}

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
    pub fn new(classes: usize, dropout: f64, device: &Device) -> Self {
        let widths = [3, 32, 64, 128];
        let convs = widths.windows(2).map(|w| conv3(w[0], w[1], true, device)).collect();
        let dense = [128 * 4 * 4, 128, 128, 128]
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        Self {
            convs,
            dense,
            out: LinearConfig::new(128, classes).init(device),
            pool: pool2(),
            dropout: DropoutConfig::new(dropout).init(),
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

/// conv -> [pool] -> BN -> ReLU -> conv -> BN -> ReLU, as in airbench's ConvGroup.
#[derive(Module, Debug)]
pub struct ConvGroup {
    conv1: Conv2d,
    norm1: BatchNorm,
    conv2: Conv2d,
    norm2: BatchNorm,
    pool: MaxPool2d,
}

impl ConvGroup {
    fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        Self {
            conv1: conv3(c_in, c_out, false, device),
            norm1: BatchNormConfig::new(c_out).with_momentum(0.2).init(device),
            conv2: conv3(c_out, c_out, false, device),
            norm2: BatchNormConfig::new(c_out).with_momentum(0.2).init(device),
            pool: pool2(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(self.norm1.forward(self.pool.forward(self.conv1.forward(x))));
        relu(self.norm2.forward(self.conv2.forward(x)))
    }
}

#[derive(Module, Debug)]
pub struct AirbenchNet {
    stem: Conv2d,
    stem_norm: BatchNorm,
    groups: Vec<ConvGroup>,
    /// Global max pool over what is left of the grid (a MaxPool the exporter can lower).
    global_pool: MaxPool2d,
    head: Linear,
    scale: f32,
}

impl AirbenchNet {
    pub fn new(classes: usize, widths: &[usize], device: &Device) -> Self {
        let stem_width = widths[0];
        let mut c_in = stem_width;
        let groups = widths[1..]
            .iter()
            .map(|&w| {
                let g = ConvGroup::new(c_in, w, device);
                c_in = w;
                g
            })
            .collect();
        let side = contract::IMAGE_SIDE >> (widths.len() - 1);
        Self {
            global_pool: MaxPool2dConfig::new([side, side]).with_strides([side, side]).init(),
            stem: conv3(3, stem_width, false, device),
            stem_norm: BatchNormConfig::new(stem_width).with_momentum(0.2).init(device),
            groups,
            head: LinearConfig::new(c_in, classes).with_bias(false).init(device),
            scale: 1.0 / 9.0,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.stem_norm.forward(self.stem.forward(x)));
        for g in &self.groups {
            x = g.forward(x);
        }
        let x = self.global_pool.forward(x);
        let [n, c, _, _] = x.dims();
        let x = x.reshape([n, c]);
        self.head.forward(x).mul_scalar(self.scale)
    }
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
    pub fn new(config: &TrainConfig, classes: usize, device: &Device) -> Self {
        match config.arch {
            Arch::Seed => Net::Seed(SeedNet::new(classes, config.dropout, device)),
            Arch::Airbench => Net::Airbench(AirbenchNet::new(classes, &config.widths, device)),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Net::Seed(m) => m.forward(x),
            Net::Airbench(m) => m.forward(x),
        }
    }

    /// What the exported graph computes after its uint8 front: softmax over classes.
    pub fn forward_probabilities(&self, x: Tensor<4>) -> Tensor<2> {
        softmax(self.forward(x), 1)
    }
}
