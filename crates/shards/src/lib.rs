//! A dataset as many `.tar` shards in the WebDataset layout (`<key>.<ext>` holding the
//! image, `<key>.cls` its label index), plus an `index.json` naming the classes and each
//! split's shards. Writing rolls over to a new shard every `shard_size` samples; reading
//! streams shards in a shuffled order through a bounded prefetch and a shuffle buffer, so
//! memory stays flat however large the dataset. Where shards live (a folder, S3) is the
//! caller's [`ShardSource`]; this crate knows no storage service.

mod error;
mod format;
mod stream;
mod write;

pub use error::{Result, ShardError};
pub use format::{INDEX, Index, Sample, ShardInfo, read_shard};
pub use stream::{Decode, Dir, ShardSource, Stream, StreamOptions, open_index, stream};
pub use write::{ShardWriter, write_index};
