//! Corrections joined to what the model saw: a correction that names a request takes the
//! captured image of that request; one that carries its image keeps it.

use std::collections::HashMap;

use contract::Rgb32;
use contract::capture::{CaptureRecord, FeedbackRecord};

/// A labelled image from a user's correction.
#[derive(Debug, Clone)]
pub struct Correction {
    /// The correction's id: what splits corrections into training and held-out shares.
    pub id: String,
    pub pixels: Rgb32,
    pub label: String,
}

/// Corrections ready to train on, and the ones that could not be used.
#[derive(Debug, Default)]
pub struct Joined {
    pub corrections: Vec<Correction>,
    /// Named a request with no captured record (capture is sampled, or it expired).
    pub unmatched: usize,
    /// Named a request of several images (a batch): which one is wrong is unknown.
    pub ambiguous: usize,
    /// An image that does not decode.
    pub invalid: usize,
}

pub fn join(feedback: &[FeedbackRecord], captured: &[CaptureRecord]) -> Joined {
    let mut by_request: HashMap<&str, Vec<&CaptureRecord>> = HashMap::new();
    for c in captured {
        by_request.entry(c.request_id.as_str()).or_default().push(c);
    }
    let mut out = Joined::default();
    for f in feedback {
        let image = match (&f.image, &f.request_id) {
            (Some(image), _) => image.as_str(),
            (None, Some(id)) => match by_request.get(id.as_str()).map(Vec::as_slice) {
                None | Some([]) => {
                    out.unmatched += 1;
                    continue;
                }
                Some([one]) => one.image.as_str(),
                Some(many) if many.iter().all(|c| c.index == 0) => many[0].image.as_str(),
                Some(_) => {
                    out.ambiguous += 1;
                    continue;
                }
            },
            (None, None) => {
                out.invalid += 1;
                continue;
            }
        };
        match contract::capture::decode_image(image) {
            Ok(pixels) => out.corrections.push(Correction {
                id: f.id.clone(),
                pixels,
                label: f.label.clone(),
            }),
            Err(_) => out.invalid += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(request: &str, index: usize, shade: u8) -> CaptureRecord {
        CaptureRecord {
            capture: 1,
            request_id: request.into(),
            index,
            time: "t".into(),
            model_version: "v".into(),
            variant: "current".into(),
            label: None,
            top1: "cat".into(),
            probability: 0.3,
            image: contract::capture::encode_image(&[shade; contract::IMAGE_BYTES]),
        }
    }

    fn fb(id: &str, request: Option<&str>, image: Option<String>) -> FeedbackRecord {
        FeedbackRecord {
            feedback: 1,
            id: id.into(),
            time: "t".into(),
            label: "dog".into(),
            request_id: request.map(Into::into),
            image,
            model_version: "v".into(),
        }
    }

    #[test]
    fn requests_are_matched_batches_and_missing_ones_counted() {
        let captured = [
            capture("single", 0, 10),
            capture("batch", 0, 20),
            capture("batch", 1, 30),
        ];
        let feedback = [
            fb("a", Some("single"), None),
            fb("b", Some("gone"), None),
            fb("c", Some("batch"), None),
            fb(
                "d",
                None,
                Some(contract::capture::encode_image(&[40; contract::IMAGE_BYTES])),
            ),
            fb("e", None, Some("not an image".into())),
        ];
        let j = join(&feedback, &captured);
        assert_eq!((j.unmatched, j.ambiguous, j.invalid), (1, 1, 1));
        let got: Vec<(&str, u8)> = j.corrections.iter().map(|c| (c.id.as_str(), c.pixels[0])).collect();
        assert_eq!(got, [("a", 10), ("d", 40)]);
    }
}
