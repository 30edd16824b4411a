"""Page tokens and page sizes for List/Search RPCs (AIP-158): opaque tokens, bounded sizes."""

from __future__ import annotations

import base64
import binascii

from services.common.errors import InvalidArgument

_PREFIX = "v1:"


class PageTokenInvalid(InvalidArgument):
    """The page_token was not issued by this service."""

    reason = "PAGE_TOKEN_INVALID"


def encode_page_token(position: str) -> str:
    """An opaque token for the keyset position after which the next page starts."""
    return base64.urlsafe_b64encode(f"{_PREFIX}{position}".encode()).decode()


def decode_page_token(token: str) -> str:
    """The keyset position of a token ('' for the first page)."""
    if not token:
        return ""
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    if not text.startswith(_PREFIX) or len(text) == len(_PREFIX):
        raise PageTokenInvalid("page_token was not issued by this service")
    return text[len(_PREFIX) :]


def page_size(requested: int, default: int, cap: int) -> int:
    """0 means the default, larger values are capped, negative values are refused."""
    if requested < 0:
        raise InvalidArgument("page_size must not be negative")
    return min(requested or default, cap)
