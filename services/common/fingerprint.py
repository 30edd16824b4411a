"""What makes two protobuf requests "the same": a SHA-256 of their deterministic encoding.

Idempotency records (request_id replays, ledger event ids) compare these fingerprints, so every
service fingerprints the same way.
"""

from __future__ import annotations

import hashlib
from typing import Any

from google.protobuf.message import Message


def fingerprint(message: Message) -> str:
    """SHA-256 hex of the message's deterministic encoding."""
    return hashlib.sha256(message.SerializeToString(deterministic=True)).hexdigest()


def request_fingerprint(request: Any) -> str:
    """The fingerprint of a request without its request_id: the body a request_id stands for."""
    body = type(request)()
    body.CopyFrom(request)
    body.request_id = ""
    return fingerprint(body)
