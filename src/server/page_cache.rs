//! Rendered pages kept for a minute, as templates.
//!
//! Without a session every visitor gets the same HTML for the same URL (the
//! catalog and the Stripe mode are fixed for the life of the process) except the
//! per-response CSP nonce. So the first render of a public URL is kept as a
//! template with the nonce cut out, and later signed-out requests get that
//! template with a fresh nonce and the matching CSP header: no rendering, no
//! session or database work.
//!
//! A signed-in visitor's `/pricing` shows, besides that, only their email (in the
//! header) and the pricing view computed from their billing state. Both are read
//! fresh for every request (the session's user and the user's billing rows, the
//! same two queries a render makes). The view is a pure function of the catalog
//! and what the account holds (`display::Holdings`: its plan and interval, the
//! packs it owns), and the page is rendered from the view of exactly what was
//! read ([`KnownViewer`]), so a template kept under those holdings, with the email
//! cut out, is what a render would produce: never stale, shared by every visitor
//! whose plans look the same. (Keyed by the whole view before, each answer built
//! and cloned the view and hashed and compared every string of it.) A response
//! that sets a cookie, is not a 200, or shows an error is never kept.
//!
//! Whether a render had a viewer is decided where the session is resolved, never
//! by parsing the Cookie header a second time here: [`mark_sessions`] runs inside
//! the session layer and marks the response of any request that layer took a
//! session id from (`Cache-Control: private, no-store`), and a response so marked
//! is never kept as public, whatever this module's own reading of the cookies
//! said. (Cookie headers the two parsers read differently, `billing_session =ID`
//! or `billing%5Fsession=ID`, once made a signed-in render the public page.)

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

use super::SESSION_COOKIE;
use crate::{
    catalog::display::Holdings, request::KnownViewer, security::SecurityHeaders, state::AppState,
    teams::Member, views::AccountChoice,
};

/// The public pages worth keeping, by path and query exactly as requested.
const PUBLIC_PAGES: [&str; 6] = [
    "/",
    "/pricing",
    "/pricing?interval=monthly",
    "/pricing?interval=yearly",
    "/privacy-policy",
    "/terms-of-service",
];

/// The pages kept for signed-in visitors: their content is the pricing view.
const PRICING_PAGES: [&str; 3] = [
    "/pricing",
    "/pricing?interval=monthly",
    "/pricing?interval=yearly",
];

/// Distinct signed-in templates kept at most (one per page and pricing view: a
/// handful of plan states in practice); beyond it the expired ones are dropped,
/// and if none has expired, all of them.
const MAX_VIEWER_PAGES: usize = 64;

/// Bounds how stale a kept page can be should anything it shows change.
const TTL: Duration = Duration::from_secs(60);

/// Larger pages are not ours; do not buffer them.
const MAX_PAGE_BYTES: usize = 1 << 20;

/// What a signed-in response may never be: stored by a browser or a proxy (the
/// Back button after signing out showed the billing page from the browser cache).
pub const PRIVATE: HeaderValue = HeaderValue::from_static("private, no-store");

/// A kept public page: shared caches may keep it, but must tell visitors apart by
/// their cookies, and revalidate (its nonce changes with every response).
const PUBLIC_CACHE_CONTROL: HeaderValue = HeaderValue::from_static("no-cache");

/// Stand for the nonce and the visitor's email inside a kept page; cannot occur
/// in rendered HTML.
const NONCE_SLOT: &str = "\u{0}nonce\u{0}";
const EMAIL_SLOT: &str = "\u{0}email\u{0}";

struct Kept {
    at: Instant,
    headers: HeaderMap,
    template: Template,
}

/// A kept page cut at its slots once, when kept, so an answer is one buffer
/// of the right size filled in order: `str::replace` per answer grew a new
/// string once per slot, and with the allocation and copies it was a fifth of
/// the server's CPU on a kept `/pricing` under load (issue 23, `perf`).
struct Template {
    /// The page's text between the slots, in order, and the slot after each
    /// piece (`None` after the last).
    pieces: Vec<(Box<str>, Option<Slot>)>,
    text_len: usize,
    /// How many slots the pieces are followed by.
    slots: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    Nonce,
    Email,
}

