//! AWS Signature Version 4 for S3 requests, header form: the canonical request, the
//! string to sign and the derived key, as the SigV4 documentation defines them.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use contract::sha256_hex;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The role's keys as Lambda hands them to the function.
#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the token, even in a debug print.
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// A request to sign. `path` is the raw key path (`/bucket/key` or `/key`); it is encoded
/// here. `headers` are extra headers to sign, besides host and the x-amz ones.
pub struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub payload_sha256: &'a str,
}

/// SHA-256 of an empty payload: what a GET signs.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The headers to send with the request: `x-amz-date`, `x-amz-content-sha256`,
/// `x-amz-security-token` when there is one, and `authorization`.
pub fn sign(creds: &Credentials, region: &str, req: &Request, at: SystemTime) -> Vec<(&'static str, String)> {
    let amz_date = amz_date(at);
    let date = &amz_date[..8];
    let mut signed: BTreeMap<String, String> = BTreeMap::new();
    signed.insert("host".into(), req.host.into());
    signed.insert("x-amz-content-sha256".into(), req.payload_sha256.into());
    signed.insert("x-amz-date".into(), amz_date.clone());
    if let Some(token) = &creds.session_token {
        signed.insert("x-amz-security-token".into(), token.clone());
    }
    for (name, value) in req.headers {
        signed.insert(name.to_ascii_lowercase(), value.trim().into());
    }
    let names = signed.keys().cloned().collect::<Vec<_>>().join(";");
    let canonical_headers: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical = format!(
        "{}\n{}\n\n{canonical_headers}\n{names}\n{}",
        req.method,
        encode_path(req.path),
        req.payload_sha256
    );
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = hmac(format!("AWS4{}", creds.secret_key).as_bytes(), date.as_bytes());
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    let mut out = vec![
        ("x-amz-date", amz_date),
        ("x-amz-content-sha256", req.payload_sha256.to_string()),
    ];
    if let Some(token) = &creds.session_token {
        out.push(("x-amz-security-token", token.clone()));
    }
    out.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={names}, Signature={signature}",
            creds.access_key
        ),
    ));
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// S3's canonical URI: every byte but the unreserved ones and `/` percent-encoded, once.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn amz_date(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    fn example_keys(token: Option<&str>) -> Credentials {
        Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(Into::into),
        }
    }

    fn authorization(headers: &[(&str, String)]) -> String {
        headers.iter().find(|(k, _)| *k == "authorization").unwrap().1.clone()
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(amz_date(at(0)), "19700101T000000Z");
        assert_eq!(amz_date(at(951_782_400)), "20000229T000000Z");
        assert_eq!(amz_date(at(1_369_353_600)), "20130524T000000Z");
        assert_eq!(amz_date(at(4_107_542_399)), "21000228T235959Z");
        assert_eq!(amz_date(at(1_796_428_800 + 3_723)), "20261205T010203Z");
    }

    #[test]
    fn paths_are_encoded_once_keeping_slashes() {
        assert_eq!(
            encode_path("/b/models/v1 x$+é.onnx"),
            "/b/models/v1%20x%24%2B%C3%A9.onnx"
        );
        assert_eq!(encode_path("/a-b_c.~d"), "/a-b_c.~d");
    }

    /// The worked example in the S3 SigV4 documentation ("Example: GET Object").
    #[test]
    fn the_documented_get_object_example_signs_the_same() {
        let headers = sign(
            &example_keys(None),
            "us-east-1",
            &Request {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                path: "/test.txt",
                headers: &[("Range", "bytes=0-9")],
                payload_sha256: EMPTY_SHA256,
            },
            at(1_369_353_600),
        );
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// Signatures botocore (the Python SDK's `S3SigV4Auth`) computes for the same requests:
    /// a PUT with a session token and a key that needs encoding, and a conditional GET in
    /// another region. Regenerate with `.venv/bin/python scripts/sigv4_vectors.py`.
    #[test]
    fn botocore_signs_the_same() {
        let body = b"{\"label\":\"cat\"}";
        let headers = sign(
            &example_keys(Some("FQoGZXIvYXdzEXAMPLETOKEN")),
            "eu-west-1",
            &Request {
                method: "PUT",
                host: "models-bucket.s3.eu-west-1.amazonaws.com",
                path: "/feedback/2026/12/05/a b$c+d.json",
                headers: &[],
                payload_sha256: &sha256_hex(body),
            },
            at(1_796_428_800 + 3_723),
        );
        assert_eq!(authorization(&headers), PUT_AUTHORIZATION);
        let headers = sign(
            &example_keys(None),
            "ap-southeast-2",
            &Request {
                method: "GET",
                host: "127.0.0.1:5000",
                path: "/bucket/models/latest.json",
                headers: &[],
                payload_sha256: EMPTY_SHA256,
            },
            at(1_796_428_800),
        );
        assert_eq!(authorization(&headers), GET_AUTHORIZATION);
    }

    const PUT_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261205/eu-west-1/s3/aws4_request, \
         SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, \
         Signature=a9b8c375b5391dd9ed099d09873331da62e9d6ea3782ba7b659449cbd15be006";
    const GET_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261205/ap-southeast-2/s3/aws4_request, \
         SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
         Signature=acf99bc74453d09da188957d030747510fbeac4c9e6c2cb12fb78b26fff67561";

    #[test]
    fn the_debug_print_hides_the_secret() {
        let s = format!("{:?}", example_keys(Some("tok")));
        assert!(!s.contains("EXAMPLEKEY") && !s.contains("tok"), "{s}");
    }
}
