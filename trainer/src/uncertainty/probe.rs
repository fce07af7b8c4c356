//! Running a probed graph (see `graph::add_probe`) through tract: the probabilities,
//! the energy and the pooled features of each image, which the fit needs and the served
//! graph keeps inside.

use contract::{OUTPUT_NAME, Rgb32};
use inference::Plan;
use tract_onnx::pb::ModelProto;

use super::graph::{ENERGY, FEATURES};
use crate::error::{Result, TrainError};

/// Per image, rows first.
#[derive(Debug, Clone, Default)]
pub struct Probed {
    pub probabilities: Vec<f32>,
    pub energy: Vec<f32>,
    /// Empty when the net has no pooled features.
    pub features: Vec<f32>,
}

impl Probed {
    pub fn len(&self) -> usize {
        self.energy.len()
    }

    pub fn is_empty(&self) -> bool {
        self.energy.is_empty()
    }
}

/// A probed graph, optimised for one image at a time as the function runs it.
pub struct Probe {
    plan: Plan,
    probabilities: usize,
    energy: usize,
    features: Option<usize>,
}

fn export_err(e: impl std::fmt::Display) -> TrainError {
    TrainError::Export(format!("probing the graph: {e:#}"))
}

impl Probe {
    pub fn new(proto: &ModelProto) -> Result<Self> {
        let outputs: Vec<&str> = proto
            .graph
            .as_ref()
            .map(|g| g.output.iter().map(|o| o.name.as_str()).collect())
            .unwrap_or_default();
        let at = |name: &str| outputs.iter().position(|o| *o == name);
        let probabilities = at(OUTPUT_NAME).ok_or_else(|| export_err("no probabilities output"))?;
        let energy = at(ENERGY).ok_or_else(|| export_err("no energy output: call add_probe first"))?;
        Ok(Self {
            plan: Plan::new(proto).map_err(export_err)?,
            probabilities,
            energy,
            features: at(FEATURES),
        })
    }

    pub fn run(&self, images: &[Rgb32]) -> Result<Probed> {
        let mut out = Probed::default();
        for image in images {
            let answers = self.plan.run(image).map_err(export_err)?;
            out.probabilities.extend(&answers[self.probabilities]);
            out.energy.extend(&answers[self.energy]);
            if let Some(f) = self.features {
                out.features.extend(&answers[f]);
            }
        }
        Ok(out)
    }
}
