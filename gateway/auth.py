"""Institution authentication: credentials and the x-tif request signature.

The scheme is Guangdong's platform gateway's (nhsa-interface.md §1.1): each request carries
`x-tif-paasid`, `x-tif-timestamp` (unix seconds), `x-tif-nonce` and `x-tif-signature` =
hex(SHA-256(timestamp + secret + nonce + timestamp)). Pure: no HTTP, no database.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.envelope import EnvelopeError

HEADERS = ("x-tif-paasid", "x-tif-timestamp", "x-tif-nonce", "x-tif-signature")
_NONCE = re.compile(r"[0-9A-Za-z_-]{8,64}")


@dataclass(frozen=True)
class SignedHeaders:
    """The four x-tif headers of one request, checked for form."""

    paasid: str
    timestamp: int
    nonce: str
    signature: str


def new_credentials(fixmedins_code: str) -> tuple[str, str]:
    """A fresh (paasid, secret) for an institution."""
    return f"{fixmedins_code}-{secrets.token_hex(4)}", secrets.token_urlsafe(32)


def signature(timestamp: str, secret: str, nonce: str) -> str:
    """x-tif-signature for these values."""
    return hashlib.sha256(f"{timestamp}{secret}{nonce}{timestamp}".encode()).hexdigest()


def signed_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """The x-tif headers; each missing or malformed one is named."""
    for name in HEADERS:
        if not headers.get(name):
            raise EnvelopeError(f"header {name} is required")
    timestamp = headers["x-tif-timestamp"]
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise EnvelopeError("header x-tif-timestamp must be unix seconds")
    nonce = headers["x-tif-nonce"]
    if not _NONCE.fullmatch(nonce):
        raise EnvelopeError("header x-tif-nonce must be 8 to 64 letters, digits, '-' or '_'")
    paasid = headers["x-tif-paasid"]
    if len(paasid) > 40:
        raise EnvelopeError("header x-tif-paasid is longer than 40 characters")
    return SignedHeaders(paasid, int(timestamp), nonce, headers["x-tif-signature"].lower())


def check_signature(signed: SignedHeaders, secret: str, now_s: float, window_s: int) -> None:
    """Refuse a wrong signature or a timestamp outside now ± window."""
    expected = signature(str(signed.timestamp), secret, signed.nonce)
    if not hmac.compare_digest(expected, signed.signature):
        raise EnvelopeError(
            "x-tif-signature does not match: check the secret and the signed values"
        )
    if abs(now_s - signed.timestamp) > window_s:
        raise EnvelopeError(
            f"x-tif-timestamp is more than {window_s} s from the platform's clock; "
            "check the HIS clock"
        )
