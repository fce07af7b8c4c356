//! The loops that the patched tract-core operators (`../PATCHES.md`) run on every call: the
//! grid convolution's tiles, im2col's panels, tiling max pools and GELU's passes.
//!
//! They live in a crate of their own because cargo sets the opt-level per crate, and a
//! build for size (the function's `lambda` profile, tract-core at `z`) marks every function
//! `minsize`: LLVM then neither unrolls nor vectorises, the grid tile's 24 accumulators go
//! to the stack, and a 32x32 request took 5x as long. Built at opt-level 3 here, they keep
//! their speed while the rest of tract-core (graph building, the typed evaluators for every
//! datum type) is built small. Every public function is non-generic and `#[inline(never)]`:
//! a generic would be compiled in its caller's crate, and a body inlined into a `minsize`
//! caller would be optimised as one.

pub mod gelu;
pub mod grid;
pub mod im2col;
pub mod pool;
