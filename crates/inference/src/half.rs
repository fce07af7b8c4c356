//! Weights stored as IEEE half floats, computed in f32.
//!
//! The shipped model's f32 weights are a third of the function's zipped package, and
//! they compress poorly. Stored as f16 (10 significant bits, the rounding a trained
//! net's accuracy does not notice) they take half the bytes. The file stays standard
//! ONNX: each stored tensor sits behind a `Cast` to f32 under its old name, so any
//! runtime runs it. On load [`expand`] turns them back into f32 initializers, so the
//! batch-norm fold and tract see the graph they always saw and no cast runs per request.

use std::collections::HashMap;

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{AttributeProto, GraphProto, NodeProto, TensorProto, attribute_proto::AttributeType};
use tract_onnx::prelude::f16;

use crate::fold::{floats, le_values};

/// Initializers below this many values stay f32: biases, norms and the head's
/// constants are a rounding error of the file's size, and some are rewritten by name.
pub const MIN_ELEMENTS: usize = 256;
/// The stored f16 tensor's name: its f32 name plus this.
const SUFFIX: &str = "/f16";

/// `v` as f16 would hold it (nearest, ties to even).
pub fn round(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// Whether `values` fit f16's range, where rounding costs at most 2^-11 of each value
/// (or 2^-25 absolute below its normal range).
pub fn fits(values: &[f32]) -> bool {
    values.iter().all(|v| v.is_finite() && v.abs() <= f32::from(f16::MAX))
}

/// Store every f32 initializer of at least [`MIN_ELEMENTS`] values that [`fits`] as f16
/// behind a `Cast` to f32; returns how many. Values are rounded (see [`round`]): a
/// trainer rounds its weights first so that its own answers match the file's.
pub fn store(graph: &mut GraphProto) -> usize {
    let mut casts = Vec::new();
    for init in &mut graph.initializer {
        let Some(values) = floats(init).filter(|v| v.len() >= MIN_ELEMENTS && fits(v)) else {
            continue;
        };
        let name = std::mem::take(&mut init.name);
        *init = TensorProto {
            name: format!("{name}{SUFFIX}"),
            dims: std::mem::take(&mut init.dims),
            data_type: DataType::Float16 as i32,
            raw_data: values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
            ..Default::default()
        };
        casts.push(NodeProto {
            op_type: "Cast".into(),
            name: format!("{name}{SUFFIX}/cast"),
            input: vec![init.name.clone()],
            output: vec![name],
            attribute: vec![AttributeProto {
                name: "to".into(),
                r#type: AttributeType::Int as i32,
                i: DataType::Float as i64,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    let stored = casts.len();
    // Their inputs are initializers: first in the node list keeps it topologically sorted.
    casts.append(&mut graph.node);
    graph.node = casts;
    stored
}

/// f16 values of an initializer (raw little-endian, or bit patterns in `int32_data`).
fn halves(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != DataType::Float16 as i32 {
        return None;
    }
    if !t.raw_data.is_empty() {
        return le_values(&t.raw_data, |b| f16::from_le_bytes(b).to_f32());
    }
    t.int32_data
        .iter()
        .map(|&bits| u16::try_from(bits).ok().map(|b| f16::from_bits(b).to_f32()))
        .collect()
}

/// Undo [`store`]'s layout, and any exporter's that looks the same: each f16 initializer
/// read only by a `Cast` to f32 becomes that cast's output as an f32 initializer.
/// Returns how many; a graph without them is left as it was.
pub fn expand(graph: &mut GraphProto) -> usize {
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for input in graph.node.iter().flat_map(|n| &n.input) {
        *readers.entry(input.as_str()).or_default() += 1;
    }
    for output in &graph.output {
        *readers.entry(output.name.as_str()).or_default() += 1;
    }
    let to_float = |n: &NodeProto| {
        n.op_type == "Cast"
            && n.input.len() == 1
            && n.output.len() == 1
            && n.attribute
                .iter()
                .any(|a| a.name == "to" && a.i == DataType::Float as i64)
    };
    let index: HashMap<&str, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    // (node, initializer, values) for every cast that can be folded.
    let folds: Vec<(usize, usize, Vec<f32>)> = graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| to_float(n) && readers.get(n.input[0].as_str()) == Some(&1))
        .filter_map(|(i, n)| {
            let at = *index.get(n.input[0].as_str())?;
            Some((i, at, halves(&graph.initializer[at])?))
        })
        .collect();
    let expanded = folds.len();
    let mut drop_nodes = vec![false; graph.node.len()];
    for (node, at, values) in folds {
        drop_nodes[node] = true;
        let name = graph.node[node].output[0].clone();
        let dims = std::mem::take(&mut graph.initializer[at].dims);
        graph.initializer[at] = crate::fold::float_tensor(name, dims, &values);
    }
    let mut keep = drop_nodes.iter().map(|d| !d);
    graph.node.retain(|_| keep.next().unwrap_or(true));
    expanded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> GraphProto {
        let weights: Vec<f32> = (0..300).map(|i| (i as f32 * 0.37).sin() * 0.1).collect();
        GraphProto {
            node: vec![NodeProto {
                op_type: "MatMul".into(),
                input: vec!["x".into(), "w".into()],
                output: vec!["y".into()],
                ..Default::default()
            }],
            initializer: vec![
                crate::fold::float_tensor("w".into(), vec![30, 10], &weights),
                crate::fold::float_tensor("small".into(), vec![3], &[0.1, 0.2, 0.3]),
                crate::fold::float_tensor("huge".into(), vec![300], &[1e6; 300]),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn store_then_expand_gives_the_rounded_f32_graph_back() {
        let original = graph();
        let mut g = original.clone();
        // The small tensor and the one outside f16's range stay f32.
        assert_eq!(store(&mut g), 1);
        assert_eq!(g.node[0].op_type, "Cast");
        assert_eq!(g.node[0].output, ["w"]);
        let stored = &g.initializer[0];
        assert_eq!(
            (stored.data_type, stored.raw_data.len()),
            (DataType::Float16 as i32, 600)
        );
        assert_eq!(g.initializer[1..], original.initializer[1..]);
        assert_eq!(expand(&mut g), 1);
        assert_eq!(g.node, original.node);
        let want: Vec<f32> = floats(&original.initializer[0])
            .unwrap()
            .into_iter()
            .map(round)
            .collect();
        assert_eq!(g.initializer[0].name, "w");
        assert_eq!(g.initializer[0].dims, [30, 10]);
        assert_eq!(floats(&g.initializer[0]).unwrap(), want);
        // Rounding moved the values by at most f16's half step.
        for (r, v) in want.iter().zip(floats(&original.initializer[0]).unwrap()) {
            assert!((r - v).abs() <= v.abs() * 2f32.powi(-11) + 2f32.powi(-25), "{v} -> {r}");
        }
        // A second store of rounded values is lossless.
        let mut again = g.clone();
        store(&mut again);
        expand(&mut again);
        assert_eq!(again, g);
    }

    #[test]
    fn a_cast_whose_input_is_read_elsewhere_is_left_alone() {
        let mut g = graph();
        store(&mut g);
        g.node.push(NodeProto {
            op_type: "Identity".into(),
            input: vec![format!("w{SUFFIX}")],
            output: vec!["w_half".into()],
            ..Default::default()
        });
        let before = g.clone();
        assert_eq!(expand(&mut g), 0);
        assert_eq!(g, before);
    }

    #[test]
    fn a_model_runs_the_same_from_either_layout() {
        use crate::test_graphs::{model, plan, run, value_info, values};
        let g = graph();
        let proto = |g: &GraphProto| {
            model(
                g.node.clone(),
                value_info("x", &[2, 30]),
                value_info("y", &[2, 10]),
                g.initializer[..1].to_vec(),
            )
        };
        let x = values(60, 7);
        let exact = run(&plan(&proto(&g), &[2, 30]), &[2, 30], x.clone());
        let mut rounded = g.clone();
        store(&mut rounded);
        // tract runs the stored layout itself (an f16 constant, the cast folded)...
        let stored = run(&plan(&proto(&rounded), &[2, 30]), &[2, 30], x.clone());
        expand(&mut rounded);
        // ...and the expanded one identically.
        assert_eq!(run(&plan(&proto(&rounded), &[2, 30]), &[2, 30], x), stored);
        assert_ne!(stored, exact);
        for (a, b) in stored.iter().zip(&exact) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
    }
}