impl Template {
    /// Cuts `html` at every [`NONCE_SLOT`] and [`EMAIL_SLOT`].
    fn new(html: &str) -> Self {
        let mut pieces: Vec<(Box<str>, Option<Slot>)> = Vec::new();
        let mut rest = html;
        loop {
            let next = [(NONCE_SLOT, Slot::Nonce), (EMAIL_SLOT, Slot::Email)]
                .into_iter()
                .filter_map(|(mark, slot)| rest.find(mark).map(|at| (at, mark.len(), slot)))
                .min_by_key(|(at, _, _)| *at);
            match next {
                Some((at, len, slot)) => {
                    pieces.push((rest[..at].into(), Some(slot)));
                    rest = &rest[at + len..];
                }
                None => {
                    pieces.push((rest.into(), None));
                    break;
                }
            }
        }
        let text_len = pieces.iter().map(|(text, _)| text.len()).sum();
        let slots = pieces.iter().filter(|(_, slot)| slot.is_some()).count();
        Template {
            pieces,
            text_len,
            slots,
        }
    }

    /// The page with `nonce` and `email` (already escaped) in their slots.
    fn fill(&self, nonce: &str, email: &str) -> Vec<u8> {
        let mut page =
            Vec::with_capacity(self.text_len + self.slots * nonce.len().max(email.len()));
        for (text, slot) in &self.pieces {
            page.extend_from_slice(text.as_bytes());
            match slot {
                Some(Slot::Nonce) => page.extend_from_slice(nonce.as_bytes()),
                Some(Slot::Email) => page.extend_from_slice(email.as_bytes()),
                None => {}
            }
        }
        page
    }

    #[cfg(test)]
    fn contains(&self, needle: &str) -> bool {
        self.pieces.iter().any(|(text, _)| text.contains(needle))
    }
}

impl Kept {
    fn fresh(&self) -> bool {
        self.at.elapsed() < TTL
    }
}

/// A signed-in page differs by its pricing view and by the header's account
/// switcher (the names of the viewer's organizations); the email is filled in.
type ViewerKey = (&'static str, Holdings, Vec<AccountChoice>);

pub struct PageCache {
    state: AppState,
    pages: RwLock<HashMap<&'static str, Kept>>,
    viewer_pages: RwLock<HashMap<ViewerKey, Kept>>,
}

impl PageCache {
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            pages: RwLock::default(),
            viewer_pages: RwLock::default(),
        }
    }

    fn hit(&self, key: &str) -> Option<Response> {
        let pages = self.pages.read().unwrap_or_else(|p| p.into_inner());
        answer(pages.get(key)?, None, &self.state.security)
    }

    fn viewer_hit(&self, key: &ViewerKey, email: &str) -> Option<Response> {
        let pages = self.viewer_pages.read().unwrap_or_else(|p| p.into_inner());
        answer(pages.get(key)?, Some(email), &self.state.security)
    }

    /// Keeps `response` if it is a plain public page; returns it either way.
    async fn keep(&self, key: &'static str, response: Response) -> Response {
        if is_private(&response) {
            // The session layer saw a session: not a signed-out render.
            return response;
        }
        let (mut response, kept) = template_of(response, None).await;
        if kept.is_some() || response.status() == StatusCode::OK {
            mark_public(response.headers_mut());
        }
        if let Some(kept) = kept {
            self.pages
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, kept);
        }
        response
    }

    /// Keeps a signed-in page rendered for `email` under `key` (its page and view).
    async fn keep_viewer(&self, key: ViewerKey, email: &str, response: Response) -> Response {
        let (response, kept) = template_of(response, Some(email)).await;
        if let Some(kept) = kept {
            let mut pages = self.viewer_pages.write().unwrap_or_else(|p| p.into_inner());
            if pages.len() >= MAX_VIEWER_PAGES {
                pages.retain(|_, kept| kept.fresh());
            }
            if pages.len() >= MAX_VIEWER_PAGES {
                pages.clear();
            }
            pages.insert(key, kept);
        }
        response
    }

    /// The signed-in visitor of this session and what their account holds;
    /// `None` when there is none (or it cannot be read), and the page renders as
    /// usual.
    async fn viewer(&self, session_id: &tower_sessions::session::Id) -> Option<Viewer> {
        let signed_in = crate::auth::session_store::user_of(&self.state.billing.reads, session_id)
            .await
            .inspect_err(|err| tracing::warn!(error = %err, "session lookup for the page cache"))
            .ok()??;
        let (member, accounts) = crate::teams::members::acting_with_choices(&signed_in)?;
        let holdings = crate::views::build::holdings(&self.state.billing, member.account.id)
            .await
            .inspect_err(|err| tracing::warn!(error = %err, "holdings for the page cache"))
            .ok()?;
        Some(Viewer {
            member,
            accounts,
            holdings,
        })
    }
}

