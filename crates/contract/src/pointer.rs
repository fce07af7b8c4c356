use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `models/latest.json`: written last by `trainer publish` (and `trainer models`), read by
/// the function at cold start and when it checks for changes. Readers verify `sha256`
/// against the object at `key`. The same shape, without `candidate` and `previous`,
/// describes any one published model (its manifest, the candidate, the previous model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPointer {
    /// Object key of the model, relative to the bucket (e.g. `prefix/models/<sha256>.onnx`).
    pub key: String,
    pub sha256: String,
    /// The model's `model_version` metadata.
    pub version: String,
    pub val_accuracy: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    pub published_at: String,
    /// A model trying out beside this one on a share of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Box<Candidate>>,
    /// What the pointer named before the last promote: where `models rollback` returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Box<ModelPointer>>,
}

/// A candidate model and the requests it sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub model: ModelPointer,
    /// Share of requests, 0 to 100, picked by [`split_bucket`].
    pub percent: u8,
    pub mode: Split,
    pub since: String,
}

/// What a candidate does with its share of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Answers them.
    Canary,
    /// Runs on them beside the current model, which still answers; agreement is recorded.
    Shadow,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Canary => "canary",
            Split::Shadow => "shadow",
        }
    }
}

/// Which of 100 buckets a request falls in, from its caller (a JWT `sub`) or else its
/// first image: the same key always lands in the same bucket, so a user or a photo sees
/// one model, not a coin toss per request.
pub fn split_bucket(key: &[u8]) -> u8 {
    let digest = Sha256::digest(key);
    let head = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (head % 100) as u8
}

