//! The kernels the vendored tract-core changes (`vendor/tract-core/PATCHES.md`), checked
//! against the definition through tract's public API: the grid convolution on hosts with
//! AVX-512 (each of its tiles forced in turn), convolutions whose im2col is written panel by
//! panel (batch of two, so tract takes the eager im2col path the change is in; three at batch
//! one, where tract takes lazy im2col), with the matmul kernel the per-process probe picks, and
//! max pools whose windows tile the input. All include the shapes of the shipped net.

use tract_onnx::pb::AttributeProto;
use tract_onnx::tract_core::knobs::KnobScope;
use tract_onnx::tract_core::ops::cnn::conv::grid_conv_host as grid_host;

use crate::fold::float_tensor;
use crate::test_graphs::{i64s, ints, model, node, plan, run, value_info, values};

#[derive(Clone, Copy)]
struct Conv {
    n: usize,
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    kernel: [usize; 2],
    strides: [usize; 2],
    /// top, left, bottom, right
    pads: [usize; 4],
    dilations: [usize; 2],
    group: usize,
}

impl Conv {
    fn square(ci: usize, side: usize, co: usize, k: usize, pad: usize) -> Self {
        Self {
            n: 2,
            ci,
            h: side,
            w: side,
            co,
            kernel: [k, k],
            strides: [1, 1],
            pads: [pad; 4],
            dilations: [1, 1],
            group: 1,
        }
    }

    fn out(&self) -> [usize; 2] {
        let o = |i: usize, pads: usize, side: usize| {
            (side + pads - self.dilations[i] * (self.kernel[i] - 1) - 1) / self.strides[i] + 1
        };
        [
            o(0, self.pads[0] + self.pads[2], self.h),
            o(1, self.pads[1] + self.pads[3], self.w),
        ]
    }

    /// Plain nested loops, accumulated in f64.
    fn definition(&self, x: &[f32], wt: &[f32], b: &[f32]) -> Vec<f32> {
        let [oh, ow] = self.out();
        let (cig, cog) = (self.ci / self.group, self.co / self.group);
        let mut y = Vec::with_capacity(self.n * self.co * oh * ow);
        for n in 0..self.n {
            for co in 0..self.co {
                let g = co / cog;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = f64::from(b[co]);
                        for c in 0..cig {
                            let ci = g * cig + c;
                            for ky in 0..self.kernel[0] {
                                for kx in 0..self.kernel[1] {
                                    let iy = (oy * self.strides[0] + ky * self.dilations[0]) as isize
                                        - self.pads[0] as isize;
                                    let ix = (ox * self.strides[1] + kx * self.dilations[1]) as isize
                                        - self.pads[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= self.h as isize || ix >= self.w as isize {
                                        continue;
                                    }
                                    let xv = x[((n * self.ci + ci) * self.h + iy as usize) * self.w + ix as usize];
                                    let wv = wt[((co * cig + c) * self.kernel[0] + ky) * self.kernel[1] + kx];
                                    acc += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        y.push(acc as f32);
                    }
                }
            }
        }
        y
    }

    /// Whether the grid convolution takes this case on this host.
    fn grid(&self) -> bool {
        self.group == 1 && self.strides == [1, 1] && self.dilations == [1, 1] && grid_host()
    }

    /// The path tract takes without the grid convolution: a 3x3 conv on one image takes lazy
    /// im2col, still with the probe's kernel.
    fn im2col_path(&self) -> &'static str {
        if self.n == 1 { "LazyIm2col" } else { "Im2col" }
    }

    /// Through the path this host takes, and where that is the grid convolution, through
    /// im2col too.
    fn check(&self, seed: u64) {
        if self.grid() {
            self.check_with(seed, "GridConv", &[]);
            self.check_with(seed, self.im2col_path(), &[("TRACT_DISABLE_GRID_CONV", "true")]);
        } else {
            self.check_with(seed, self.im2col_path(), &[]);
        }
    }

    /// Optimised and run under `knobs`, through the node `path`, against the definition.
    fn check_with(&self, seed: u64, path: &str, knobs: &[(&str, &str)]) {
        let scope = KnobScope::new(knobs.iter().copied()).expect("knobs");
        scope.enter(|| self.check_through(seed, path, knobs))
    }

    fn check_through(&self, seed: u64, path: &str, knobs: &[(&str, &str)]) {
        let [oh, ow] = self.out();
        let cig = self.ci / self.group;
        let wt = values(self.co * cig * self.kernel[0] * self.kernel[1], seed);
        let b = values(self.co, seed + 1);
        let attrs = vec![
            ints("kernel_shape", &i64s(&self.kernel)),
            ints("strides", &i64s(&self.strides)),
            ints("pads", &i64s(&self.pads)),
            ints("dilations", &i64s(&self.dilations)),
            AttributeProto {
                name: "group".into(),
                r#type: tract_onnx::pb::attribute_proto::AttributeType::Int as i32,
                i: self.group as i64,
                ..Default::default()
            },
        ];
        let shape = [self.n, self.ci, self.h, self.w];
        let proto = model(
            vec![node("Conv", &["x", "w", "b"], "y", attrs)],
            value_info("x", &i64s(&shape)),
            value_info("y", &i64s(&[self.n, self.co, oh, ow])),
            vec![
                float_tensor("w".into(), i64s(&[self.co, cig, self.kernel[0], self.kernel[1]]), &wt),
                float_tensor("b".into(), vec![self.co as i64], &b),
            ],
        );
        let plan = plan(&proto, &shape);
        let ops: Vec<String> = plan.model().nodes().iter().map(|n| n.op().name().to_string()).collect();
        assert!(
            ops.iter().any(|o| o == path),
            "not through {path} under {knobs:?}: {ops:?}"
        );
        let x = values(shape.iter().product(), seed + 2);
        let want = self.definition(&x, &wt, &b);
        let got = run(&plan, &shape, x);
        assert_eq!(got.len(), want.len());
        let kernels: Vec<String> = plan
            .model()
            .nodes()
            .iter()
            .filter(|n| n.op().name() == "OptMatMul" || n.op().name() == "GridConv")
            .flat_map(|n| n.op().info().unwrap_or_default())
            .collect();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "element {i}: {g} vs {w} for {:?}x{}x{}x{} -> {} k{:?} s{:?} p{:?} d{:?} g{} through {path} ({kernels:?})",
                self.n,
                self.ci,
                self.h,
                self.w,
                self.co,
                self.kernel,
                self.strides,
                self.pads,
                self.dilations,
                self.group
            );
        }
    }
}

