//! The models answering requests: shared by the handler (which reads them) and the
//! refresher (which swaps them), so neither depends on the other.

use std::sync::{Arc, RwLock};

use contract::{Candidate, ModelPointer};
use inference::Classifier;

/// A loaded model and where it came from.
pub struct Loaded {
    pub classifier: Classifier,
    pub source: String,
    /// sha256 of the model bytes.
    pub sha256: String,
}

/// A candidate beside the current model, and the pointer's terms for it (share, mode).
pub struct CandidateModel {
    pub model: Arc<Loaded>,
    pub terms: Candidate,
}

/// What serves now: the current model and any candidate. Models are shared by `Arc`, so a
/// pointer that changes only the candidate's share reloads nothing.
pub struct Served {
    pub current: Arc<Loaded>,
    pub candidate: Option<CandidateModel>,
    /// Why the pointer's candidate does not serve (it failed to load, or its labels
    /// differ): the current model answers every request meanwhile.
    pub candidate_error: Option<String>,
    /// The pointer these models were loaded from (none: a fixed model); a check that
    /// reads the same pointer changes nothing.
    pub pointer: Option<ModelPointer>,
}

impl Served {
    pub fn only(current: Loaded) -> Self {
        Self {
            current: Arc::new(current),
            candidate: None,
            candidate_error: None,
            pointer: None,
        }
    }
}

/// The serving models, swapped whole: a request keeps the `Arc` it started with.
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
