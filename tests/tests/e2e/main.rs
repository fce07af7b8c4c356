//! End-to-end tests, one binary (each test file would otherwise link its own copy of
//! the AWS SDK and tract).

mod access;
mod arm64;
mod canary;
mod ceiling;
mod cloud;
mod docs;
mod init;
mod load;
mod notebook;
mod observability;
mod onnxruntime;
mod pipeline;
mod publish;
mod refresh;
mod soak;
mod tools;
mod traffic;
