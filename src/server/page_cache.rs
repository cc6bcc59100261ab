//! Rendered pages for signed-out visitors, kept for a minute.
//!
//! Without a session every visitor gets the same HTML for the same URL (the
//! catalog and the Stripe mode are fixed for the life of the process) except the
//! per-response CSP nonce. So the first render of a public URL is kept as a
//! template with the nonce cut out, and later signed-out requests get that
//! template with a fresh nonce and the matching CSP header: no rendering, no
//! session or database work. A request with a session cookie, a response that
//! sets a cookie, is not a 200, or shows an error is never kept.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{security::SecurityHeaders, SESSION_COOKIE};

/// The public pages worth keeping, by path and query exactly as requested.
const PUBLIC_PAGES: [&str; 6] = [
    "/",
    "/pricing",
    "/pricing?interval=monthly",
    "/pricing?interval=yearly",
    "/privacy-policy",
    "/terms-of-service",
];

/// Bounds how stale a kept page can be should anything it shows change.
const TTL: Duration = Duration::from_secs(60);

/// Larger pages are not ours; do not buffer them.
const MAX_PAGE_BYTES: usize = 1 << 20;

/// Stands for the nonce inside a kept page; cannot occur in rendered HTML.
const NONCE_SLOT: &str = "\u{0}nonce\u{0}";

struct Kept {
    at: Instant,
    headers: HeaderMap,
    template: Arc<str>,
}

pub struct PageCache {
    security: Arc<SecurityHeaders>,
    pages: RwLock<HashMap<&'static str, Kept>>,
}

impl PageCache {
    pub fn new(security: Arc<SecurityHeaders>) -> Self {
        Self {
            security,
            pages: RwLock::default(),
        }
    }

    fn hit(&self, key: &str) -> Option<Response> {
        let pages = self.pages.read().unwrap_or_else(|p| p.into_inner());
        let kept = pages.get(key).filter(|k| k.at.elapsed() < TTL)?;
        let nonce = leptos::nonce::Nonce::new();
        let body = kept.template.replace(NONCE_SLOT, &nonce);
        let csp = HeaderValue::from_str(&self.security.page_csp(&nonce)).ok()?;
        let mut response = Body::from(body).into_response();
        *response.headers_mut() = kept.headers.clone();
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
        Some(response)
    }

    /// Keeps `response` if it is a plain public page; returns it either way.
    async fn keep(&self, key: &'static str, response: Response) -> Response {
        let nonce = response
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|csp| csp.to_str().ok())
            .and_then(nonce_of)
            .map(str::to_owned);
        let keepable = response.status() == StatusCode::OK
            && !response.headers().contains_key(header::SET_COOKIE);
        let Some(nonce) = nonce.filter(|_| keepable) else {
            return response;
        };
        let (parts, body) = response.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_PAGE_BYTES).await {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(error = %err, page = key, "page body failed");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        };
        if let Ok(html) = std::str::from_utf8(&bytes) {
            if !html.contains("form-error") {
                let mut headers = parts.headers.clone();
                headers.remove(header::CONTENT_SECURITY_POLICY);
                headers.remove(header::CONTENT_LENGTH);
                let kept = Kept {
                    at: Instant::now(),
                    headers,
                    template: html.replace(&nonce, NONCE_SLOT).into(),
                };
                self.pages
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, kept);
            }
        }
        Response::from_parts(parts, Body::from(bytes))
    }
}

/// The `'nonce-…'` source of a CSP.
fn nonce_of(csp: &str) -> Option<&str> {
    let start = csp.find("'nonce-")? + "'nonce-".len();
    let len = csp[start..].find('\'')?;
    Some(&csp[start..start + len]).filter(|n| !n.is_empty())
}

/// The cache key of a request that may be answered from the cache.
fn public_page(request: &Request) -> Option<&'static str> {
    if request.method() != Method::GET {
        return None;
    }
    let has_session = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|cookies| cookies.contains(SESSION_COOKIE));
    if has_session || request.headers().contains_key(header::AUTHORIZATION) {
        return None;
    }
    let uri = request.uri().path_and_query()?.as_str();
    PUBLIC_PAGES.iter().copied().find(|page| *page == uri)
}

/// Middleware: answers public pages for signed-out visitors from the cache.
pub async fn serve(State(cache): State<Arc<PageCache>>, request: Request, next: Next) -> Response {
    let Some(key) = public_page(&request) else {
        return next.run(request).await;
    };
    if let Some(response) = cache.hit(key) {
        return response;
    }
    let response = next.run(request).await;
    cache.keep(key, response).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nonce_in_a_csp() {
        assert_eq!(
            nonce_of("default-src 'self'; script-src 'nonce-abc123' 'strict-dynamic'"),
            Some("abc123")
        );
        assert_eq!(nonce_of("default-src 'none'"), None);
        assert_eq!(nonce_of("script-src 'nonce-'"), None);
    }

    fn get(uri: &str, cookie: Option<&str>) -> Request {
        let mut builder = Request::builder().uri(uri);
        if let Some(cookie) = cookie {
            builder = builder.header(header::COOKIE, cookie);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn only_signed_out_gets_of_public_pages_are_kept() {
        assert_eq!(public_page(&get("/pricing", None)), Some("/pricing"));
        assert_eq!(
            public_page(&get("/pricing?interval=yearly", Some("theme=dark"))),
            Some("/pricing?interval=yearly")
        );
        assert_eq!(
            public_page(&get("/pricing", Some("a=1; billing_session=xyz"))),
            None
        );
        assert_eq!(public_page(&get("/pricing?plan=premium", None)), None);
        assert_eq!(public_page(&get("/dashboard/billing", None)), None);
        let post = Request::builder()
            .method(Method::POST)
            .uri("/pricing")
            .body(Body::empty())
            .unwrap();
        assert_eq!(public_page(&post), None);
    }
}
