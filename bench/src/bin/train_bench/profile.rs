//! The flex profile of one measurement as a table: where a training step's time goes.

/// A markdown table of a flex profile (`burn_flex::profile`) over `steps` training steps:
/// each phase's wall time, then its kernels by input shape (which names the layer; convs
/// add their output channels as a fifth number), then
/// what ran outside them (allocation, autodiff bookkeeping, uninstrumented ops). Entries
/// under 0.3 % of a step are summed per phase. Validation is left out.
pub fn profile_table(entries: &[burn_flex::profile::Entry], steps: usize) -> String {
    use burn_flex::profile::PHASE_WALL;
    let steps = steps.max(1) as f64;
    let wall = |phase: &str| {
        entries
            .iter()
            .filter(|e| e.phase == phase && e.kernel == PHASE_WALL)
            .map(|e| e.seconds)
            .sum::<f64>()
    };
    let step_total: f64 = trainer::training::phase::STEP.iter().map(|p| wall(p)).sum();
    let ms = |s: f64| 1e3 * s / steps;
    let share = |s: f64| 100.0 * s / step_total.max(f64::MIN_POSITIVE);
    let mut out = format!(
        "one training step: {:.0} ms (mean of {steps} steps)\n\n| phase | kernel | input shape | ms / step | calls / step | share of step |\n|---|---|---|---|---|---|\n",
        ms(step_total)
    );
    for phase in trainer::training::phase::STEP {
        let total = wall(phase);
        if total == 0.0 {
            continue;
        }
        out += &format!(
            "| **{phase}** | (all) | | **{:.1}** | | **{:.1} %** |\n",
            ms(total),
            share(total)
        );
        let mut kernels: Vec<_> = entries
            .iter()
            .filter(|e| e.phase == phase && e.kernel != PHASE_WALL)
            .collect();
        kernels.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        let (mut small, mut small_n, mut inside) = (0.0, 0, 0.0);
        for e in kernels {
            inside += e.seconds;
            if share(e.seconds) < 0.3 {
                small += e.seconds;
                small_n += 1;
                continue;
            }
            out += &format!(
                "| {phase} | {} | {:?} | {:.1} | {:.0} | {:.1} % |\n",
                e.kernel,
                e.shape,
                ms(e.seconds),
                e.calls as f64 / steps,
                share(e.seconds)
            );
        }
        if small_n > 0 {
            out += &format!(
                "| {phase} | {small_n} smaller entries | | {:.1} | | {:.1} % |\n",
                ms(small),
                share(small)
            );
        }
        let outside = (total - inside).max(0.0);
        out += &format!(
            "| {phase} | outside the instrumented kernels | | {:.1} | | {:.1} % |\n",
            ms(outside),
            share(outside)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_flex::profile::{Entry, PHASE_WALL};

    fn entry(phase: &'static str, kernel: &'static str, shape: &[usize], seconds: f64) -> Entry {
        Entry {
            phase,
            kernel,
            shape: shape.to_vec(),
            seconds,
            calls: 2,
        }
    }

    #[test]
    fn profile_table_shares_add_up_per_phase() {
        let entries = [
            entry("forward", PHASE_WALL, &[], 3.0),
            entry("forward", "conv forward", &[8, 3, 32, 32], 2.0),
            entry("forward", "relu forward", &[8, 4, 32, 32], 0.001),
            entry("backward", PHASE_WALL, &[], 1.0),
            entry("validation", PHASE_WALL, &[], 100.0),
        ];
        let table = profile_table(&entries, 2);
        // Step = forward + backward wall (validation left out): 4 s over 2 steps.
        assert!(table.starts_with("one training step: 2000 ms"), "{table}");
        assert!(
            table.contains("| **forward** | (all) | | **1500.0** | | **75.0 %** |"),
            "{table}"
        );
        assert!(
            table.contains("| forward | conv forward | [8, 3, 32, 32] | 1000.0 | 1 | 50.0 % |"),
            "{table}"
        );
        // The tiny ReLU is summed with the small entries; the rest of the phase is outside.
        assert!(
            table.contains("| forward | 1 smaller entries | | 0.5 | | 0.0 % |"),
            "{table}"
        );
        assert!(
            table.contains("| forward | outside the instrumented kernels | | 499.5 | | 25.0 % |"),
            "{table}"
        );
        assert!(
            table.contains("| **backward** | (all) | | **500.0** | | **25.0 %** |"),
            "{table}"
        );
        assert!(!table.contains("validation"), "{table}");
    }
}
