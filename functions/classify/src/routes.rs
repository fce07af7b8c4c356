//! The API's routes: one enum, its paths and methods, so adding a route is one place.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the page phones and browsers use.
    Index,
    Health,
    Model,
    Predict,
    /// `POST /feedback`: a correction (404 unless `FEEDBACK_URI` is set).
    Feedback,
}

impl Route {
    pub const ALL: [Route; 5] = [
        Route::Predict,
        Route::Feedback,
        Route::Health,
        Route::Model,
        Route::Index,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Route::Index => "/",
            Route::Health => "/health",
            Route::Model => "/model",
            Route::Predict => "/predict",
            Route::Feedback => "/feedback",
        }
    }

    pub fn method(self) -> Method {
        match self {
            Route::Predict | Route::Feedback => Method::POST,
            Route::Index | Route::Health | Route::Model => Method::GET,
        }
    }

    pub fn from_path(path: &str) -> Option<Route> {
        Self::ALL.into_iter().find(|r| r.path() == path)
    }

    /// "POST /predict, POST /feedback, GET /health, GET /model or GET /" for the 404 message.
    pub fn listing() -> String {
        let names: Vec<String> = Self::ALL
            .iter()
            .map(|r| format!("{} {}", r.method(), r.path()))
            .collect();
        let (last, rest) = names.split_last().expect("routes");
        format!("{} or {last}", rest.join(", "))
    }
}

/// Path relative to the API: a function URL or `$default` stage gives `/predict`; a named
/// stage prefixes it (`/prod/predict`), which is stripped.
pub fn normalise_path(req: &ApiGatewayV2httpRequest) -> String {
    let raw = req
        .raw_path
        .as_deref()
        .or(req.request_context.http.path.as_deref())
        .unwrap_or("/");
    let mut path = raw.to_string();
    if let Some(stage) = req.request_context.stage.as_deref().filter(|s| *s != "$default") {
        let prefix = format!("/{stage}");
        if let Some(rest) = path.strip_prefix(&prefix)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            path = rest.to_string();
        }
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_found_by_its_path() {
        for r in Route::ALL {
            assert_eq!(Route::from_path(r.path()), Some(r));
        }
        assert_eq!(Route::from_path("/nope"), None);
        assert_eq!(
            Route::listing(),
            "POST /predict, POST /feedback, GET /health, GET /model or GET /"
        );
    }
}