impl Candidate {
    /// Whether the request keyed by `key` is in the candidate's share.
    pub fn takes(&self, key: &[u8]) -> bool {
        split_bucket(key) < self.percent
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl ModelPointer {
    /// This model alone: no candidate, no previous.
    pub fn model_only(&self) -> ModelPointer {
        ModelPointer {
            candidate: None,
            previous: None,
            ..self.clone()
        }
    }

    /// What a well-formed pointer must hold beyond its JSON shape: sha256s, a share of at
    /// most 100 % and a candidate other than the current model. The reason, if not.
    pub fn check(&self) -> Result<(), String> {
        if !is_sha256(&self.sha256) {
            return Err(format!("sha256 `{}` is not 64 hex digits", self.sha256));
        }
        if let Some(c) = &self.candidate {
            if !is_sha256(&c.model.sha256) {
                return Err(format!("candidate sha256 `{}` is not 64 hex digits", c.model.sha256));
            }
            if c.percent > 100 {
                return Err(format!("candidate percent {} is over 100", c.percent));
            }
            if c.model.sha256 == self.sha256 {
                return Err("the candidate is the current model".into());
            }
            if c.model.candidate.is_some() || c.model.previous.is_some() {
                return Err("the candidate names a candidate or previous model of its own".into());
            }
        }
        Ok(())
    }
}

/// Hex sha256, the content address of published objects.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Content-addressed key of a model under `prefix` (which is empty or ends with `/`).
pub fn model_key(prefix: &str, sha256: &str) -> String {
    format!("{prefix}models/{sha256}.onnx")
}

/// Key of a published model's manifest (the pointer that names it), beside its files.
pub fn manifest_key(prefix: &str, sha256: &str) -> String {
    format!("{prefix}models/{sha256}/model.json")
}

/// The sha256 in a model key (`<prefix>models/<sha256>.onnx`), if it is one.
pub fn sha_of_model_key<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    let sha = key
        .strip_prefix(prefix)?
        .strip_prefix("models/")?
        .strip_suffix(".onnx")?;
    (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then_some(sha)
}

/// Key of the pointer under `prefix`.
pub fn pointer_key(prefix: &str) -> String {
    format!("{prefix}models/latest.json")
}

/// UTC now as RFC 3339, without pulling in a date crate.
pub fn now_rfc3339() -> String {
    rfc3339(now_secs())
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A Unix time as RFC 3339 UTC (`2026-12-04T20:18:34Z`): such strings sort as times do.
pub fn rfc3339(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn pointer_round_trips_json() {
        let p = ModelPointer {
            key: model_key("p/", "ab"),
            sha256: "ab".into(),
            version: "v".into(),
            val_accuracy: 0.5,
            test_accuracy: None,
            published_at: "t".into(),
            candidate: None,
            previous: None,
        };
        let text = serde_json::to_string(&p).unwrap();
        assert!(!text.contains("test_accuracy"));
        assert!(!text.contains("candidate") && !text.contains("previous"), "{text}");
        assert_eq!(serde_json::from_str::<ModelPointer>(&text).unwrap(), p);
        assert_eq!(p.key, "p/models/ab.onnx");
        assert_eq!(pointer_key(""), "models/latest.json");
    }

    fn pointer(sha: char) -> ModelPointer {
        ModelPointer {
            key: format!("models/{}.onnx", sha.to_string().repeat(64)),
            sha256: sha.to_string().repeat(64),
            version: format!("v{sha}"),
            val_accuracy: 0.9,
            test_accuracy: None,
            published_at: "2026-12-01T00:00:00Z".into(),
            candidate: None,
            previous: None,
        }
    }

    #[test]
    fn a_pointer_from_before_candidates_still_reads() {
        let old = r#"{"key":"models/a.onnx","sha256":"aa","version":"v","val_accuracy":0.9,"published_at":"t"}"#;
        let p: ModelPointer = serde_json::from_str(old).unwrap();
        assert_eq!((p.candidate, p.previous), (None, None));
    }

    #[test]
    fn candidates_round_trip_and_bad_ones_are_named() {
        let mut p = pointer('a');
        p.previous = Some(Box::new(pointer('c')));
        p.candidate = Some(Box::new(Candidate {
            model: pointer('b'),
            percent: 10,
            mode: Split::Shadow,
            since: "t".into(),
        }));
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.contains(r#""mode":"shadow""#), "{text}");
        assert_eq!(serde_json::from_str::<ModelPointer>(&text).unwrap(), p);
        assert_eq!(p.check(), Ok(()));
        assert!(serde_json::from_str::<ModelPointer>(&text.replace("shadow", "half")).is_err());
        assert!(serde_json::from_str::<ModelPointer>(&text.replace(r#""percent":10"#, r#""percent":-1"#)).is_err());
        let mut over = p.clone();
        over.candidate.as_mut().unwrap().percent = 101;
        assert!(over.check().unwrap_err().contains("over 100"));
        let mut itself = p.clone();
        itself.candidate.as_mut().unwrap().model = pointer('a');
        assert!(itself.check().unwrap_err().contains("is the current model"));
        let mut short = p.clone();
        short.candidate.as_mut().unwrap().model.sha256 = "ab".into();
        assert!(short.check().unwrap_err().contains("64 hex"));
        assert_eq!(p.model_only().candidate, None);
    }

    #[test]
    fn the_split_is_sticky_and_near_its_share() {
        let c = Candidate {
            model: pointer('b'),
            percent: 30,
            mode: Split::Canary,
            since: "t".into(),
        };
        let keys: Vec<Vec<u8>> = (0..10_000u32).map(|i| format!("user-{i}").into_bytes()).collect();
        let taken = keys.iter().filter(|k| c.takes(k)).count();
        assert!((2_800..3_200).contains(&taken), "{taken} of 10,000 at 30 %");
        assert!(keys.iter().all(|k| c.takes(k) == c.takes(k)));
        let none = Candidate {
            percent: 0,
            ..c.clone()
        };
        let all = Candidate { percent: 100, ..c };
        assert!(keys.iter().all(|k| !none.takes(k) && all.takes(k)));
    }
}
