//! HTTP client keys written inline in a `vigil.yaml` section, as Prometheus
//! writes them in `remote_write` (`basic_auth`, `authorization`,
//! `bearer_token(_file)`, `follow_redirects`, ...): split from the
//! section's own keys and validated as a receiver's `http_config`, with
//! problems at the section's own paths.

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use vigil_common::problem::Problem;

use crate::notify::receivers::config::Problems as EntryProblems;
use crate::notify::receivers::http::oauth2::TokenError;
use crate::notify::receivers::http::{validate_http_config, HttpConfigRaw, HttpSettings};

/// A section parsed: its own keys as `T`, and its HTTP client settings.
/// `own_keys` are the keys `T` reads; every other key must be an HTTP
/// client key. Problems are pushed with field paths under `path`.
pub fn split<T: DeserializeOwned>(
    section: &Value,
    path: &str,
    own_keys: &[&str],
    problems: &mut Vec<Problem>,
) -> Option<(T, HttpSettings)> {
    let Some(map) = section.as_mapping() else {
        problems.push(Problem::at_field(
            path,
            "expected a mapping with at least `url`",
        ));
        return None;
    };
    let (own, http): (Mapping, Mapping) = map
        .clone()
        .into_iter()
        .partition(|(k, _)| k.as_str().is_some_and(|k| own_keys.contains(&k)));
    let own: T = match serde_yaml::from_value(Value::Mapping(own)) {
        Ok(own) => own,
        Err(e) => {
            problems.push(Problem::at_field(path, e.to_string()));
            return None;
        }
    };
    let http_raw: HttpConfigRaw = match serde_yaml::from_value(Value::Mapping(http)) {
        Ok(raw) => raw,
        Err(e) => {
            let message = format!("{e}; this section also takes {}", own_keys.join(", "));
            problems.push(Problem::at_field(path, message));
            return None;
        }
    };
    let mut http_problems = Vec::new();
    let http = validate_http_config(
        &http_raw,
        "http_config",
        &mut EntryProblems::new(&mut http_problems, path.to_string()),
    );
    // The keys are written inline here, not under `http_config`.
    problems.extend(http_problems.into_iter().map(|mut p| {
        p.field = p.field.replacen(".http_config", "", 1);
        p
    }));
    Some((own, http))
}

/// `request` with a section's extra `headers` and its `Authorization`
/// (fetching an OAuth 2.0 token when the section has `oauth2`).
pub async fn with_headers(
    mut request: reqwest::RequestBuilder,
    headers: &[(String, String)],
    http: &HttpSettings,
) -> Result<reqwest::RequestBuilder, TokenError> {
    for (name, value) in headers {
        request = request.header(name, value);
    }
    http.authorize(request).await
}
