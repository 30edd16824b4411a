"""JSON at the hospital edge: amounts stay decimal both ways.

simplejson is used instead of the standard library because it reads numbers such as 12.30 as
Decimal (never a float) and writes Decimal values as JSON numbers exactly as given, so yuan always
leave with their two decimals (`12.30`, not `12.3`).
"""

from __future__ import annotations

from typing import Any

import simplejson

from gateway.envelope import EnvelopeError


def decode(body: bytes) -> Any:
    """The request body as Python values, numbers as Decimal or int; NaN and Infinity refused."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvelopeError("the request body must be UTF-8 JSON") from None
    try:
        return simplejson.loads(text, use_decimal=True, allow_nan=False)
    except (simplejson.JSONDecodeError, RecursionError, ValueError) as error:
        detail = getattr(error, "msg", "too deeply nested")
        raise EnvelopeError(f"the request body is not valid JSON: {detail}") from None


def encode(value: Any, *, canonical: bool = False) -> bytes:
    """UTF-8 JSON; `canonical` sorts keys so equal requests give equal bytes (fingerprints)."""
    text: str = simplejson.dumps(
        value,
        use_decimal=True,
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=canonical,
    )
    return text.encode("utf-8")
