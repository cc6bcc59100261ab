//! Forms that post to a server function.
//!
//! Each form is a plain `<form method="post" action="/api/…">`: without JavaScript
//! the browser posts it and the server answers with a redirect or the page again.
//! Once hydrated, the island sends the same fields with `fetch` and stays on the
//! page: a button shows it is busy, a redirect the server asks for is followed,
//! and a refusal becomes a message beside the form.
//!
//! A post made without JavaScript (or before the island was live) that fails is
//! answered by a redirect back to the page with `__path` and `__err` in the URL;
//! the form shows that message too, on the server's render and once hydrated.
//!
//! This replaces Leptos' `ActionForm` and `ServerAction`: those decode the form into
//! each server function's typed arguments in the browser (serde_qs and the server
//! function client, once per function), which the browser never needed — the
//! server decodes the fields itself. One untyped sender keeps the wasm smaller
//! (see README, Performance) and speaks the same protocol.

use leptos::prelude::*;

/// The server's answer to a posted form, as the island uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server function succeeded; its JSON answer (`null` for `()`).
    Done(String),
    /// The server function failed; a message the user can read.
    Failed(String),
}

/// One form's (or one group of forms') state: pending while a post is on its
/// way, then the last outcome. `Copy`, like Leptos' own signals.
#[derive(Clone, Copy)]
pub struct Submission {
    pending: RwSignal<bool>,
    outcome: RwSignal<Option<Outcome>>,
}

impl Default for Submission {
    fn default() -> Self {
        Self::new()
    }
}

impl Submission {
    /// For the forms posting to `action`, showing the failure of an earlier
    /// plain post there that the server sent back in the URL.
    pub fn returned(action: &str) -> Self {
        let submission = Self::new();
        submission.show_returned(action);
        submission
    }

    /// Shows the failure of an earlier plain post to `action`, if the URL carries one.
    fn show_returned(&self, action: &str) {
        if let Some(message) = returned_failure(action) {
            self.outcome.set(Some(Outcome::Failed(message)));
        }
    }

    pub fn new() -> Self {
        let submission = Self {
            pending: RwSignal::new(false),
            outcome: RwSignal::new(None),
        };
        // A page left for a redirect and then restored by the back button (bfcache)
        // would otherwise keep its busy button.
        #[cfg(feature = "hydrate")]
        {
            let listener = window_event_listener(leptos::ev::pageshow, move |ev| {
                if ev.persisted() {
                    submission.pending.set(false);
                }
            });
            on_cleanup(move || listener.remove());
        }
        submission
    }

    /// Whether a post is on its way (or its redirect is being followed).
    pub fn pending(&self) -> bool {
        self.pending.get()
    }

    /// The last post's failure message, if it failed.
    pub fn error(&self) -> Option<String> {
        self.outcome.with(|o| match o {
            Some(Outcome::Failed(message)) => Some(message.clone()),
            _ => None,
        })
    }

    /// The last post's outcome.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome.get()
    }

    /// Starts a post unless one is already on its way (a double click sends once).
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn begin(&self) -> bool {
        if self.pending.get_untracked() {
            return false;
        }
        self.pending.set(true);
        true
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn finish(&self, outcome: Outcome) {
        self.outcome.set(Some(outcome));
        self.pending.set(false);
    }
}

/// A server function's address, for a form's `action`.
pub fn url_of<F: leptos::server_fn::ServerFn>() -> &'static str {
    F::PATH
}

/// A form posting to the server function at `action` (`url_of::<F>()`).
#[component]
pub fn PostForm(
    #[prop(into)] action: String,
    submission: Submission,
    #[prop(optional)] class: Option<&'static str>,
    children: Children,
) -> impl IntoView {
    submission.show_returned(&action);
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            use leptos::wasm_bindgen::JsCast;
            if let Some(form) = ev
                .target()
                .and_then(|t| t.dyn_into::<leptos::web_sys::HtmlFormElement>().ok())
            {
                post(form, submission);
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = &submission;
    };
    view! {
        <form method="post" action=action class=class on:submit=on_submit>
            {children()}
        </form>
    }
}

/// Sends `form`'s fields for `submission` and follows the answer, unless a post
/// is already on its way (a double click sends once); whether it was sent.
#[cfg(feature = "hydrate")]
pub fn post(form: leptos::web_sys::HtmlFormElement, submission: Submission) -> bool {
    if !submission.begin() {
        return false;
    }
    leptos::task::spawn_local(async move {
        match send(&form).await {
            // Stay pending while the browser leaves for the new page.
            Ok(Answer::Redirect(to)) => {
                if window().location().set_href(&to).is_err() {
                    submission.finish(Outcome::Failed(UNREACHABLE.to_owned()));
                }
            }
            Ok(Answer::Done(body)) => submission.finish(Outcome::Done(body)),
            Err(message) => submission.finish(Outcome::Failed(message)),
        }
    });
    true
}

