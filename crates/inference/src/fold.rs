//! Batch norms folded into the convolution before them, applied to the graph before tract
//! sees it.
//!
//! tract fuses a `BatchNormalization` straight after a `Conv` into the conv's matrix
//! product, but not one that follows a `MaxPool` (airbench's conv -> pool -> norm order),
//! which then costs a multiply and an add pass over the activations (12 % of the shipped
//! model's inference). Inference-mode batch norm is a per-channel `x * s + t`; with every
//! `s > 0` it commutes with the max pool, so `conv -> pool -> norm` equals `conv' -> pool`
//! with the conv's weights scaled by `s` and its bias `b * s + t`. The file itself keeps
//! the unfolded graph: other runtimes fold as they see fit.

use tract_onnx::pb::{GraphProto, NodeProto, TensorProto, tensor_proto::DataType};

/// Floats of an initializer (raw little-endian or `float_data`), if it is one.
pub(crate) fn floats(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != DataType::Float as i32 {
        return None;
    }
    if !t.raw_data.is_empty() {
        return le_values(&t.raw_data, f32::from_le_bytes);
    }
    Some(t.float_data.clone())
}

/// `raw_data` read as little-endian values of `N` bytes each; `None` for a ragged length.
pub(crate) fn le_values<const N: usize>(raw: &[u8], decode: impl Fn([u8; N]) -> f32) -> Option<Vec<f32>> {
    raw.len().is_multiple_of(N).then(|| {
        raw.chunks_exact(N)
            .map(|b| decode(b.try_into().expect("chunks of N bytes")))
            .collect()
    })
}

pub(crate) fn float_tensor(name: String, dims: Vec<i64>, values: &[f32]) -> TensorProto {
    TensorProto {
        name,
        dims,
        data_type: DataType::Float as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// Per-channel `(s, t)` of an inference-mode batch norm, `y = x * s + t`.
pub fn affine(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], eps: f32) -> Option<(Vec<f32>, Vec<f32>)> {
    let c = gamma.len();
    if [beta.len(), mean.len(), var.len()] != [c; 3] {
        return None;
    }
    let s: Vec<f32> = gamma.iter().zip(var).map(|(g, v)| g / (v + eps).sqrt()).collect();
    let t = beta.iter().zip(mean).zip(&s).map(|((b, m), s)| b - m * s).collect();
    s.iter().all(|v| v.is_finite()).then_some((s, t))
}

/// Fold every batch norm that follows a conv directly, or through a max pool when all its
/// scales are positive; returns how many were folded.
pub fn fold_batch_norms(graph: &mut GraphProto) -> usize {
    let mut folded = 0;
    while let Some(i) = (0..graph.node.len()).find(|&i| fold_one(graph, i)) {
        graph.node.remove(i);
        folded += 1;
    }
    // The replaced weights and the norms' parameters are read by nothing now.
    let used: std::collections::HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .chain(graph.input.iter().map(|i| i.name.clone()))
        .collect();
    graph.initializer.retain(|t| used.contains(&t.name));
    folded
}

fn consumers(graph: &GraphProto, tensor: &str) -> usize {
    let by_nodes = graph
        .node
        .iter()
        .flat_map(|n| &n.input)
        .filter(|i| *i == tensor)
        .count();
    by_nodes + graph.output.iter().filter(|o| o.name == tensor).count()
}

fn producer(graph: &GraphProto, tensor: &str) -> Option<usize> {
    graph.node.iter().position(|n| n.output.iter().any(|o| o == tensor))
}

fn initializer<'g>(graph: &'g GraphProto, name: &str) -> Option<&'g TensorProto> {
    graph.initializer.iter().find(|t| t.name == name)
}

