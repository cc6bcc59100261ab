//! Rendered pages kept for a minute, as templates.
//!
//! Without a session every visitor gets the same HTML for the same URL (the
//! catalog and the Stripe mode are fixed for the life of the process) except the
//! per-response CSP nonce. So the first render of a public URL is kept as a
//! template with the nonce cut out, and later signed-out requests get that
//! template with a fresh nonce and the matching CSP header: no rendering, no
//! session or database work.
//!
//! A signed-in visitor's `/pricing`, `/dashboard/billing` and `/app` show,
//! besides that, their email (in the header) and a view computed from their
//! account's rows: for pricing, of what the account holds (`display::Holdings`:
//! its plan and interval, the packs it owns; the grid is a pure function of the
//! catalog and those); for the billing page and the workspace, the whole view
//! (plan, dates, meters, credits, purchases, invoices, seats). Every request
//! reads them fresh (the session's user, then the account's rows: the queries a
//! render makes), and a miss renders the page from exactly the view read
//! ([`KnownViewer`]), so a template kept under that view, with the email (and
//! the workspace's form key) cut out, is what a render would produce: never
//! stale, and what is saved is the render, not a read. (Keyed by the whole
//! pricing view before, each pricing answer built and cloned the view and
//! hashed and compared every string of it; the billing page and the workspace
//! have no smaller key that is exact.) A response that sets a cookie, is not a
//! 200, or shows an error is never kept, nor a page with a query string other
//! than pricing's interval: a return from Checkout, a paywall named in the URL.
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
    catalog::display::Holdings,
    request::{KnownViewer, Shown},
    security::SecurityHeaders,
    state::AppState,
    teams::Member,
    views::{build, AccountChoice, BillingView, WorkspaceView},
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

/// The pages kept for signed-in visitors, and the view each shows.
const SIGNED_IN_PAGES: [(&str, PageKind); 5] = [
    ("/pricing", PageKind::Pricing),
    ("/pricing?interval=monthly", PageKind::Pricing),
    ("/pricing?interval=yearly", PageKind::Pricing),
    ("/dashboard/billing", PageKind::Billing),
    ("/app", PageKind::Workspace),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum PageKind {
    Pricing,
    Billing,
    Workspace,
}

/// Distinct signed-in templates kept at most: pricing pages are one per plan
/// state, billing pages and workspaces about one per account (they list its own
/// invoices and usage), each some 10 KB; beyond it the expired ones are dropped,
/// and if none has expired, all of them.
const MAX_VIEWER_PAGES: usize = 256;

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
const FORM_KEY_SLOT: &str = "\u{0}form-key\u{0}";

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
    /// The workspace's idempotency key for its forms: fresh in every answer.
    FormKey,
}

/// What an answer fills a template's slots with.
#[derive(Clone, Copy, Debug, Default)]
struct Fill<'a> {
    nonce: &'a str,
    email: &'a str,
    form_key: &'a str,
}

impl Fill<'_> {
    fn value(&self, slot: Slot) -> &str {
        match slot {
            Slot::Nonce => self.nonce,
            Slot::Email => self.email,
            Slot::FormKey => self.form_key,
        }
    }
}

