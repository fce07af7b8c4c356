//! The model answering requests: shared by the handler (which reads it) and the
//! refresher (which swaps it), so neither depends on the other.

use std::sync::{Arc, RwLock};

use inference::Classifier;

/// A loaded model and where it came from.
pub struct Served {
    pub classifier: Classifier,
    pub source: String,
    /// sha256 of the model bytes.
    pub sha256: String,
}

/// The serving model, swapped whole: a request keeps the `Arc` it started with.
pub struct ModelSlot(RwLock<Arc<Served>>);

impl ModelSlot {
    pub fn new(served: Served) -> Self {
        Self(RwLock::new(Arc::new(served)))
    }

    pub fn current(&self) -> Arc<Served> {
        self.0.read().expect("model lock").clone()
    }

    pub fn replace(&self, served: Served) {
        *self.0.write().expect("model lock") = Arc::new(served);
    }
}
