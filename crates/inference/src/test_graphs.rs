//! Small ONNX graphs built in code, for the tests of `fold` and of tract's kernels.

use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::Dimension,
    tensor_shape_proto::dimension::Value, type_proto,
};
use tract_onnx::prelude::*;

pub fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Dimensions as ONNX writes them.
pub fn i64s(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&d| d as i64).collect()
}

pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

/// A one-input, one-output opset-13 model.
pub fn model(
    nodes: Vec<NodeProto>,
    input: ValueInfoProto,
    output: ValueInfoProto,
    initializer: Vec<TensorProto>,
) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(GraphProto {
            node: nodes,
            input: vec![input],
            output: vec![output],
            initializer,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The model optimised for an f32 input of `shape`.
pub fn plan(proto: &ModelProto, shape: &[usize]) -> Arc<TypedRunnableModel> {
    let mut model = tract_onnx::onnx().model_for_proto_model(proto).unwrap();
    model
        .set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape))
        .unwrap();
    model.into_optimized().unwrap().into_runnable().unwrap()
}

/// Run `plan` on `x` (of `shape`), the output flattened.
pub fn run(plan: &Arc<TypedRunnableModel>, shape: &[usize], x: Vec<f32>) -> Vec<f32> {
    let input = tract_ndarray::ArrayD::from_shape_vec(shape, x).unwrap();
    let out = plan.run(tvec!(Tensor::from(input).into())).unwrap();
    out[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect()
}

/// Deterministic values in [-1, 1).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
