//! Peak RSS of the release function for the largest inputs it accepts, each in a fresh
//! process through the Lambda runtime API on loopback, with one model and with a shadow
//! candidate loaded beside it (the candidate's S3 on loopback too):
//! `cargo run --release -p e2e --bin ceiling`.

fn main() {
    println!("| request | status | peak RSS MiB |");
    println!("| --- | ---: | ---: |");
    let cases = e2e::ceiling::cases();
    for (what, event) in &cases {
        let (status, kib) = e2e::ceiling::peak(event.clone());
        println!("| {what} | {status} | {:.1} |", kib as f64 / 1024.0);
    }
    // Two models loaded (a shadow candidate on every request), with the largest request
    // of each kind: what a canary or shadow costs in memory.
    let work = tempfile::tempdir().expect("tempdir");
    let (_s3, env) = e2e::ceiling::two_models(work.path());
    for (what, event) in cases
        .iter()
        .filter(|(w, _)| w.starts_with("PNG") || w.starts_with("batch"))
    {
        let (status, kib) = e2e::ceiling::peak_with(event.clone(), &env);
        println!(
            "| {what}, shadow candidate loaded and run | {status} | {:.1} |",
            kib as f64 / 1024.0
        );
    }
}
