//! Everything the webhook route does with untrusted bytes before touching the
//! database: the `Stripe-Signature` header, the signature check, the envelope and
//! the event object parsed with async-stripe's types. None of it may panic.
#![no_main]

use billing_starter::{
    gateway::objects::parse_event,
    webhooks::{inbox::Envelope, signature},
};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "whsec_fuzz";

fuzz_target!(|data: &[u8]| {
    // First byte picks how the rest is split into header and body.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = (split as usize).min(rest.len());
    let (header, body) = rest.split_at(at);
    let header = String::from_utf8_lossy(header);
    let _ = signature::verify(body, Some(&header), &[SECRET], 1_800_000_000);

    // A body signed correctly reaches the parsers, as it would in the route.
    let signed = signature::sign(body, SECRET, 1_800_000_000);
    assert!(signature::verify(body, Some(&signed), &[SECRET], 1_800_000_000).is_ok());
    let _ = Envelope::parse(body);
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = parse_event(text);
    }
});
