//! burn module -> one self-contained ONNX file that follows the contract: uint8 NHWC
//! `image` in, softmax `probabilities` out, metadata carried in `metadata_props`.
//!
//! burn-onnx exports the float NCHW network with a symbolic batch axis; the uint8
//! front (cast, transpose, normalise) and the metadata are added here with the
//! protobuf types tract exposes, so the function feeds raw pixels and nothing else.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, InputSpec, OnnxExporter};
use contract::{CHANNEL_MEAN, CHANNEL_STD, IMAGE_SIDE, INPUT_NAME, OUTPUT_NAME, Rgb32, meta, sha256_hex};
use prost::Message;
use tract_onnx::pb::{
    self, AttributeProto, ModelProto, NodeProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::Dimension,
    tensor_shape_proto::dimension::Value as Dim, type_proto,
};

use crate::error::{Result, TrainError};
use crate::model::Net;
use crate::training::input_tensor;
use crate::tta::{self, Tta};

/// What the model file records about itself.
#[derive(Debug, Clone)]
pub struct ExportMeta {
    pub labels: Vec<String>,
    pub dataset: String,
    pub val_accuracy: f64,
    pub trained_at: String,
    pub config_json: String,
    pub val_ece: f64,
}

/// What the exported graph adds around burn's logits: the test-time views and their
/// average, and the calibration temperature.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    pub tta: Tta,
    pub temperature: f32,
}

impl Default for Head {
    fn default() -> Self {
        Head {
            tta: Tta::default(),
            temperature: 1.0,
        }
    }
}

/// The exported file and its content id.
#[derive(Debug, Clone)]
pub struct Exported {
    pub bytes: Vec<u8>,
    pub version: String,
}

const BATCH: &str = "N";
/// burn's logits, renamed: where the head (TTA average, temperature, softmax) starts.
pub(crate) const LOGITS: &str = "contract/logits";
/// The head's tensors that `uncertainty` reads or rewrites: the TTA view weights
/// (`[1, views]`) and their reshape, the temperature's inverse and the logits divided
/// by it.
pub(crate) const VIEW_WEIGHTS: &str = "contract/view_weights";
pub(crate) const VIEW_SHAPE: &str = "contract/view_shape";
pub(crate) const INV_TEMPERATURE: &str = "contract/inv_temperature";
pub(crate) const CALIBRATED: &str = "contract/calibrated";

/// Export an inference-mode model (see `Module::valid`).
pub fn export(model: &Net, meta: &ExportMeta, head: Head) -> Result<Exported> {
    let device = Device::flex();
    let side = IMAGE_SIDE;
    let sample = Tensor::<4>::zeros([2, 3, side, side], &device);
    let validation = Tensor::<4>::zeros([3, 3, side, side], &device);
    let specs = [InputSpec::new([
        AxisSpec::dynamic(BATCH),
        AxisSpec::Static,
        AxisSpec::Static,
        AxisSpec::Static,
    ])];
    let (traced, gelu_markers) = model.for_export();
    let onnx = OnnxExporter::new()
        .export_dynamic(&traced, sample, validation, &specs, |m: &Net, x| m.forward(x))
        .map_err(|e| TrainError::Export(format!("{e:?}")))?;
    let mut proto = ModelProto::decode(onnx.as_bytes()).map_err(|e| TrainError::Export(e.to_string()))?;
    if gelu_markers {
        expand_gelu_markers(&mut proto)?;
    }
    wrap_contract(&mut proto, meta.labels.len(), head)?;
    let version = version_of(&proto);
    let props = [
        (
            meta::LABELS,
            serde_json::to_string(&meta.labels).expect("strings serialise"),
        ),
        (meta::MODEL_VERSION, version.clone()),
        (meta::DATASET, meta.dataset.clone()),
        (meta::VAL_ACCURACY, format!("{:.4}", meta.val_accuracy)),
        (meta::TRAINED_AT, meta.trained_at.clone()),
        (meta::CONFIG, meta.config_json.clone()),
        (meta::TEMPERATURE, format!("{}", head.temperature)),
        (meta::VAL_ECE, format!("{:.4}", meta.val_ece)),
        (meta::TTA, head.tta.name().into()),
    ];
    proto.metadata_props = props
        .into_iter()
        .map(|(key, value)| StringStringEntryProto { key: key.into(), value })
        .collect();
    proto.producer_name = "trainer".into();
    proto.producer_version = env!("CARGO_PKG_VERSION").into();
    proto.doc_string = "CIFAR-style image classifier: uint8 NHWC `image` -> softmax `probabilities` \
                        (and, once `uncertainty::attach` ran, `ood_score`)."
        .into();
    Ok(Exported {
        bytes: proto.encode_to_vec(),
        version,
    })
}

