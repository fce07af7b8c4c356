//! Helpers for the end-to-end tests: real processes (moto_server, the function under
//! cargo lambda's emulator, the trainer, qemu) started on loopback with ephemeral ports and
//! stopped on drop, also when a test fails. One module per concern.

pub mod ceiling;
pub mod function;
pub mod load;
pub mod models;
pub mod paths;
pub mod process;
pub mod runtime_api;
pub mod s3;
pub mod soak;

pub use function::{Watch, start_function};
pub use models::{retrained, stage_run, with_metadata};
pub use paths::{bin, fixture_images, root, sample_images, venv_tool, write_folder};
pub use process::{Service, free_port, http, run};
pub use s3::{FaultyProxy, S3Server, publish_command, publish_run};
