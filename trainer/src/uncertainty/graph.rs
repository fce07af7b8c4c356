//! The graph side: nodes that turn what the net already computes into `ood_score`,
//! added to a new export or an older file alike. Everything added here is named
//! `uncertainty/...`, so it can be stripped and added again.

use contract::{OOD_OUTPUT, OUTPUT_NAME};
use tract_onnx::pb::{
    self, ModelProto, ValueInfoProto, tensor_proto::DataType, tensor_shape_proto::dimension::Value as Dim,
};

use crate::error::{Result, TrainError};
use crate::export::{
    CALIBRATED, INV_TEMPERATURE, VIEW_SHAPE, VIEW_WEIGHTS, float_constant, int_attribute, int_constant, node,
    scalar_constant, tensor_type,
};

const PREFIX: &str = "uncertainty/";
/// -logsumexp of the calibrated logits, `[N]`: a probe output while fitting.
pub(super) const ENERGY: &str = "uncertainty/energy";
/// The pooled penultimate features averaged over the test-time views (what the head's
/// linear layer reads), `[N, C]`: a probe output while fitting.
pub(super) const FEATURES: &str = "uncertainty/features";

/// What `ood_score` standardises and adds: the energy, and the squared distance of the
/// features to the nearest class mean when the net has pooled features.
#[derive(Debug, Clone, PartialEq)]
pub struct OodConstants {
    pub energy_mean: f32,
    pub energy_scale: f32,
    pub distance: Option<DistanceConstants>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DistanceConstants {
    /// `[classes, features]`, rows first.
    pub class_means: Vec<f32>,
    pub features: usize,
    pub mean: f32,
    pub scale: f32,
}

fn graph_of(proto: &mut ModelProto) -> Result<&mut pb::GraphProto> {
    proto
        .graph
        .as_mut()
        .ok_or_else(|| TrainError::Export("model has no graph".into()))
}

fn softmax_input(graph: &pb::GraphProto) -> Result<String> {
    graph
        .node
        .iter()
        .find(|n| n.op_type == "Softmax" && n.output.iter().any(|o| o == OUTPUT_NAME))
        .and_then(|n| n.input.first().cloned())
        .ok_or_else(|| TrainError::Export(format!("no Softmax produces `{OUTPUT_NAME}`")))
}

/// Set the temperature the graph divides its logits by before the softmax (and the
/// energy), inserting the division where an export without calibration had none.
pub fn set_temperature(proto: &mut ModelProto, temperature: f64) -> Result<()> {
    let graph = graph_of(proto)?;
    let value = scalar_constant(INV_TEMPERATURE, (1.0 / temperature) as f32);
    if let Some(init) = graph.initializer.iter_mut().find(|i| i.name == INV_TEMPERATURE) {
        *init = value;
        return Ok(());
    }
    let logits = softmax_input(graph)?;
    let first_use = graph
        .node
        .iter()
        .position(|n| n.input.contains(&logits))
        .unwrap_or(graph.node.len());
    for n in &mut graph.node {
        for i in n.input.iter_mut().filter(|i| **i == logits) {
            *i = CALIBRATED.into();
        }
    }
    graph
        .node
        .insert(first_use, node("Mul", &[&logits, INV_TEMPERATURE], CALIBRATED, vec![]));
    graph.initializer.push(value);
    Ok(())
}

/// Remove what an earlier [`add_probe`] / [`finish`] added.
pub fn strip(proto: &mut ModelProto) -> Result<()> {
    let graph = graph_of(proto)?;
    graph.node.retain(|n| !n.name.starts_with(PREFIX));
    graph.initializer.retain(|i| !i.name.starts_with(PREFIX));
    graph
        .output
        .retain(|o| ![OOD_OUTPUT, ENERGY, FEATURES].contains(&o.name.as_str()));
    Ok(())
}

fn opset(proto: &ModelProto) -> i64 {
    proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(1, |o| o.version)
}

fn producer<'a>(graph: &'a pb::GraphProto, name: &str) -> Option<&'a pb::NodeProto> {
    graph.node.iter().find(|n| n.output.iter().any(|o| o == name))
}