/// `model` with every float parameter and running statistic rounded to f16, the values
/// [`store_half`] will write: the net then answers as its file does.
pub fn round_to_half<M: Module>(model: M) -> M {
    struct Round;
    impl ModuleMapper for Round {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(|t| crate::lookahead::with_values(t, |v| v.into_iter().map(inference::half::round).collect()))
        }
    }
    model.map(&mut Round)
}

/// A finished file with its large weights stored as f16 (`inference::half`), under the
/// new model version that storing gives it (its other metadata kept).
pub fn store_half(bytes: &[u8]) -> Result<Exported> {
    let mut proto = ModelProto::decode(bytes).map_err(|e| TrainError::Export(e.to_string()))?;
    if let Some(graph) = proto.graph.as_mut() {
        inference::half::store(graph);
    }
    let version = version_of(&proto);
    match proto.metadata_props.iter_mut().find(|p| p.key == meta::MODEL_VERSION) {
        Some(prop) => prop.value = version.clone(),
        None => proto.metadata_props.push(StringStringEntryProto {
            key: meta::MODEL_VERSION.into(),
            value: version.clone(),
        }),
    }
    Ok(Exported {
        bytes: proto.encode_to_vec(),
        version,
    })
}

/// The content id of a graph: the first 16 hex digits of the sha256 of its bytes, so
/// any change to weights or head gives a new version.
pub fn version_of(proto: &ModelProto) -> String {
    let graph_bytes = proto.graph.as_ref().map(Message::encode_to_vec).unwrap_or_default();
    sha256_hex(&graph_bytes)[..16].to_string()
}

/// `bytes` with `props` added to (or replacing in) its metadata. The graph, and so the
/// model version, stay as they were.
pub fn with_metadata(bytes: &[u8], props: &[(&str, String)]) -> Result<Vec<u8>> {
    let mut proto = ModelProto::decode(bytes).map_err(|e| TrainError::Export(e.to_string()))?;
    for (key, value) in props {
        proto.metadata_props.retain(|p| p.key != *key);
        proto.metadata_props.push(StringStringEntryProto {
            key: (*key).into(),
            value: value.clone(),
        });
    }
    Ok(proto.encode_to_vec())
}

pub(crate) fn tensor_type(elem: DataType, dims: &[Dim]) -> Option<TypeProto> {
    Some(TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: elem as i32,
            shape: Some(TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|d| Dimension {
                        value: Some(d.clone()),
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    })
}

pub(crate) fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        name: format!("contract/{output}"),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

pub(crate) fn int_attribute(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

pub(crate) fn int_constant(name: &str, values: Vec<i64>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: DataType::Int64 as i32,
        int64_data: values,
        ..Default::default()
    }
}

pub(crate) fn scalar_constant(name: &str, value: f32) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: DataType::Float as i32,
        float_data: vec![value],
        ..Default::default()
    }
}

pub(crate) fn float_constant(name: &str, dims: Vec<i64>, values: Vec<f32>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims,
        data_type: DataType::Float as i32,
        float_data: values,
        ..Default::default()
    }
}

fn channel_constant(name: &str, values: [f32; 3]) -> TensorProto {
    float_constant(name, vec![1, 3, 1, 1], values.to_vec())
}

