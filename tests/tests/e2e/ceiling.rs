//! The largest accepted inputs are answered 200 and stay far inside the deployed memory
//! (1,024 MB): under a quarter of it, each in a fresh release process, with one model and
//! with a shadow candidate loaded and run beside it.

#[test]
#[ignore = "needs release binaries; run by `make test`"]
fn the_largest_accepted_inputs_fit_in_a_quarter_of_the_function_memory() {
    let cases = e2e::ceiling::cases();
    for (what, event) in &cases {
        let (status, kib) = e2e::ceiling::peak(event.clone());
        assert_eq!(status, 200, "{what}");
        assert!(kib > 0 && kib < 256 * 1024, "{what}: peak {} MiB", kib / 1024);
    }
    let work = tempfile::tempdir().unwrap();
    let (_s3, env) = e2e::ceiling::two_models(work.path());
    for (what, event) in cases
        .iter()
        .filter(|(w, _)| w.starts_with("PNG") || w.starts_with("batch"))
    {
        let (status, kib) = e2e::ceiling::peak_with(event.clone(), &env);
        assert_eq!(status, 200, "{what}, two models");
        assert!(
            kib > 0 && kib < 256 * 1024,
            "{what}, two models: peak {} MiB",
            kib / 1024
        );
    }
}