/// A signed-in visitor as the cache read them.
struct Viewer {
    member: Member,
    accounts: Vec<AccountChoice>,
    holdings: Holdings,
}

/// Says that a response came from a kept template (`hit`); renders carry no
/// such header. Lets an operator (and the tests) tell a hit from a render.
pub const CACHE_STATUS: &str = "x-page-cache";

/// A kept page with a fresh nonce (and the visitor's email) filled in; `None`
/// once it is older than the TTL.
fn answer(kept: &Kept, email: Option<&str>, security: &SecurityHeaders) -> Option<Response> {
    if !kept.fresh() {
        return None;
    }
    let nonce = leptos::nonce::Nonce::new();
    // Escaped exactly as the render escaped it where it was cut out.
    let email = email.map(html_escape::encode_text).unwrap_or_default();
    let body = kept.template.fill(&nonce, &email);
    let csp = HeaderValue::from_str(&security.page_csp(&nonce)).ok()?;
    let mut response = Body::from(body).into_response();
    *response.headers_mut() = kept.headers.clone();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(CACHE_STATUS, HeaderValue::from_static("hit"));
    Some(response)
}

/// Reads `response` and, if it is a plain page, makes it a template: the nonce,
/// and the `email` it was rendered for, cut out. A page showing the email
/// elsewhere than once, or an email that HTML would escape, is not kept.
async fn template_of(response: Response, email: Option<&str>) -> (Response, Option<Kept>) {
    let nonce = response
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|csp| csp.to_str().ok())
        .and_then(nonce_of)
        .map(str::to_owned);
    let keepable = response.status() == StatusCode::OK
        && !response.headers().contains_key(header::SET_COOKIE)
        && email.is_none_or(|e| !e.is_empty() && !e.contains('\0'));
    let Some(nonce) = nonce.filter(|_| keepable) else {
        return (response, None);
    };
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_PAGE_BYTES).await {
        Ok(bytes) => bytes,
        Err(err) => {
            tracing::error!(error = %err, "page body failed");
            return (StatusCode::INTERNAL_SERVER_ERROR.into_response(), None);
        }
    };
    let kept = std::str::from_utf8(&bytes)
        .ok()
        .filter(|html| !html.contains("form-error"))
        .and_then(|html| {
            let html = html.replace(&nonce, NONCE_SLOT);
            match email.map(html_escape::encode_text) {
                None => Some(html),
                Some(email) if html.matches(&*email).count() == 1 => {
                    Some(html.replace(&*email, EMAIL_SLOT))
                }
                Some(_) => None,
            }
        })
        .map(|template| {
            let mut headers = parts.headers.clone();
            headers.remove(header::CONTENT_SECURITY_POLICY);
            headers.remove(header::CONTENT_LENGTH);
            Kept {
                at: Instant::now(),
                headers,
                template: Template::new(&template),
            }
        });
    (Response::from_parts(parts, Body::from(bytes)), kept)
}

/// Whether the response was marked as a signed-in one by [`mark_sessions`].
fn is_private(response: &Response) -> bool {
    response
        .headers()
        .get(header::CACHE_CONTROL)
        .is_some_and(|value| value.as_bytes().windows(7).any(|w| w == b"private"))
}

fn mark_public(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, PUBLIC_CACHE_CONTROL);
    headers.insert(header::VARY, HeaderValue::from_static("Cookie"));
}

/// Middleware inside the session layer: a request it took a session id from is a
/// signed-in one (or was), and its response is private. This is the one place
/// that decides it; the page cache only reads the mark.
pub async fn mark_sessions(request: Request, next: Next) -> Response {
    let has_session = request
        .extensions()
        .get::<tower_sessions::Session>()
        .is_some_and(|session| session.id().is_some());
    let mut response = next.run(request).await;
    let sets_cookie = response.headers().contains_key(header::SET_COOKIE);
    if sets_cookie || (has_session && !crate::security::is_static_asset(&response)) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, PRIVATE);
    }
    response
}

