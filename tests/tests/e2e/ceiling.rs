//! The largest accepted inputs are answered 200 and stay far inside the deployed memory
//! (1,024 MB): under a quarter of it, each in a fresh release process.

#[test]
#[ignore = "needs release binaries; run by `make test`"]
fn the_largest_accepted_inputs_fit_in_a_quarter_of_the_function_memory() {
    for (what, event) in e2e::ceiling::cases() {
        let (status, kib) = e2e::ceiling::peak(event);
        assert_eq!(status, 200, "{what}");
        assert!(kib > 0 && kib < 256 * 1024, "{what}: peak {} MiB", kib / 1024);
    }
}
