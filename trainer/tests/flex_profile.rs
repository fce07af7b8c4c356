//! `burn_flex::profile`, the accounting behind `train-bench --profile`: kernels are
//! booked under the phase they ran in, by input shape, once even when one instrumented
//! op calls another, and each phase's wall time is kept beside them. Its own test
//! binary, because the accounting is process-wide.

use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor};
use burn_flex::profile::{self, PHASE_WALL};

#[test]
fn kernels_are_booked_by_phase_and_shape_once() {
    let device = Device::flex();
    let x = Tensor::<4>::ones([2, 3, 4, 5], &device);
    // Off: nothing is recorded.
    profile::set_phase("forward");
    drop(gelu(x.clone()));
    assert!(profile::take().is_empty());

    profile::enable(true);
    profile::set_phase("forward");
    drop(gelu(x.clone()));
    // A strided GELU goes through `unary_op`, itself instrumented: booked once, as GELU.
    drop(gelu(x.clone().swap_dims(1, 3)));
    profile::set_phase("backward");
    drop(x.clone() * x.clone());
    std::thread::sleep(std::time::Duration::from_millis(20));
    let entries = profile::take();
    profile::enable(false);

    let find = |phase: &str, kernel: &str, shape: &[usize]| {
        entries
            .iter()
            .find(|e| e.phase == phase && e.kernel == kernel && e.shape == shape)
            .unwrap_or_else(|| panic!("no {phase}/{kernel}/{shape:?} in {entries:#?}"))
    };
    assert_eq!(find("forward", "gelu forward", &[2, 3, 4, 5]).calls, 1);
    assert_eq!(find("forward", "gelu forward", &[2, 5, 4, 3]).calls, 1);
    assert!(
        !entries.iter().any(|e| e.kernel == "elementwise (unary)"),
        "the nested unary_op was booked too: {entries:#?}"
    );
    assert_eq!(find("backward", "elementwise (binary)", &[2, 3, 4, 5]).calls, 1);
    // The backward phase lasted at least the sleep, and its kernels fit inside it.
    let wall = find("backward", PHASE_WALL, &[]).seconds;
    assert!(wall >= 0.02, "backward wall {wall}");
    let kernels: f64 = entries
        .iter()
        .filter(|e| e.phase == "backward" && e.kernel != PHASE_WALL)
        .map(|e| e.seconds)
        .sum();
    assert!(kernels <= wall);
    assert!(profile::take().is_empty(), "take clears the totals");
}
