//! Which burn backend does the training: the one module that knows backends exist. The
//! recipe (model, optimizer, schedule, export) sees only burn's `Device`, so a GPU run and
//! a CPU run are the same code. `flex` (pure Rust, CPU) is the default so the trainer
//! builds anywhere; `wgpu` (Vulkan/Metal/DX12), `cuda` and `libtorch` are cargo features,
//! never requirements.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::Result;
#[cfg(not(all(feature = "libtorch", feature = "wgpu", feature = "cuda")))]
use crate::error::TrainError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// burn's pure-Rust CPU backend.
    #[default]
    Flex,
    /// burn's LibTorch backend on the CPU (build with `--features libtorch`).
    Libtorch,
    /// burn's CubeCL backend on the first Vulkan, Metal or DX12 adapter (build with
    /// `--features wgpu`); Mesa's software Vulkan (lavapipe) also runs it, slowly.
    Wgpu,
    /// burn's CubeCL backend on the first CUDA GPU (build with `--features cuda`).
    Cuda,
}

impl Backend {
    /// The inference device; call `.autodiff()` on it to train.
    pub fn device(self) -> Result<Device> {
        match self {
            Backend::Flex => Ok(Device::flex()),
            // burn marks burn-tch deprecated (in favour of its CubeCL backends); it is still
            // the way to run LibTorch's CPU kernels under burn, which is what we measure.
            #[cfg(feature = "libtorch")]
            #[allow(deprecated)]
            Backend::Libtorch => Ok(burn::backend::LibTorchDevice::Cpu.into()),
            #[cfg(not(feature = "libtorch"))]
            Backend::Libtorch => Err(missing(
                "libtorch",
                "make trainer-libtorch (needs PyTorch in .venv-torch, see README)",
            )),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(not(feature = "wgpu"))]
            Backend::Wgpu => Err(missing("wgpu", "make trainer-wgpu")),
            #[cfg(feature = "cuda")]
            Backend::Cuda => Ok(Device::cuda(0)),
            #[cfg(not(feature = "cuda"))]
            Backend::Cuda => Err(missing("cuda", "make trainer-cuda (needs the CUDA toolkit)")),
        }
    }

    /// Cap the backend's worker threads; call before the first tensor operation (flex
    /// sizes its rayon pool from `RAYON_NUM_THREADS` on first use).
    pub fn set_threads(self, threads: usize) {
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            // SAFETY: called at start-up before any other thread exists.
            unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
        }
        #[cfg(feature = "libtorch")]
        if self == Backend::Libtorch {
            tch::set_num_threads(threads as i32);
            tch::set_num_interop_threads(1);
        }
    }
}

#[cfg(not(all(feature = "libtorch", feature = "wgpu", feature = "cuda")))]
fn missing(feature: &str, how: &str) -> TrainError {
    TrainError::Config(format!(
        "this trainer was built without the `{feature}` feature; build it with `{how}`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_backend_is_a_clear_error() {
        assert!(Backend::Flex.device().is_ok());
        #[cfg(not(feature = "libtorch"))]
        {
            let err = Backend::Libtorch.device().unwrap_err().to_string();
            assert!(err.contains("libtorch"), "{err}");
        }
        #[cfg(not(feature = "wgpu"))]
        {
            let err = Backend::Wgpu.device().unwrap_err().to_string();
            assert!(
                err.contains("`wgpu` feature") && err.contains("make trainer-wgpu"),
                "{err}"
            );
        }
        #[cfg(not(feature = "cuda"))]
        {
            let err = Backend::Cuda.device().unwrap_err().to_string();
            assert!(err.contains("`cuda` feature"), "{err}");
        }
    }
}
