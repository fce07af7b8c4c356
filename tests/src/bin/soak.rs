//! Memory under sustained traffic: RSS of the release `classify` binary per 1,000
//! requests through the Lambda runtime loop (loopback, bounded).
//! `cargo run --release -p e2e --bin soak -- [REQUESTS]`

use std::time::Duration;

fn main() {
    let requests: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let report = e2e::soak::run(requests, 1_000, Duration::from_secs(600));
    println!("| requests | RSS MiB | growth since first sample MiB |");
    println!("| ---: | ---: | ---: |");
    let first = report.samples.first().map(|s| s.1).unwrap_or(0);
    for (n, kib) in &report.samples {
        println!(
            "| {n} | {:.1} | {:+.1} |",
            *kib as f64 / 1024.0,
            (*kib as f64 - first as f64) / 1024.0
        );
    }
    println!(
        "\n{requests} requests in {:.1} s ({:.0}/s); statuses {:?}",
        report.seconds,
        requests as f64 / report.seconds,
        report.statuses
    );
}
