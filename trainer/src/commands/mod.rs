//! One module per subcommand: its arguments and a `run`.

pub mod calibrate;
pub mod data;
pub mod drift;
pub mod evaluate;
pub mod half;
pub mod models;
pub mod plot;
pub mod publish;
pub mod train;