/// The end of the net, followed back from its logits through scalings and reshapes.
struct Head {
    /// Width of the linear layer's input.
    features: i64,
    /// The global pool's output: the features the linear layer reads.
    pooled: String,
}

/// `None` when the net does not end in global pooling and a bias-free linear layer.
fn head_of(graph: &pb::GraphProto) -> Option<Head> {
    let dims = |name: &str| {
        graph
            .initializer
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.dims.clone())
    };
    let mut at = producer(graph, crate::export::LOGITS)?;
    let weight = loop {
        match at.op_type.as_str() {
            "MatMul" if at.input.len() == 2 && dims(&at.input[1]).is_some_and(|d| d.len() == 2) => {
                break at.input[1].clone();
            }
            "Mul" | "Reshape" | "Flatten" => at = producer(graph, at.input.first()?)?,
            _ => return None,
        }
    };
    let [features, _classes] = dims(&weight)?[..] else {
        return None;
    };
    at = producer(graph, at.input.first()?)?;
    loop {
        match at.op_type.as_str() {
            "Reshape" | "Flatten" => at = producer(graph, at.input.first()?)?,
            "MaxPool" | "GlobalMaxPool" | "GlobalAveragePool" | "AveragePool" => {
                return Some(Head {
                    features,
                    pooled: at.output.first()?.clone(),
                });
            }
            _ => return None,
        }
    }
}

fn float_output(name: &str, dims: Vec<Dim>) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: tensor_type(DataType::Float, &dims),
        ..Default::default()
    }
}

fn batch() -> Dim {
    Dim::DimParam("N".into())
}

/// Add the energy and the view-averaged pooled features as temporary outputs, to fit
/// the score's constants. Returns the width of the features (none when the net does not
/// end in global pooling and a linear layer: the score is then the energy alone).
pub fn add_probe(proto: &mut ModelProto) -> Result<Option<usize>> {
    let version = opset(proto);
    if version < 18 {
        return Err(TrainError::Export(format!(
            "the uncertainty outputs need ONNX opset 18 or later; this file has {version}"
        )));
    }
    strip(proto)?;
    let graph = graph_of(proto)?;
    let logits = softmax_input(graph)?;
    graph.initializer.push(int_constant("uncertainty/axis1", vec![1]));
    graph.node.extend([
        node(
            "ReduceLogSumExp",
            &[&logits, "uncertainty/axis1"],
            "uncertainty/log_partition",
            vec![int_attribute("keepdims", 0)],
        ),
        node("Neg", &["uncertainty/log_partition"], ENERGY, vec![]),
    ]);
    graph.output.push(float_output(ENERGY, vec![batch()]));
    let Some(head) = head_of(graph) else {
        rename_ours(graph);
        return Ok(None);
    };
    let views = graph
        .initializer
        .iter()
        .find(|i| i.name == VIEW_WEIGHTS)
        .and_then(|i| i.dims.get(1).copied())
        .unwrap_or(1);
    // The features the head reads, averaged over the views as the logits are.
    graph
        .initializer
        .push(int_constant("uncertainty/feature_rows", vec![-1, head.features]));
    if views > 1 {
        graph.node.extend([
            node(
                "Reshape",
                &[&head.pooled, "uncertainty/feature_rows"],
                "uncertainty/view_features",
                vec![],
            ),
            node(
                "Reshape",
                &["uncertainty/view_features", VIEW_SHAPE],
                "uncertainty/stacked_features",
                vec![],
            ),
            node(
                "MatMul",
                &[VIEW_WEIGHTS, "uncertainty/stacked_features"],
                "uncertainty/mean_features",
                vec![],
            ),
            node(
                "Reshape",
                &["uncertainty/mean_features", "uncertainty/feature_rows"],
                FEATURES,
                vec![],
            ),
        ]);
    } else {
        graph.node.push(node(
            "Reshape",
            &[&head.pooled, "uncertainty/feature_rows"],
            FEATURES,
            vec![],
        ));
    }
    graph
        .output
        .push(float_output(FEATURES, vec![batch(), Dim::DimValue(head.features)]));
    rename_ours(graph);
    Ok(Some(head.features as usize))
}

