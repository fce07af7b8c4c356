//! Which burn backend does the training. `flex` (pure Rust) is the default so the
//! trainer builds anywhere; `libtorch` is an optional feature for measuring what a
//! native kernel library buys, never a requirement.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::Result;
#[cfg(not(feature = "libtorch"))]
use crate::error::TrainError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// burn's pure-Rust CPU backend.
    #[default]
    Flex,
    /// burn's LibTorch backend on the CPU (build with `--features libtorch`).
    Libtorch,
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
            Backend::Libtorch => Err(TrainError::Config(
                "this trainer was built without the `libtorch` feature; build it with \
                 `make trainer-libtorch` (needs PyTorch in .venv-torch, see README)"
                    .into(),
            )),
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
    }
}
