//! Per-node wall time of a model as the function runs it (batch norms folded, input fixed
//! to uint8 [1, 32, 32, 3], tract-optimised): where tract's time goes, by node and by op.
//!
//!     cargo run --release -p contract --example tract_profile -- models/cifar10.onnx [runs]
//!
//! `NOFOLD=1` profiles the graph as the file has it.

use std::collections::BTreeMap;
use std::time::Instant;

use prost::Message;
use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "models/cifar10.onnx".into());
    let runs: usize = args.next().map_or(Ok(200), |s| s.parse())?;
    let mut proto = tract_onnx::pb::ModelProto::decode(std::fs::read(&path)?.as_slice())?;
    if std::env::var_os("NOFOLD").is_none()
        && let Some(graph) = proto.graph.as_mut()
    {
        println!("batch norms folded: {}", contract::fold::fold_batch_norms(graph));
    }
    let mut model = tract_onnx::onnx().model_for_proto_model(&proto)?;
    model.set_input_fact(0, InferenceFact::dt_shape(u8::datum_type(), tvec![1, 32, 32, 3]))?;
    let plan = model.into_optimized()?.into_runnable()?;
    let input: TValue = Tensor::from(tract_ndarray::Array4::<u8>::from_elem((1, 32, 32, 3), 90)).into();
    let mut nodes: BTreeMap<usize, (String, f64)> = BTreeMap::new();
    let warm_up = 20;
    for i in 0..runs + warm_up {
        let mut state = plan.spawn()?;
        state.run_plan_with_eval(tvec!(input.clone()), |ctx, st, node, inputs| {
            let start = Instant::now();
            let out = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
            if i >= warm_up {
                let e = nodes
                    .entry(node.id)
                    .or_insert_with(|| (format!("{} {}", node.op().name(), node.name), 0.0));
                e.1 += start.elapsed().as_secs_f64() * 1e3 / runs as f64;
            }
            out
        })?;
    }
    let mut rows: Vec<_> = nodes.into_values().collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "total {:.3} ms per run ({runs} runs)\n\n| ms | node |\n|---|---|",
        rows.iter().map(|r| r.1).sum::<f64>()
    );
    for (name, ms) in rows.iter().take(25) {
        println!("| {ms:.3} | {name} |");
    }
    let mut by_op: BTreeMap<&str, f64> = BTreeMap::new();
    for (name, ms) in &rows {
        *by_op.entry(name.split(' ').next().unwrap_or_default()).or_default() += ms;
    }
    println!("\n| ms | op |\n|---|---|");
    for (op, ms) in by_op {
        println!("| {ms:.3} | {op} |");
    }
    Ok(())
}
