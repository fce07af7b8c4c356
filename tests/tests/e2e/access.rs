//! Who may call, over HTTP through the runtime API emulator: an `edge` stack's function
//! refuses requests that did not come through its CloudFront (no shared origin header),
//! and a Cognito stack's page signs its user in (code with PKCE), sends the token, and
//! sends a correction with it when the stack takes corrections.

use std::process::Command;

use e2e::*;

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn an_edge_function_answers_only_through_cloudfront() {
    let work = tempfile::tempdir().unwrap();
    let secret = "a-value-only-cloudfront-sends";
    let watch = start_function(&[("ORIGIN_VERIFY", secret.into())], work.path());
    let agent = http();
    let health = format!("{}/health", watch.base);
    let mut direct = agent.get(&health).call().expect("answered");
    assert_eq!(direct.status().as_u16(), 403);
    let e: api::ErrorBody = serde_json::from_str(&direct.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(e.error.code, api::ErrorCode::Forbidden);
    let through = agent
        .get(&health)
        .header("x-origin-verify", secret)
        .call()
        .expect("answered");
    assert_eq!(through.status().as_u16(), 200);
}

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn the_page_signs_in_with_pkce_and_sends_the_token() {
    let work = tempfile::tempdir().unwrap();
    let idp = free_port();
    let client = "page-test-client";
    let corrections = work.path().join("feedback");
    let watch = start_function(
        &[
            ("SIGN_IN_URL", format!("http://127.0.0.1:{idp}")),
            ("SIGN_IN_CLIENT_ID", client.into()),
            ("FEEDBACK_URI", format!("file://{}/", corrections.display())),
        ],
        work.path(),
    );
    let (ok, text) = e2e::run(
        Command::new("node")
            .arg("--test")
            .arg(root().join("tests/web/signin.test.mjs"))
            .env("BASE_URL", &watch.base)
            .env("IMAGE", root().join("tests/fixtures/cat.jpg"))
            .env("IDP_PORT", idp.to_string())
            .env("CLIENT_ID", client),
    );
    assert!(ok, "sign-in page test: {text}");
    // The page's correction was stored, as the 32x32 image with the label picked.
    let stored: Vec<contract::capture::FeedbackRecord> = std::fs::read_dir(&corrections)
        .unwrap()
        .flat_map(|day| std::fs::read_dir(day.unwrap().path()).unwrap())
        .map(|f| serde_json::from_slice(&std::fs::read(f.unwrap().path()).unwrap()).unwrap())
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].label, "frog");
    assert!(contract::capture::decode_image(stored[0].image.as_deref().unwrap()).is_ok());
}