/// Replace each marker `Sigmoid` (see `model::Act::GeluMarker`) with the exact GELU,
/// `x * (1 + erf(x / sqrt 2)) * 0.5`, from ops every runtime has (`Erf` is opset 9).
fn expand_gelu_markers(proto: &mut ModelProto) -> Result<()> {
    let graph = proto
        .graph
        .as_mut()
        .ok_or_else(|| TrainError::Export("exporter produced no graph".into()))?;
    const INV_SQRT2: &str = "gelu/inv_sqrt2";
    const ONE: &str = "gelu/one";
    const HALF: &str = "gelu/half";
    let mut nodes = Vec::with_capacity(graph.node.len() + 32);
    let mut expanded = 0;
    for n in std::mem::take(&mut graph.node) {
        if n.op_type != "Sigmoid" {
            nodes.push(n);
            continue;
        }
        let (x, y) = match (n.input.as_slice(), n.output.as_slice()) {
            ([x], [y]) => (x.clone(), y.clone()),
            _ => return Err(TrainError::Export(format!("marker {} is not unary", n.name))),
        };
        let t = |suffix: &str| format!("gelu{expanded}/{suffix}");
        nodes.extend([
            node("Mul", &[&x, INV_SQRT2], &t("scaled"), vec![]),
            node("Erf", &[&t("scaled")], &t("erf"), vec![]),
            node("Add", &[&t("erf"), ONE], &t("cdf2"), vec![]),
            node("Mul", &[&x, &t("cdf2")], &t("twice"), vec![]),
            node("Mul", &[&t("twice"), HALF], &y, vec![]),
        ]);
        expanded += 1;
    }
    if expanded == 0 {
        return Err(TrainError::Export("the traced graph holds no GELU markers".into()));
    }
    graph.node = nodes;
    graph.initializer.extend([
        scalar_constant(INV_SQRT2, std::f32::consts::FRAC_1_SQRT_2),
        scalar_constant(ONE, 1.0),
        scalar_constant(HALF, 0.5),
    ]);
    Ok(())
}

/// Put the uint8 NHWC front (and the TTA views) before burn's float input and the head (view average,
/// temperature, softmax) after its logits.
fn wrap_contract(proto: &mut ModelProto, classes: usize, head: Head) -> Result<()> {
    let graph: &mut pb::GraphProto = proto
        .graph
        .as_mut()
        .ok_or_else(|| TrainError::Export("exporter produced no graph".into()))?;
    if graph.input.len() != 1 || graph.output.len() != 1 {
        return Err(TrainError::Export(format!(
            "expected one input and one output, got {} and {}",
            graph.input.len(),
            graph.output.len()
        )));
    }
    let float_in = graph.input[0].name.clone();
    let old_out = graph.output[0].name.clone();
    // burn exports logits; the softmax the contract promises is appended here.
    for n in &mut graph.node {
        for o in n.output.iter_mut().chain(n.input.iter_mut()) {
            if *o == old_out {
                *o = LOGITS.into();
            }
        }
    }
    let mut logits = LOGITS;
    let views = head.tta.views();
    if views.len() > 1 {
        // burn ran on the views stacked along N: [V * N, C] -> [V, N * C], weighted by a
        // [1, V] MatMul (every runtime has it), back to [N, C].
        let weights: Vec<f32> = views.iter().map(|v| v.weight).collect();
        graph
            .initializer
            .push(float_constant(VIEW_WEIGHTS, vec![1, views.len() as i64], weights));
        graph
            .initializer
            .push(int_constant(VIEW_SHAPE, vec![views.len() as i64, -1]));
        graph
            .initializer
            .push(int_constant("contract/row_shape", vec![-1, classes as i64]));
        graph.node.extend([
            node("Reshape", &[LOGITS, VIEW_SHAPE], "contract/view_logits", vec![]),
            node(
                "MatMul",
                &[VIEW_WEIGHTS, "contract/view_logits"],
                "contract/tta_flat",
                vec![],
            ),
            node(
                "Reshape",
                &["contract/tta_flat", "contract/row_shape"],
                "contract/tta_logits",
                vec![],
            ),
        ]);
        logits = "contract/tta_logits";
    }
    if head.temperature != 1.0 {
        graph
            .initializer
            .push(scalar_constant(INV_TEMPERATURE, 1.0 / head.temperature));
        graph
            .node
            .push(node("Mul", &[logits, INV_TEMPERATURE], CALIBRATED, vec![]));
        logits = CALIBRATED;
    }
    graph
        .node
        .push(node("Softmax", &[logits], OUTPUT_NAME, vec![int_attribute("axis", 1)]));
    let side = IMAGE_SIDE as i64;
    let batch = Dim::DimParam(BATCH.into());
    graph.output[0] = ValueInfoProto {
        name: OUTPUT_NAME.into(),
        r#type: tensor_type(DataType::Float, &[batch.clone(), Dim::DimValue(classes as i64)]),
        ..Default::default()
    };
    graph.input[0] = ValueInfoProto {
        name: INPUT_NAME.into(),
        r#type: tensor_type(
            DataType::Uint8,
            &[batch, Dim::DimValue(side), Dim::DimValue(side), Dim::DimValue(3)],
        ),
        ..Default::default()
    };
    let inv_std = CHANNEL_STD.map(|s| 1.0 / s);
    graph.initializer.push(channel_constant("contract/mean", CHANNEL_MEAN));
    graph.initializer.push(channel_constant("contract/inv_std", inv_std));
    let cast_to = int_attribute("to", DataType::Float as i64);
    let perm = AttributeProto {
        name: "perm".into(),
        r#type: AttributeType::Ints as i32,
        ints: vec![0, 3, 1, 2],
        ..Default::default()
    };
    let normalised = if views.len() > 1 {
        "contract/normalised"
    } else {
        float_in.as_str()
    };
    let mut front = vec![
        node("Cast", &[INPUT_NAME], "contract/float", vec![cast_to]),
        node("Transpose", &["contract/float"], "contract/nchw", vec![perm]),
        node("Sub", &["contract/nchw", "contract/mean"], "contract/centered", vec![]),
        node("Mul", &["contract/centered", "contract/inv_std"], normalised, vec![]),
    ];
    if views.len() > 1 {
        // Each view gathers rows (axis 2) and columns (axis 3) by the indices that burn's
        // forward pass selects with; the views are stacked along N.
        let mut stacked = Vec::new();
        for (i, view) in views.iter().enumerate() {
            let mut current = normalised.to_string();
            for (axis, index) in [(2, &view.rows), (3, &view.cols)] {
                if tta::is_identity(index) {
                    continue;
                }
                let index_name = format!("contract/view{i}_axis{axis}");
                let out = format!("contract/view{i}_{}", if axis == 2 { "rows" } else { "cols" });
                graph.initializer.push(int_constant(&index_name, index.clone()));
                front.push(node(
                    "Gather",
                    &[&current, &index_name],
                    &out,
                    vec![int_attribute("axis", axis)],
                ));
                current = out;
            }
            stacked.push(current);
        }
        let stacked: Vec<&str> = stacked.iter().map(String::as_str).collect();
        front.push(node("Concat", &stacked, &float_in, vec![int_attribute("axis", 0)]));
    }
    graph.node.splice(0..0, front);
    Ok(())
}