/// Fold node `bn` if it is a foldable batch norm; on success the caller removes it.
fn fold_one(graph: &mut GraphProto, bn: usize) -> bool {
    let node: &NodeProto = &graph.node[bn];
    if node.op_type != "BatchNormalization" || node.input.len() != 5 || node.output.len() != 1 {
        return false;
    }
    let eps = node
        .attribute
        .iter()
        .find(|a| a.name == "epsilon")
        .map_or(1e-5, |a| a.f);
    let params: Option<Vec<Vec<f32>>> = node.input[1..]
        .iter()
        .map(|n| initializer(graph, n).and_then(floats))
        .collect();
    let Some(params) = params else { return false };
    let Some((s, t)) = affine(&params[0], &params[1], &params[2], &params[3], eps) else {
        return false;
    };
    let (input, output) = (node.input[0].clone(), node.output[0].clone());
    // The conv, directly or through one max pool, each output read by nothing else.
    let Some(before) = producer(graph, &input) else {
        return false;
    };
    if consumers(graph, &input) != 1 {
        return false;
    }
    let (conv, rewire) = match graph.node[before].op_type.as_str() {
        "Conv" => (before, before),
        "MaxPool" if s.iter().all(|&v| v > 0.0) && graph.node[before].output.len() == 1 => {
            let pool_in = graph.node[before].input[0].clone();
            match producer(graph, &pool_in) {
                Some(c) if graph.node[c].op_type == "Conv" && consumers(graph, &pool_in) == 1 => (c, before),
                _ => return false,
            }
        }
        _ => return false,
    };
    let conv_node = &graph.node[conv];
    let group = conv_node
        .attribute
        .iter()
        .find(|a| a.name == "group")
        .map_or(1, |a| a.i);
    if group != 1 || conv_node.input.len() < 2 || conv_node.output.len() != 1 {
        return false;
    }
    let Some(weight) = initializer(graph, &conv_node.input[1]) else {
        return false;
    };
    let (Some(w), dims) = (floats(weight), weight.dims.clone()) else {
        return false;
    };
    let channels = s.len();
    if dims.first() != Some(&(channels as i64)) || !w.len().is_multiple_of(channels) {
        return false;
    }
    let bias = match conv_node.input.get(2).filter(|n| !n.is_empty()) {
        Some(name) => match initializer(graph, name).and_then(floats) {
            Some(b) if b.len() == channels => b,
            _ => return false,
        },
        None => vec![0.0; channels],
    };
    let per = w.len() / channels;
    let w: Vec<f32> = w.iter().enumerate().map(|(i, v)| v * s[i / per]).collect();
    let b: Vec<f32> = bias.iter().zip(&s).zip(&t).map(|((b, s), t)| b * s + t).collect();
    let (w_name, b_name) = (format!("{output}/folded_weight"), format!("{output}/folded_bias"));
    graph.initializer.push(float_tensor(w_name.clone(), dims, &w));
    graph
        .initializer
        .push(float_tensor(b_name.clone(), vec![channels as i64], &b));
    let conv_node = &mut graph.node[conv];
    conv_node.input.truncate(1);
    conv_node.input.extend([w_name, b_name]);
    graph.node[rewire].output[0] = output;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_graphs::{self, ints, model, node, value_info};
    use tract_onnx::pb::{AttributeProto, ModelProto, attribute_proto::AttributeType};

    /// x [1, 2, 6, 6] -> Conv (3 channels, 3x3, bias) -> [MaxPool 2x2] -> BatchNorm -> y.
    fn conv_pool_norm(pool: bool, gamma: [f32; 3]) -> ModelProto {
        let w: Vec<f32> = (0..3 * 2 * 9).map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0).collect();
        let mut nodes = vec![node("Conv", &["x", "w", "b"], "c", vec![ints("pads", &[1, 1, 1, 1])])];
        let mut last = "c";
        if pool {
            nodes.push(node(
                "MaxPool",
                &["c"],
                "p",
                vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
            ));
            last = "p";
        }
        let mut bn = node("BatchNormalization", &[last, "g", "beta", "m", "v"], "y", vec![]);
        bn.attribute.push(AttributeProto {
            name: "epsilon".into(),
            r#type: AttributeType::Float as i32,
            f: 1e-3,
            ..Default::default()
        });
        nodes.push(bn);
        let side = if pool { 3 } else { 6 };
        model(
            nodes,
            value_info("x", &[1, 2, 6, 6]),
            value_info("y", &[1, 3, side, side]),
            vec![
                float_tensor("w".into(), vec![3, 2, 3, 3], &w),
                float_tensor("b".into(), vec![3], &[0.1, -0.2, 0.3]),
                float_tensor("g".into(), vec![3], &gamma),
                float_tensor("beta".into(), vec![3], &[0.5, 0.0, -1.0]),
                float_tensor("m".into(), vec![3], &[0.2, -0.1, 0.4]),
                float_tensor("v".into(), vec![3], &[1.5, 0.3, 2.0]),
            ],
        )
    }

    fn run(proto: &ModelProto) -> Vec<f32> {
        let x: Vec<f32> = (0..72).map(|i| ((i * 53 % 17) as f32 - 8.0) / 5.0).collect();
        test_graphs::run(&test_graphs::plan(proto, &[1, 2, 6, 6]), &[1, 2, 6, 6], x)
    }

    #[test]
    fn folding_keeps_the_outputs_and_skips_a_pool_with_a_negative_scale() {
        for (pool, gamma, folds) in [
            (true, [1.0, 0.5, 2.0], 1),
            (false, [1.0, -0.5, 2.0], 1),
            (true, [1.0, -0.5, 2.0], 0),
        ] {
            let proto = conv_pool_norm(pool, gamma);
            let mut folded = proto.clone();
            assert_eq!(
                fold_batch_norms(folded.graph.as_mut().unwrap()),
                folds,
                "pool {pool} {gamma:?}"
            );
            let ops: Vec<&str> = folded
                .graph
                .as_ref()
                .unwrap()
                .node
                .iter()
                .map(|n| n.op_type.as_str())
                .collect();
            assert_eq!(ops.contains(&"BatchNormalization"), folds == 0, "{ops:?}");
            let (want, got) = (run(&proto), run(&folded));
            assert_eq!(want.len(), got.len());
            for (a, b) in want.iter().zip(&got) {
                assert!((a - b).abs() < 1e-5, "pool {pool} {gamma:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn affine_is_the_inference_batch_norm() {
        let (s, t) = affine(&[2.0, -1.0], &[0.5, 0.0], &[1.0, 3.0], &[3.0, 0.25], 1.0).unwrap();
        for (x, c) in [(0.7f32, 0usize), (-2.0, 1)] {
            let (g, b, m, v) = ([2.0f32, -1.0][c], [0.5f32, 0.0][c], [1.0f32, 3.0][c], [3.0f32, 0.25][c]);
            let want = g * (x - m) / (v + 1.0).sqrt() + b;
            assert!((x * s[c] + t[c] - want).abs() < 1e-6);
        }
        assert!(affine(&[1.0], &[0.0, 1.0], &[0.0], &[1.0], 1e-5).is_none());
    }
}