/// The `'nonce-…'` source of a CSP.
fn nonce_of(csp: &str) -> Option<&str> {
    let start = csp.find("'nonce-")? + "'nonce-".len();
    let len = csp[start..].find('\'')?;
    Some(&csp[start..start + len]).filter(|n| !n.is_empty())
}

/// Who asks for a page that may be answered from the cache.
#[derive(Debug, PartialEq)]
enum Visitor<'a> {
    SignedOut,
    /// The session cookie's value: the session is looked up, not trusted.
    Session(&'a str),
}

/// The page and visitor of a request that may be answered from the cache.
fn cacheable(request: &Request) -> Option<(&'static str, Visitor<'_>)> {
    if request.method() != Method::GET || request.headers().contains_key(header::AUTHORIZATION) {
        return None;
    }
    let mut sessions = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value);
    let visitor = match (sessions.next(), sessions.next()) {
        (None, _) => Visitor::SignedOut,
        (Some(id), None) => Visitor::Session(id),
        // Which one would the session layer take? Leave it to the render.
        (Some(_), Some(_)) => return None,
    };
    let uri = request.uri().path_and_query()?.as_str();
    let pages: &[&'static str] = match visitor {
        Visitor::SignedOut => &PUBLIC_PAGES,
        Visitor::Session(_) => &PRICING_PAGES,
    };
    let page = pages.iter().copied().find(|page| *page == uri)?;
    Some((page, visitor))
}

