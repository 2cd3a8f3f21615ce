//! A small blocking HTTP client for tests and the demo's readiness checks.

use std::time::Duration;

use ureq::Agent;

/// A reply as the client saw it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl Reply {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

fn agent() -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// GETs a URL and returns its body text whatever the status.
pub fn get_text(url: &str) -> Result<String, ureq::Error> {
    agent().get(url).call()?.body_mut().read_to_string()
}

/// Sends a request with optional bearer token and JSON body.
pub fn send(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Reply, ureq::Error> {
    let mut builder = http_request(method, url);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder
        .body(body.unwrap_or_default().to_string())
        .map_err(ureq::Error::from)?;
    let mut response = agent().run(request)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response.body_mut().read_to_string()?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn http_request(method: &str, url: &str) -> ureq::http::request::Builder {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    if method == "POST" || method == "PUT" {
        builder = builder.header("content-type", "application/json");
    }
    builder
}
