//! Per-node wall time of a model as the function runs it (batch norms folded, input fixed
//! to uint8 [1, 32, 32, 3], tract-optimised): where tract's time goes, by node and by op.
//!
//!     cargo run --release -p inference --example tract_profile -- models/cifar10.onnx [runs]
//!
//! `NOFOLD=1` profiles the graph as the file has it; `TRANSFORMS=a,b` applies tract model
//! transforms by name (e.g. `conv_nhwc`) before optimising; `FILL=v` feeds a constant image.
//! Each row names the node's op info (for a matrix product: the kernel it runs), and a
//! last line times whole calls with a fresh state per call and with one state reused.

use std::collections::BTreeMap;
use std::time::Instant;

use prost::Message;
use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "models/cifar10.onnx".into());
    let runs: usize = args.next().map_or(Ok(200), |s| s.parse())?;
    let mut proto = tract_onnx::pb::ModelProto::decode(std::fs::read(&path)?.as_slice())?;
    if let Some(graph) = proto.graph.as_mut() {
        println!("f16 weights expanded: {}", inference::half::expand(graph));
        if std::env::var_os("NOFOLD").is_none() {
            println!("batch norms folded: {}", inference::fold::fold_batch_norms(graph));
        }
    }
    let mut model = tract_onnx::onnx().model_for_proto_model(&proto)?;
    model.set_input_fact(0, InferenceFact::dt_shape(u8::datum_type(), tvec![1, 32, 32, 3]))?;
    let mut typed = model.into_typed()?.into_decluttered()?;
    if let Ok(names) = std::env::var("TRANSFORMS") {
        for name in names.split(',') {
            let t = tract_onnx::tract_core::transform::get_transform(name)?
                .ok_or_else(|| tract_onnx::prelude::tract_data::internal::anyhow!("no transform {name}"))?;
            t.transform(&mut typed)?;
        }
        typed = typed.into_decluttered()?;
    }
    let plan = typed.into_optimized()?.into_runnable()?;
    // A picture-like input by default; `FILL=v` for a constant one, as the function bench uses
    // (both measured within noise of each other on the shipped model).
    let fill: Option<u8> = std::env::var("FILL").ok().and_then(|v| v.parse().ok());
    let pixels = tract_ndarray::Array4::<u8>::from_shape_fn((1, 32, 32, 3), |(_, y, x, c)| {
        fill.unwrap_or(((x * 7 + y * 13 + c * 50) % 256) as u8)
    });
    let input: TValue = Tensor::from(pixels).into();
    let mut nodes: BTreeMap<usize, (String, f64)> = BTreeMap::new();
    // `WARMUP=n` for fewer untimed runs (under qemu, where a run takes seconds).
    let warm_up: usize = std::env::var("WARMUP").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    for i in 0..runs + warm_up {
        let mut state = plan.spawn()?;
        state.run_plan_with_eval(tvec!(input.clone()), |ctx, st, node, inputs| {
            let start = Instant::now();
            let out = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
            if i >= warm_up {
                let e = nodes.entry(node.id).or_insert_with(|| {
                    let info = node.op().info().unwrap_or_default().join("; ");
                    (format!("{} {} {}", node.op().name(), node.name, info), 0.0)
                });
                e.1 += start.elapsed().as_secs_f64() * 1e3 / runs as f64;
            }
            out
        })?;
    }
    // Whole calls, as the function makes them: a fresh state per call, and one state reused.
    let p50 = |mut f: Box<dyn FnMut() -> TractResult<()> + '_>| -> TractResult<f64> {
        let mut t = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            f()?;
            t.push(start.elapsed().as_secs_f64() * 1e3);
        }
        t.sort_by(f64::total_cmp);
        Ok(t[runs / 2])
    };
    let fresh = p50(Box::new(|| plan.run(tvec!(input.clone())).map(drop)))?;
    let mut state = plan.spawn()?;
    let reused = p50(Box::new(move || state.run(tvec!(input.clone())).map(drop)))?;
    println!("whole call p50: {fresh:.3} ms with a fresh state, {reused:.3} ms reusing one");
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