#[test]
fn convolutions_match_the_definition() {
    // The shipped net: the 2x2 whitening conv, then 3x3 pad 1 at 31, 15, 7 and 3 px.
    let net = [
        Conv::square(3, 32, 24, 2, 0),
        Conv::square(24, 31, 64, 3, 1),
        Conv::square(64, 15, 64, 3, 1),
        Conv::square(64, 15, 128, 3, 1),
        Conv::square(128, 7, 128, 3, 1),
        Conv::square(128, 3, 128, 3, 1),
    ];
    let others = [
        // Odd sizes: rows shorter than a panel, one channel, one output channel.
        Conv::square(1, 5, 1, 3, 1),
        Conv::square(3, 2, 5, 3, 1),
        Conv::square(5, 13, 7, 5, 2),
        Conv {
            strides: [2, 2],
            ..Conv::square(5, 11, 7, 3, 1)
        },
        Conv {
            strides: [1, 3],
            w: 14,
            ..Conv::square(4, 9, 6, 3, 1)
        },
        Conv {
            pads: [0, 2, 1, 0],
            w: 10,
            ..Conv::square(3, 9, 6, 3, 0)
        },
        Conv {
            dilations: [2, 2],
            ..Conv::square(4, 12, 8, 3, 2)
        },
        Conv {
            group: 2,
            ..Conv::square(4, 8, 6, 3, 1)
        },
        Conv {
            kernel: [3, 1],
            pads: [1, 0, 1, 0],
            w: 1,
            ..Conv::square(3, 9, 4, 1, 0)
        },
        Conv {
            kernel: [1, 3],
            h: 4,
            ..Conv::square(6, 17, 10, 1, 0)
        },
        Conv {
            n: 3,
            ..Conv::square(16, 6, 40, 3, 1)
        },
    ];
    // The net's 3x3 convs on one image, without the TTA batch.
    let one_image = net[1..].iter().map(|c| Conv { n: 1, ..*c });
    let cases: Vec<Conv> = net.into_iter().chain(others).chain(one_image).collect();

    for (seed, case) in cases.iter().enumerate() {
        case.check(seed as u64 * 10);
    }
}

/// Compiled only on hosts with AVX-512 (see build.rs): elsewhere tract builds no grid
/// convolution and `convolutions_match_the_definition` covers the im2col path.
#[cfg(avx512_host)]
#[test]
fn grid_convolutions_match_the_definition_with_every_tile() {
    assert!(grid_host(), "built on a host with AVX-512, run on one without it");
    let cases = [
        // The net's widest conv: 31 px rows in a 33-float grid.
        Conv::square(24, 31, 64, 3, 1),
        // Output channels that fill no tile, a 5x5 kernel, positions that fill no tile.
        Conv::square(5, 13, 7, 5, 2),
        // Asymmetric padding, rows longer than a tile's 16 lanes.
        Conv {
            pads: [0, 2, 1, 0],
            w: 40,
            ..Conv::square(3, 5, 13, 3, 0)
        },
        // Three images, so the padding must stay zero from one to the next.
        Conv {
            n: 3,
            ..Conv::square(16, 6, 40, 3, 1)
        },
        // 1x2 and 2x3 kernels (tract turns 1x1 ones into plain products before); one output
        // point.
        Conv {
            kernel: [1, 2],
            ..Conv::square(8, 9, 20, 1, 0)
        },
        Conv {
            kernel: [2, 3],
            pads: [1, 0, 0, 1],
            ..Conv::square(6, 7, 17, 1, 0)
        },
        Conv::square(4, 3, 9, 3, 0),
    ];
    for tile in ["6x4", "8x3", "12x2", "16x1"] {
        for (seed, case) in cases.iter().enumerate() {
            case.check_with(seed as u64 * 7 + 3, "GridConv", &[("TRACT_GRID_CONV_TILE", tile)]);
        }
    }
}