/// The failure of an earlier post to `action` that the server sent back in the URL.
fn returned_failure(action: &str) -> Option<String> {
    #[cfg(feature = "ssr")]
    let (path, err) = {
        // Provided by the router from the request's query.
        let error = use_context::<leptos::server::ServerActionError>()?;
        (error.path().to_owned(), error.err().to_owned())
    };
    #[cfg(feature = "hydrate")]
    let (path, err) = {
        let search = window().location().search().ok()?;
        let query = web_sys::UrlSearchParams::new_with_str(&search).ok()?;
        (query.get("__path")?, query.get("__err")?)
    };
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    let (path, err) = (String::new(), String::new());
    (path == action).then(|| url_failure_message(&err))
}

/// The refusal a plain form post (any form of the page) was answered with,
/// carried back in the URL; for pages whose forms are not islands.
pub fn any_returned_failure() -> Option<String> {
    #[cfg(feature = "ssr")]
    {
        let error = use_context::<leptos::server::ServerActionError>()?;
        Some(url_failure_message(error.err()))
    }
    #[cfg(not(feature = "ssr"))]
    None
}

/// The message in a URL's `__err`: the server function's error, base64 (URL-safe).
pub fn url_failure_message(err: &str) -> String {
    use base64::{engine::general_purpose::URL_SAFE, Engine as _};
    URL_SAFE
        .decode(err)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map_or_else(|| GENERIC.to_owned(), |body| failure_message(&body))
}

/// Shown when the request never got an answer.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const UNREACHABLE: &str = "Could not reach the server. Check your connection and try again.";

/// Shown for failures whose text is not meant for users.
pub const GENERIC: &str = "Something went wrong; please try again.";

/// What the user reads for a failed server function. Leptos encodes a
/// `ServerFnError` as `Kind|message`; only `ServerError` carries our own
/// message (`request::FnError::user_message`), the other kinds are
/// plumbing (decoding, middleware) and get the generic text.
pub fn failure_message(body: &str) -> String {
    match body.split_once('|') {
        Some(("ServerError", message)) if !message.trim().is_empty() => message.to_owned(),
        _ => GENERIC.to_owned(),
    }
}

#[cfg(feature = "hydrate")]
enum Answer {
    Redirect(String),
    Done(String),
}

/// Posts `form`'s fields as `application/x-www-form-urlencoded` (what the server
/// function decodes), asking for JSON so that a redirect comes back as a header
/// to follow rather than a 302 that fetch would follow by itself.
#[cfg(feature = "hydrate")]
async fn send(form: &leptos::web_sys::HtmlFormElement) -> Result<Answer, String> {
    use leptos::wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{FormData, Headers, RequestInit, Response, UrlSearchParams};

    let unreachable = |_: JsValue| UNREACHABLE.to_owned();
    let data = FormData::new_with_form(form).map_err(|_| GENERIC.to_owned())?;
    let fields =
        UrlSearchParams::new_with_str_sequence_sequence(&data).map_err(|_| GENERIC.to_owned())?;
    let headers = Headers::new().map_err(|_| GENERIC.to_owned())?;
    headers
        .set("Accept", "application/json")
        .map_err(|_| GENERIC.to_owned())?;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&fields);
    let response: Response =
        JsFuture::from(window().fetch_with_str_and_init(&form.action(), &init))
            .await
            .map_err(unreachable)?
            .unchecked_into();
    let header = |name: &str| response.headers().get(name).ok().flatten();
    if header(REDIRECT_HEADER).is_some() {
        if let Some(to) = header("location") {
            return Ok(Answer::Redirect(to));
        }
    }
    let body = match response.text() {
        Ok(text) => JsFuture::from(text)
            .await
            .map_err(unreachable)?
            .as_string()
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    if response.ok() {
        Ok(Answer::Done(body))
    } else {
        Err(failure_message(&body))
    }
}

/// Set by `leptos_axum::redirect` when the caller asked for JSON.
#[cfg(feature = "hydrate")]
const REDIRECT_HEADER: &str = "serverfnredirect";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_messages_reach_the_user() {
        assert_eq!(
            failure_message("ServerError|Please sign in first."),
            "Please sign in first."
        );
        // A `|` inside the message is part of it.
        assert_eq!(failure_message("ServerError|a | b"), "a | b");
    }

    #[test]
    fn errors_sent_back_in_the_url_are_read() {
        use base64::{engine::general_purpose::URL_SAFE, Engine as _};
        let err = URL_SAFE.encode("ServerError|That email is already registered.");
        assert_eq!(
            url_failure_message(&err),
            "That email is already registered."
        );
        assert_eq!(url_failure_message("not base64!"), GENERIC);
    }

    #[test]
    fn plumbing_errors_get_the_generic_text() {
        for body in [
            "Deserialization|missing field `plan`",
            "MiddlewareError|boom",
            "ServerError|",
            "<html>Bad Gateway</html>",
            "",
        ] {
            assert_eq!(failure_message(body), GENERIC, "{body:?}");
        }
    }
}
