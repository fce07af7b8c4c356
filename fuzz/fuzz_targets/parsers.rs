//! The parsers of what crosses a trust boundary: the model pointer (read from S3), model
//! locations (from the environment and the CLI), and the JSON predict request.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<contract::ModelPointer>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(location) = text.parse::<contract::Location>() {
            // What parses prints back to something that parses to the same.
            assert_eq!(location.to_string().parse::<contract::Location>(), Ok(location));
        }
    }
    match api::PredictRequest::parse(data, 10) {
        Ok(r) => {
            // A parsed request serialises to a body that parses to the same request.
            let again = serde_json::to_vec(&r).expect("serialises");
            assert_eq!(api::PredictRequest::parse(&again, 10).expect("round trip"), r);
        }
        Err(e) => assert!(e.code.status() >= 400 && e.code.status() < 500, "{e}"),
    }
});
