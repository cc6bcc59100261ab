"""Reads JSON lines {"payload", "header", "secret"} on stdin and prints, per line,
1 if stripe-python's official WebhookSignature.verify_header accepts the header
(tolerance 300 s, as the app uses) and 0 if it raises SignatureVerificationError.
Used by tests/webhooks.rs to check that the app reads Stripe-Signature exactly as
the official library does."""
import json
import sys

import stripe
from stripe import WebhookSignature

for line in sys.stdin:
    case = json.loads(line)
    try:
        WebhookSignature.verify_header(case["payload"], case["header"], case["secret"], tolerance=300)
        print(1)
    except stripe.SignatureVerificationError:
        print(0)
    sys.stdout.flush()
