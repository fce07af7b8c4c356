//! Opt-in wall-clock accounting of the main kernels, keyed by phase (set by the caller:
//! forward, backward, optimiser...), kernel and the shape of its first input, so one
//! training step can be broken down by layer and pass. Off by default, when an
//! instrumented call costs one relaxed atomic load.
//!
//! Only the outermost instrumented call on a thread is timed (a GELU that falls back to
//! `unary_op` counts once, as GELU).

#[cfg(feature = "std")]
mod imp {
    use std::cell::Cell;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, PoisonError};
    use std::time::Instant;

    static ENABLED: AtomicBool = AtomicBool::new(false);
    /// The current phase and when it began (while accounting is on).
    static PHASE: Mutex<(&'static str, Option<Instant>)> = Mutex::new(("", None));
    type Key = (&'static str, &'static str, Vec<usize>);
    static TOTALS: Mutex<Option<HashMap<Key, (f64, u64)>>> = Mutex::new(None);

    std::thread_local! {
        /// Whether a span is open on this thread (only the outermost one is timed).
        static ACTIVE: Cell<bool> = const { Cell::new(false) };
    }

    /// One kernel's accumulated time.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Entry {
        pub phase: &'static str,
        pub kernel: &'static str,
        pub shape: Vec<usize>,
        pub seconds: f64,
        pub calls: u64,
    }

    /// Turn accounting on or off (totals are kept until [`take`]).
    pub fn enable(on: bool) {
        ENABLED.store(on, Ordering::Relaxed);
    }

    /// Wall-clock time of a phase, whatever ran in it, is kept under this kernel name
    /// (with an empty shape), so the time outside the instrumented kernels shows.
    pub const PHASE_WALL: &str = "(phase wall time)";

    fn add(key: Key, seconds: f64) {
        let mut totals = TOTALS.lock().unwrap_or_else(PoisonError::into_inner);
        let e = totals.get_or_insert_with(HashMap::new).entry(key).or_insert((0.0, 0));
        e.0 += seconds;
        e.1 += 1;
    }

    /// Label the calls that follow (until the next call) with `phase`, and book the
    /// wall time since the last call to the phase it ended.
    pub fn set_phase(phase: &'static str) {
        let mut current = PHASE.lock().unwrap_or_else(PoisonError::into_inner);
        let now = ENABLED.load(Ordering::Relaxed).then(Instant::now);
        if let (Some(start), Some(now)) = (current.1, now) {
            add((current.0, PHASE_WALL, Vec::new()), (now - start).as_secs_f64());
        }
        *current = (phase, now);
    }

    /// The totals so far, largest first; clears them and ends the current phase.
    pub fn take() -> Vec<Entry> {
        set_phase("");
        let totals = TOTALS.lock().unwrap_or_else(PoisonError::into_inner).take().unwrap_or_default();
        let mut v: Vec<Entry> = totals
            .into_iter()
            .filter(|((phase, _, _), _)| !phase.is_empty())
            .map(|((phase, kernel, shape), (seconds, calls))| Entry {
                phase,
                kernel,
                shape,
                seconds,
                calls,
            })
            .collect();
        v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        v
    }

    /// A timed call; recorded when dropped.
    pub struct Span {
        start: Instant,
        kernel: &'static str,
        shape: Vec<usize>,
    }

    /// Start timing `kernel` on an input of `shape`, if accounting is on and no other
    /// instrumented call on this thread is already being timed.
    #[inline]
    pub fn span(kernel: &'static str, shape: &[usize]) -> Option<Span> {
        if !ENABLED.load(Ordering::Relaxed) {
            return None;
        }
        if ACTIVE.with(|a| a.replace(true)) {
            return None;
        }
        Some(Span {
            start: Instant::now(),
            kernel,
            shape: shape.to_vec(),
        })
    }

    impl Drop for Span {
        fn drop(&mut self) {
            let seconds = self.start.elapsed().as_secs_f64();
            ACTIVE.with(|a| a.set(false));
            let phase = PHASE.lock().unwrap_or_else(PoisonError::into_inner).0;
            add((phase, self.kernel, core::mem::take(&mut self.shape)), seconds);
        }
    }
}

#[cfg(feature = "std")]
pub use imp::{Entry, PHASE_WALL, Span, enable, set_phase, span, take};

/// Without `std` there is no clock: spans are no-ops.
#[cfg(not(feature = "std"))]
#[inline]
pub fn span(_kernel: &'static str, _shape: &[usize]) -> Option<()> {
    None
}