/// `node` names nodes `contract/...`; ours get `uncertainty/...` so `strip` finds them.
fn rename_ours(graph: &mut pb::GraphProto) {
    for n in &mut graph.node {
        if n.output.iter().any(|o| o.starts_with(PREFIX)) {
            n.name = format!("{PREFIX}{}", n.output[0]);
        }
    }
}

/// Turn a probed graph into the served one: `ood_score` from the fitted constants, the
/// probe outputs removed (their nodes stay where `ood_score` reads them).
pub fn finish(proto: &mut ModelProto, constants: &OodConstants) -> Result<()> {
    let graph = graph_of(proto)?;
    graph.output.retain(|o| o.name != ENERGY && o.name != FEATURES);
    graph.initializer.extend([
        scalar_constant("uncertainty/energy_mean", constants.energy_mean),
        scalar_constant("uncertainty/energy_scale", constants.energy_scale),
    ]);
    let mut added = vec![
        node(
            "Sub",
            &[ENERGY, "uncertainty/energy_mean"],
            "uncertainty/energy_centred",
            vec![],
        ),
        node(
            "Mul",
            &["uncertainty/energy_centred", "uncertainty/energy_scale"],
            if constants.distance.is_some() {
                "uncertainty/energy_z"
            } else {
                OOD_OUTPUT
            },
            vec![],
        ),
    ];
    if let Some(d) = &constants.distance {
        let classes = d.class_means.len() / d.features;
        let mut means_t = vec![0f32; d.class_means.len()];
        for c in 0..classes {
            for k in 0..d.features {
                means_t[k * classes + c] = d.class_means[c * d.features + k];
            }
        }
        let means_sq: Vec<f32> = d
            .class_means
            .chunks_exact(d.features)
            .map(|m| m.iter().map(|v| v * v).sum())
            .collect();
        graph.initializer.extend([
            float_constant("uncertainty/means_t", vec![d.features as i64, classes as i64], means_t),
            float_constant("uncertainty/means_sq", vec![1, classes as i64], means_sq),
            scalar_constant("uncertainty/two", 2.0),
            scalar_constant("uncertainty/distance_mean", d.mean),
            scalar_constant("uncertainty/distance_scale", d.scale),
        ]);
        added.extend([
            node("Mul", &[FEATURES, FEATURES], "uncertainty/squares", vec![]),
            node(
                "ReduceSum",
                &["uncertainty/squares", "uncertainty/axis1"],
                "uncertainty/norm_sq",
                vec![int_attribute("keepdims", 1)],
            ),
            node("MatMul", &[FEATURES, "uncertainty/means_t"], "uncertainty/dots", vec![]),
            node(
                "Mul",
                &["uncertainty/dots", "uncertainty/two"],
                "uncertainty/twice_dots",
                vec![],
            ),
            node(
                "Sub",
                &["uncertainty/norm_sq", "uncertainty/twice_dots"],
                "uncertainty/partial",
                vec![],
            ),
            node(
                "Add",
                &["uncertainty/partial", "uncertainty/means_sq"],
                "uncertainty/distances",
                vec![],
            ),
            node(
                "ReduceMin",
                &["uncertainty/distances", "uncertainty/axis1"],
                "uncertainty/nearest",
                vec![int_attribute("keepdims", 0)],
            ),
            node(
                "Sub",
                &["uncertainty/nearest", "uncertainty/distance_mean"],
                "uncertainty/distance_centred",
                vec![],
            ),
            node(
                "Mul",
                &["uncertainty/distance_centred", "uncertainty/distance_scale"],
                "uncertainty/distance_z",
                vec![],
            ),
            node(
                "Add",
                &["uncertainty/energy_z", "uncertainty/distance_z"],
                OOD_OUTPUT,
                vec![],
            ),
        ]);
    }
    for mut n in added {
        n.name = format!("{PREFIX}{}", n.output[0]);
        graph.node.push(n);
    }
    graph.output.push(float_output(OOD_OUTPUT, vec![batch()]));
    Ok(())
}
