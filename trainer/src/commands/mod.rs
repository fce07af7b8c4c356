//! One module per subcommand: its arguments and a `run`.

pub mod bench;
pub mod data;
pub mod evaluate;
pub mod models;
pub mod plot;
pub mod publish;
pub mod train;
