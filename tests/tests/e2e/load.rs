//! Eight concurrent clients against the function under `cargo lambda watch`, bounded in
//! count and time: every request answered, no 5xx, each malformed one a 400, and the
//! function's memory flat from round to round (glibc malloc grew ~25 MiB a round here).
//! The figures for the README come from `make bench-load` (the same run, printed).

use std::time::Duration;

use e2e::*;

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn eight_clients_get_no_5xx_and_no_dropped_connections() {
    let work = tempfile::tempdir().unwrap();
    let watch = start_function(&[], work.path());
    let pid = load::function_pid();
    let mut rss = Vec::new();
    for _ in 0..3 {
        let r = load::run(&watch.base, 8, 50, Duration::from_secs(240));
        assert!(r.transport_errors.is_empty(), "dropped: {:?}", r.transport_errors);
        assert_eq!(r.latencies_ms.len(), 400, "every request answered: {:?}", r.statuses);
        // One request kind in eight is malformed by design (`{"image": 7}`).
        assert_eq!(r.statuses.get(&400), Some(&50), "{:?}", r.statuses);
        assert_eq!(r.statuses.get(&200), Some(&350), "{:?}", r.statuses);
        rss.push(soak::rss_kib(pid));
    }
    // After the first round warms the allocator: no more than 16 MiB over 800 requests
    // (mimalloc moves by up to ~13 MiB between samples; glibc malloc grew 48 MiB here).
    assert!(rss[2] <= rss[0] + 16 * 1024, "RSS KiB per round of 400: {rss:?}");
}