/// Middleware: answers public pages, and signed-in visitors' pricing pages, from
/// the cache.
pub async fn serve(
    State(cache): State<Arc<PageCache>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some((page, visitor)) = cacheable(&request) else {
        return next.run(request).await;
    };
    let session_id = match visitor {
        Visitor::SignedOut => {
            if let Some(mut response) = cache.hit(page) {
                mark_public(response.headers_mut());
                return response;
            }
            let response = next.run(request).await;
            return cache.keep(page, response).await;
        }
        Visitor::Session(id) => id.parse::<tower_sessions::session::Id>().ok(),
    };
    let viewer = match session_id {
        Some(id) => cache.viewer(&id).await,
        None => None,
    };
    let Some(viewer) = viewer else {
        return next.run(request).await;
    };
    // One account shows no switcher: the page is the same for everyone.
    let switcher = match viewer.accounts.as_slice() {
        [_] | [] => Vec::new(),
        many => many.to_vec(),
    };
    let key = (page, viewer.holdings, switcher);
    if let Some(response) = cache.viewer_hit(&key, &viewer.member.user.email) {
        return response;
    }
    // A miss: the page is rendered from the view of exactly these holdings.
    let email = viewer.member.user.email.clone();
    let view = cache.state.pricing_for(&key.1);
    request
        .extensions_mut()
        .insert(KnownViewer::new(viewer.member, view, viewer.accounts));
    let response = next.run(request).await;
    cache.keep_viewer(key, &email, response).await
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
    fn a_template_fills_every_slot_in_order() {
        let cases = [
            "plain page, no slot",
            "\u{0}nonce\u{0}",
            "<script nonce=\"\u{0}nonce\u{0}\"></script><a>\u{0}email\u{0}</a><script nonce=\"\u{0}nonce\u{0}\"></script>",
            "\u{0}email\u{0}\u{0}nonce\u{0}end",
            "",
        ];
        for html in cases {
            let filled = Template::new(html).fill("N0NCE", "a&amp;b@example.com");
            let expected = html
                .replace(NONCE_SLOT, "N0NCE")
                .replace(EMAIL_SLOT, "a&amp;b@example.com");
            assert_eq!(String::from_utf8(filled).unwrap(), expected, "{html:?}");
        }
    }

    #[test]
    fn only_gets_of_public_pages_or_signed_in_pricing_are_kept() {
        assert_eq!(
            cacheable(&get("/pricing", None)),
            Some(("/pricing", Visitor::SignedOut))
        );
        assert_eq!(
            cacheable(&get("/pricing?interval=yearly", Some("theme=dark"))),
            Some(("/pricing?interval=yearly", Visitor::SignedOut))
        );
        assert_eq!(
            cacheable(&get("/pricing", Some("a=1; billing_session=xyz"))),
            Some(("/pricing", Visitor::Session("xyz")))
        );
        // Signed in, only the pricing pages; two session cookies, none.
        assert_eq!(cacheable(&get("/", Some("billing_session=xyz"))), None);
        assert_eq!(
            cacheable(&get(
                "/pricing",
                Some("billing_session=xyz; billing_session=abc")
            )),
            None
        );
        // A cookie whose name merely contains ours is not a session.
        assert_eq!(
            cacheable(&get("/", Some("old_billing_session=1"))),
            Some(("/", Visitor::SignedOut))
        );
        assert_eq!(cacheable(&get("/pricing?plan=premium", None)), None);
        assert_eq!(cacheable(&get("/dashboard/billing", None)), None);
        let post = Request::builder()
            .method(Method::POST)
            .uri("/pricing")
            .body(Body::empty())
            .unwrap();
        assert_eq!(cacheable(&post), None);
    }

    /// A rendered page as the app answers it: the nonce in the CSP and the body.
    fn rendered(status: StatusCode, body: &str, extra: &[(header::HeaderName, &str)]) -> Response {
        let mut response = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .header(
                header::CONTENT_SECURITY_POLICY,
                "script-src 'nonce-n0nc3' 'strict-dynamic'",
            );
        for (name, value) in extra {
            response = response.header(name, *value);
        }
        response.body(Body::from(body.to_owned())).unwrap()
    }

    async fn body_of(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), MAX_PAGE_BYTES)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn security() -> SecurityHeaders {
        SecurityHeaders {
            hsts: false,
            form_action: vec![],
            connect: vec![],
        }
    }

    #[tokio::test]
    async fn a_kept_page_is_the_render_with_a_new_nonce_and_the_visitors_email() {
        let html = r#"<script nonce="n0nc3"></script><span>a&amp;b@example.com</span>"#;
        let (passed_on, kept) =
            template_of(rendered(StatusCode::OK, html, &[]), Some("a&b@example.com")).await;
        assert_eq!(
            body_of(passed_on).await,
            html,
            "the render goes out unchanged"
        );
        let kept = kept.expect("kept");
        assert!(!kept.template.contains("n0nc3") && !kept.template.contains("example.com"));

        let hit = answer(&kept, Some("c<d@example.com"), &security()).unwrap();
        assert_eq!(hit.headers()[CACHE_STATUS], "hit");
        let csp = hit.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        let nonce = nonce_of(&csp).unwrap().to_owned();
        assert_ne!(nonce, "n0nc3", "every answer gets a fresh nonce");
        assert_eq!(
            body_of(hit).await,
            format!(r#"<script nonce="{nonce}"></script><span>c&lt;d@example.com</span>"#),
            "the same bytes as a render for that visitor"
        );

        // Past its TTL a kept page answers nothing: the request renders.
        let stale = Kept {
            at: Instant::now() - TTL,
            ..kept
        };
        assert!(answer(&stale, Some("x@example.com"), &security()).is_none());
    }

    #[tokio::test]
    async fn only_plain_successful_pages_are_kept() {
        let page = r#"<script nonce="n0nc3"></script><p>ada@example.com</p>"#;
        let refusals: Vec<(&str, Response, Option<&str>)> = vec![
            ("a 404", rendered(StatusCode::NOT_FOUND, page, &[]), None),
            (
                "a response setting a cookie",
                rendered(StatusCode::OK, page, &[(header::SET_COOKIE, "a=b")]),
                None,
            ),
            (
                "an error shown on the page",
                rendered(StatusCode::OK, r#"<p class="form-error">x</p>"#, &[]),
                None,
            ),
            (
                "the email twice",
                rendered(StatusCode::OK, &format!("{page}{page}"), &[]),
                Some("ada@example.com"),
            ),
            (
                "the email absent",
                rendered(StatusCode::OK, page, &[]),
                Some("bob@example.com"),
            ),
            (
                "no nonce in the CSP",
                Response::builder()
                    .status(StatusCode::OK)
                    .body(Body::from(page))
                    .unwrap(),
                None,
            ),
        ];
        for (what, response, email) in refusals {
            let (passed_on, kept) = template_of(response, email).await;
            assert!(kept.is_none(), "{what} is not kept");
            assert!(
                !body_of(passed_on).await.is_empty(),
                "{what} still goes out"
            );
        }
    }
}
