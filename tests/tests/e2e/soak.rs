//! Sustained traffic through the real runtime loop leaves resident memory flat.

use std::time::Duration;

use e2e::soak;

#[test]
#[ignore = "needs release binaries; run by `make test`"]
fn memory_stays_flat_over_thousands_of_predictions() {
    // 1,000 warm-up requests, then 6,000 more (5,250 of them predictions).
    let report = soak::run(7_000, 1_000, Duration::from_secs(300));
    let statuses = &report.statuses;
    assert_eq!(statuses.get(&200), Some(&6_125), "{statuses:?}");
    assert_eq!(statuses.get(&400), Some(&875), "{statuses:?}");
    // The allocator keeps freed pages for a while, so RSS moves by several MiB from sample
    // to sample; a leak is a trend. The last sample may not exceed the highest of the first
    // half by more than 5 MiB (the original leak, ~17 KB a prediction, adds ~80 MiB here).
    let kib: Vec<u64> = report.samples.iter().map(|s| s.1).collect();
    let first_half_max = *kib[..kib.len() / 2].iter().max().unwrap();
    let last = *kib.last().unwrap();
    let growth_mib = (last as f64 - first_half_max as f64) / 1024.0;
    assert!(
        growth_mib <= 5.0,
        "RSS grew {growth_mib:.1} MiB past the first half's peak: {:?}",
        report.samples
    );
}