/// How far tract's answers on the exported file are from burn's own forward pass.
#[derive(Debug, Clone, Copy)]
pub struct ParityReport {
    pub images: usize,
    pub max_abs_diff: f32,
    pub argmax_agree: bool,
}

/// burn's softmax output for `images`, one row per image.
///
/// Call before [`export`]: capturing moves batch-norm running statistics (state shared
/// between module clones) onto the capture device, after which the module can no longer
/// run on the CPU backend.
pub fn burn_probabilities(model: &Net, images: &[Rgb32], head: Head) -> Result<Vec<Vec<f32>>> {
    let refs: Vec<&Rgb32> = images.iter().collect();
    let tensor = model.forward_probabilities(input_tensor(&refs, None, &Device::flex()), head.tta, head.temperature);
    let [_, classes] = tensor.dims();
    let flat = tensor
        .into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| TrainError::Export(format!("{e:?}")))?;
    Ok(flat.chunks(classes).map(<[f32]>::to_vec).collect())
}

/// Run `images` through tract on `bytes` and compare with burn's rows for them.
pub fn check_parity(bytes: &[u8], images: &[Rgb32], burn_rows: &[Vec<f32>]) -> Result<ParityReport> {
    let classifier = inference::Classifier::from_bytes(bytes)?;
    let tract_rows = classifier.probabilities(images)?;
    let mut max_abs_diff = 0f32;
    let mut argmax_agree = tract_rows.len() == burn_rows.len();
    for (row, burn_row) in tract_rows.iter().zip(burn_rows) {
        for (a, b) in row.iter().zip(burn_row) {
            max_abs_diff = max_abs_diff.max((a - b).abs());
        }
        argmax_agree &= row.len() == burn_row.len() && contract::argmax(row).0 == contract::argmax(burn_row).0;
    }
    Ok(ParityReport {
        images: images.len(),
        max_abs_diff,
        argmax_agree,
    })
}
