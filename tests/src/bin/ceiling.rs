//! Peak RSS of the release function for the largest inputs it accepts, each in a fresh
//! process through the Lambda runtime API on loopback:
//! `cargo run --release -p e2e --bin ceiling`.

fn main() {
    println!("| request | status | peak RSS MiB |");
    println!("| --- | ---: | ---: |");
    for (what, event) in e2e::ceiling::cases() {
        let (status, kib) = e2e::ceiling::peak(event);
        println!("| {what} | {status} | {:.1} |", kib as f64 / 1024.0);
    }
}