impl Template {
    /// Cuts `html` at every [`NONCE_SLOT`], [`EMAIL_SLOT`] and [`FORM_KEY_SLOT`].
    fn new(html: &str) -> Self {
        let mut pieces: Vec<(Box<str>, Option<Slot>)> = Vec::new();
        let mut rest = html;
        loop {
            let next = [
                (NONCE_SLOT, Slot::Nonce),
                (EMAIL_SLOT, Slot::Email),
                (FORM_KEY_SLOT, Slot::FormKey),
            ]
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

    /// The page with `fill`'s values (already escaped) in their slots.
    fn fill(&self, fill: &Fill<'_>) -> Vec<u8> {
        let longest = [fill.nonce, fill.email, fill.form_key]
            .iter()
            .map(|value| value.len())
            .max()
            .unwrap_or(0);
        let mut page = Vec::with_capacity(self.text_len + self.slots * longest);
        for (text, slot) in &self.pieces {
            page.extend_from_slice(text.as_bytes());
            if let Some(slot) = slot {
                page.extend_from_slice(fill.value(*slot).as_bytes());
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

/// A signed-in page differs by what it shows the viewer and by the header's
/// account switcher (the names of the viewer's organizations); the email (and
/// the workspace's form key) is filled in.
type ViewerKey = (&'static str, Content, Vec<AccountChoice>);

/// What a signed-in page shows besides the header: for pricing, what the
/// account holds (the view is a pure function of it); for the billing page and
/// the workspace, their whole view, read fresh for every request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Content {
    Pricing(Holdings),
    Billing(BillingView),
    /// Its `form_key` blank: every answer gets a fresh one.
    Workspace(WorkspaceView),
}

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

    fn viewer_hit(&self, key: &ViewerKey, email: &str, form_key: &str) -> Option<Response> {
        let pages = self.viewer_pages.read().unwrap_or_else(|p| p.into_inner());
        let viewer = Some((email, form_key));
        answer(pages.get(key)?, viewer, &self.state.security)
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

    /// Keeps a signed-in page rendered for `email` (with `form_key` in its
    /// forms) under `key` (its page and view).
    async fn keep_viewer(
        &self,
        key: ViewerKey,
        email: &str,
        form_key: &str,
        response: Response,
    ) -> Response {
        let (response, kept) = template_of(response, Some((email, form_key))).await;
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

    /// The signed-in visitor of this session; `None` when there is none (or it
    /// cannot be read), and the page renders as usual.
    async fn viewer(&self, session_id: &tower_sessions::session::Id) -> Option<Viewer> {
        let signed_in = crate::auth::session_store::user_of(&self.state.billing.reads, session_id)
            .await
            .inspect_err(|err| tracing::warn!(error = %err, "session lookup for the page cache"))
            .ok()??;
        let (member, accounts) = crate::teams::members::acting_with_choices(&signed_in)?;
        Some(Viewer { member, accounts })
    }

    /// What `page` shows `member`, read fresh, and the form key its answer
    /// carries; `None` when it cannot be read, and the page renders as usual.
    async fn content(&self, page: PageKind, member: &Member) -> Option<(Content, String)> {
        let billing = &self.state.billing;
        let read = match page {
            PageKind::Pricing => build::holdings(billing, member.account.id)
                .await
                .map(|holdings| (Content::Pricing(holdings), String::new())),
            PageKind::Billing => build::billing_page(billing, member, None)
                .await
                .map(|view| (Content::Billing(view), String::new())),
            PageKind::Workspace => {
                let key = crate::pages::gated::fresh_key();
                build::workspace(billing, member, None, String::new())
                    .await
                    .map(|view| (Content::Workspace(view), key))
            }
        };
        read.inspect_err(|err| tracing::warn!(error = %err, "page view for the page cache"))
            .ok()
    }
}

/// A signed-in visitor as the cache read them.
struct Viewer {
    member: Member,
    accounts: Vec<AccountChoice>,
}

/// Says that a response came from a kept template (`hit`); renders carry no
/// such header. Lets an operator (and the tests) tell a hit from a render.
pub const CACHE_STATUS: &str = "x-page-cache";

/// A kept page with a fresh nonce (and the visitor's email and form key)
/// filled in; `None` once it is older than the TTL.
fn answer(
    kept: &Kept,
    viewer: Option<(&str, &str)>,
    security: &SecurityHeaders,
) -> Option<Response> {
    if !kept.fresh() {
        return None;
    }
    let nonce = leptos::nonce::Nonce::new();
    let (email, form_key) = viewer.unwrap_or_default();
    let body = kept.template.fill(&Fill {
        nonce: &nonce,
        // Escaped exactly as the render escaped it where it was cut out.
        email: &html_escape::encode_text(email),
        // Hexadecimal: nothing to escape.
        form_key,
    });
    let csp = HeaderValue::from_str(&security.page_csp(&nonce)).ok()?;
    let mut response = Body::from(body).into_response();
    *response.headers_mut() = kept.headers.clone();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(CACHE_STATUS, HeaderValue::from_static("hit"));
    Some(response)
}

/// Reads `response` and, if it is a plain page, makes it a template: the nonce,
/// and the `email` and form key it was rendered for, cut out. A page showing the
/// email elsewhere than once is not kept.
async fn template_of(response: Response, viewer: Option<(&str, &str)>) -> (Response, Option<Kept>) {
    let email = viewer.map(|(email, _)| email);
    let form_key = viewer.map_or("", |(_, key)| key);
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
        .filter(|html| !shows_error(html))
        .and_then(|html| {
            let mut html = html.replace(&nonce, NONCE_SLOT);
            if !form_key.is_empty() {
                html = html.replace(form_key, FORM_KEY_SLOT);
            }
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

/// Whether the page shows an error: an element of class `form-error` with
/// anything in it. Forms render theirs empty (hydration markers only) until a
/// post fails, and such a page is kept.
fn shows_error(html: &str) -> bool {
    html.match_indices("form-error").any(|(at, _)| {
        let rest = &html[at..];
        let Some(open_end) = rest.find('>') else {
            return true;
        };
        let inside = &rest[open_end + 1..];
        let content = &inside[..inside.find("</").unwrap_or(inside.len())];
        !content.replace("<!>", "").trim().is_empty()
    })
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
    /// The session cookie's value: the session is looked up, not trusted; and
    /// what the page shows.
    Session(&'a str, PageKind),
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
    let session = match (sessions.next(), sessions.next()) {
        (None, _) => None,
        (Some(id), None) => Some(id),
        // Which one would the session layer take? Leave it to the render.
        (Some(_), Some(_)) => return None,
    };
    let uri = request.uri().path_and_query()?.as_str();
    match session {
        None => {
            let page = PUBLIC_PAGES.iter().copied().find(|page| *page == uri)?;
            Some((page, Visitor::SignedOut))
        }
        Some(id) => {
            let (page, kind) = SIGNED_IN_PAGES
                .iter()
                .copied()
                .find(|(page, _)| *page == uri)?;
            Some((page, Visitor::Session(id, kind)))
        }
    }
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
    let (session_id, kind) = match visitor {
        Visitor::SignedOut => {
            if let Some(mut response) = cache.hit(page) {
                mark_public(response.headers_mut());
                return response;
            }
            let response = next.run(request).await;
            return cache.keep(page, response).await;
        }
        Visitor::Session(id, kind) => (id.parse::<tower_sessions::session::Id>().ok(), kind),
    };
    // The session's user and the page's view, read from one snapshot (and
    // SQLite's locks taken once for all of them).
    let read = cache
        .state
        .billing
        .reads
        .in_one_snapshot(async {
            let viewer = cache.viewer(&session_id?).await?;
            let (content, form_key) = cache.content(kind, &viewer.member).await?;
            Some((viewer, content, form_key))
        })
        .await;
    let Some((viewer, content, form_key)) = read else {
        return next.run(request).await;
    };
    // One account shows no switcher: the page is the same for everyone.
    let switcher = match viewer.accounts.as_slice() {
        [_] | [] => Vec::new(),
        many => many.to_vec(),
    };
    let key = (page, content, switcher);
    if let Some(response) = cache.viewer_hit(&key, &viewer.member.user.email, &form_key) {
        return response;
    }
    // A miss: the page is rendered from exactly the view of the key.
    let email = viewer.member.user.email.clone();
    let shown = match &key.1 {
        Content::Pricing(holdings) => Shown::Pricing(cache.state.pricing_for(holdings)),
        Content::Billing(view) => Shown::Billing(view.clone()),
        Content::Workspace(view) => Shown::Workspace(WorkspaceView {
            form_key: form_key.clone(),
            ..view.clone()
        }),
    };
    request
        .extensions_mut()
        .insert(KnownViewer::new(viewer.member, shown, viewer.accounts));
    let response = next.run(request).await;
    cache.keep_viewer(key, &email, &form_key, response).await
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
    fn an_error_is_an_error_element_with_content() {
        for (html, shown) in [
            (r#"<p role="alert" class="form-error"><!></p>"#, false),
            (r#"<p class="form-error" role="alert"></p><p>ok</p>"#, false),
            (r#"<p class="form-error" role="alert"> <!><!> </p>"#, false),
            ("<main>no form</main>", false),
            (
                r#"<p class="form-error" role="alert">Too many requests</p>"#,
                true,
            ),
            (r#"<p class="form-error"><!>Sign in first<!></p>"#, true),
            (
                r#"<p class="form-error"></p><p class="form-error">x</p>"#,
                true,
            ),
            (r#"<p class="form-error""#, true),
        ] {
            assert_eq!(shows_error(html), shown, "{html}");
        }
    }

    #[test]
    fn a_template_fills_every_slot_in_order() {
        let cases = [
            "plain page, no slot",
            "\u{0}nonce\u{0}",
            "<script nonce=\"\u{0}nonce\u{0}\"></script><a>\u{0}email\u{0}</a><script nonce=\"\u{0}nonce\u{0}\"></script>",
            "\u{0}email\u{0}\u{0}nonce\u{0}end",
            "<input value=\"\u{0}form-key\u{0}-api\"><input value=\"\u{0}form-key\u{0}-projects\">\u{0}email\u{0}",
            "",
        ];
        for html in cases {
            let filled = Template::new(html).fill(&Fill {
                nonce: "N0NCE",
                email: "a&amp;b@example.com",
                form_key: "form_abc",
            });
            let expected = html
                .replace(NONCE_SLOT, "N0NCE")
                .replace(EMAIL_SLOT, "a&amp;b@example.com")
                .replace(FORM_KEY_SLOT, "form_abc");
            assert_eq!(String::from_utf8(filled).unwrap(), expected, "{html:?}");
        }
    }

    #[test]
    fn only_gets_of_public_pages_or_signed_in_pages_with_their_views_are_kept() {
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
            Some(("/pricing", Visitor::Session("xyz", PageKind::Pricing)))
        );
        assert_eq!(
            cacheable(&get("/dashboard/billing", Some("billing_session=xyz"))),
            Some((
                "/dashboard/billing",
                Visitor::Session("xyz", PageKind::Billing)
            ))
        );
        assert_eq!(
            cacheable(&get("/app", Some("billing_session=xyz"))),
            Some(("/app", Visitor::Session("xyz", PageKind::Workspace)))
        );
        // A return from Checkout (its toast) or a paywall named in the query
        // renders.
        assert_eq!(
            cacheable(&get(
                "/dashboard/billing?checkout_status=success&session_id=cs_1",
                Some("billing_session=xyz")
            )),
            None
        );
        assert_eq!(
            cacheable(&get("/app?limit=api_calls", Some("billing_session=xyz"))),
            None
        );
        assert_eq!(
            cacheable(&get("/dashboard/team", Some("billing_session=xyz"))),
            None
        );
        // Signed in, only those pages; two session cookies, none.
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
        let html = r#"<script nonce="n0nc3"></script><span>a&amp;b@example.com</span><input value="form_k1-api">"#;
        let (passed_on, kept) = template_of(
            rendered(StatusCode::OK, html, &[]),
            Some(("a&b@example.com", "form_k1")),
        )
        .await;
        assert_eq!(
            body_of(passed_on).await,
            html,
            "the render goes out unchanged"
        );
        let kept = kept.expect("kept");
        assert!(!kept.template.contains("n0nc3") && !kept.template.contains("example.com"));
        assert!(
            !kept.template.contains("form_k1"),
            "the form key is cut out"
        );

        let hit = answer(&kept, Some(("c<d@example.com", "form_k2")), &security()).unwrap();
        assert_eq!(hit.headers()[CACHE_STATUS], "hit");
        let csp = hit.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        let nonce = nonce_of(&csp).unwrap().to_owned();
        assert_ne!(nonce, "n0nc3", "every answer gets a fresh nonce");
        assert_eq!(
            body_of(hit).await,
            format!(
                r#"<script nonce="{nonce}"></script><span>c&lt;d@example.com</span><input value="form_k2-api">"#
            ),
            "the same bytes as a render for that visitor"
        );

        // Past its TTL a kept page answers nothing: the request renders.
        let stale = Kept {
            at: Instant::now() - TTL,
            ..kept
        };
        assert!(answer(&stale, Some(("x@example.com", "")), &security()).is_none());
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
            let (passed_on, kept) = template_of(response, email.map(|e| (e, ""))).await;
            assert!(kept.is_none(), "{what} is not kept");
            assert!(
                !body_of(passed_on).await.is_empty(),
                "{what} still goes out"
            );
        }
    }
}