struct Pool {
    shape: [usize; 4],
    kernel: [usize; 2],
    strides: [usize; 2],
    /// top, left, bottom, right
    pads: [usize; 4],
}

impl Pool {
    fn new(shape: [usize; 4], k: usize, s: usize, pad: usize) -> Self {
        Self {
            shape,
            kernel: [k, k],
            strides: [s, s],
            pads: [pad; 4],
        }
    }

    fn out(&self) -> [usize; 2] {
        let o = |i: usize, pads: usize| (self.shape[2 + i] + pads - self.kernel[i]) / self.strides[i] + 1;
        [o(0, self.pads[0] + self.pads[2]), o(1, self.pads[1] + self.pads[3])]
    }

    /// Max over each window's in-bounds taps (ONNX pads with -inf).
    fn definition(&self, x: &[f32]) -> Vec<f32> {
        let [_, _, h, w] = self.shape;
        let [oh, ow] = self.out();
        let mut y = Vec::new();
        for plane in x.chunks_exact(h * w) {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut m = f32::NEG_INFINITY;
                    for ky in 0..self.kernel[0] {
                        for kx in 0..self.kernel[1] {
                            let iy = (oy * self.strides[0] + ky) as isize - self.pads[0] as isize;
                            let ix = (ox * self.strides[1] + kx) as isize - self.pads[1] as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                m = m.max(plane[iy as usize * w + ix as usize]);
                            }
                        }
                    }
                    y.push(m);
                }
            }
        }
        y
    }

    fn check(&self, seed: u64) {
        let mut x = values(self.shape.iter().product(), seed);
        // Ties and infinities: the same value at both taps of a window, and -inf alone.
        if x.len() > 8 {
            x[1] = x[0];
            x[3] = f32::NEG_INFINITY;
            x[5] = f32::INFINITY;
        }
        let want = self.definition(&x);
        let [oh, ow] = self.out();
        let proto = model(
            vec![node(
                "MaxPool",
                &["x"],
                "y",
                vec![
                    ints("kernel_shape", &i64s(&self.kernel)),
                    ints("strides", &i64s(&self.strides)),
                    ints("pads", &i64s(&self.pads)),
                ],
            )],
            value_info("x", &i64s(&self.shape)),
            value_info("y", &i64s(&[self.shape[0], self.shape[1], oh, ow])),
            vec![],
        );
        let got = run(&plan(&proto, &self.shape), &self.shape, x);
        assert_eq!(
            got, want,
            "pool {:?} k{:?} s{:?} p{:?}",
            self.shape, self.kernel, self.strides, self.pads
        );
    }
}

#[test]
fn max_pools_match_the_definition() {
    // Tiling windows (the changed path), floor-mode pools over odd sides, a non-square one,
    // and an overlapping padded pool (unchanged).
    let cases = [
        Pool::new([2, 64, 31, 31], 2, 2, 0),
        Pool::new([2, 128, 15, 15], 2, 2, 0),
        Pool::new([2, 128, 7, 7], 3, 3, 0),
        Pool::new([1, 3, 8, 8], 2, 2, 0),
        Pool::new([2, 3, 9, 9], 3, 3, 0),
        Pool {
            kernel: [2, 3],
            strides: [2, 3],
            ..Pool::new([2, 2, 6, 9], 0, 0, 0)
        },
        Pool::new([1, 1, 1, 1], 1, 1, 0),
        Pool::new([2, 3, 7, 6], 3, 2, 1),
    ];
    for (i, case) in cases.iter().enumerate() {
        case.check(100 + i as u64);
    }
}

/// The vendored tract-onnx registers an image classifier's operators only
/// (vendor/tract-onnx/PATCHES.md): a model with another one, here an operator upstream
/// supports, must fail to load with an error that names it, and one of the set loads.
#[test]
fn an_operator_outside_the_registry_is_named_when_the_model_loads() {
    use tract_onnx::prelude::{Framework, InferenceModelExt};
    let load = |op: &str| {
        let proto = model(
            vec![node(op, &["x"], "y", vec![])],
            value_info("x", &[1, 4]),
            value_info("y", &[1, 4]),
            vec![],
        );
        tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .and_then(|m| m.into_optimized())
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    };
    let err = load("Hardmax").unwrap_err();
    assert!(err.contains("Hardmax"), "{err}");
    load("Erf").unwrap();
}
