//! Concurrent load on the function under `cargo lambda watch` (loopback, bounded):
//! `cargo run --release -p e2e --bin load -- [CLIENTS] [REQUESTS_PER_CLIENT]`.

use std::time::Duration;

fn main() {
    let arg = |i: usize, d: usize| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (clients, per_client) = (arg(1, 8), arg(2, 250));
    let work = tempfile::tempdir().expect("tempdir");
    let watch = e2e::start_function(&[], work.path());
    // Warm-up: the first requests pay for the function's own start.
    e2e::load::run(&watch.base, 1, 8, Duration::from_secs(60));
    // The report that opened the memory issue: rounds of load, RSS of the function after each.
    let pid = e2e::load::function_pid();
    let mut r = e2e::load::run(&watch.base, clients, per_client, Duration::from_secs(540));
    let mut rss = vec![e2e::soak::rss_kib(pid)];
    for _ in 1..4 {
        e2e::load::run(&watch.base, clients, per_client, Duration::from_secs(540));
        rss.push(e2e::soak::rss_kib(pid));
    }
    r.latencies_ms.sort_by(f64::total_cmp);
    println!("| clients | requests | answered | dropped | p50 ms | p90 ms | p99 ms | max ms | requests/s |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {clients} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |",
        clients * per_client,
        r.latencies_ms.len(),
        r.transport_errors.len(),
        r.percentile(0.5),
        r.percentile(0.9),
        r.percentile(0.99),
        r.latencies_ms.last().copied().unwrap_or(0.0),
        r.latencies_ms.len() as f64 / r.seconds
    );
    println!(
        "statuses {:?} in {:.1} s (the mix: raw JPEG, JSON, batch of 8, PNG, 1 in 8 malformed)",
        r.statuses, r.seconds
    );
    let mib: Vec<String> = rss.iter().map(|k| format!("{:.1}", *k as f64 / 1024.0)).collect();
    println!(
        "function RSS after each round of {} requests (pid {pid}): {} MiB",
        clients * per_client,
        mib.join(" -> ")
    );
}
