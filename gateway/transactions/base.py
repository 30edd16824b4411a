"""What every transaction handler receives and returns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.envelope import Envelope, EnvelopeError
from gateway.fields import Node
from gateway.national import CREDENTIAL_TYPES
from gateway.persons import RecentPersons
from gateway.upstreams import Upstreams

# The national C50 for mdtrt_cert_no is too short for this platform's signed e-voucher tokens
# (119 characters), so the gateway accepts up to 200.
CREDENTIAL_NO_LIMIT = 200


@dataclass(frozen=True)
class Call:
    """One authenticated, signed-in hospital message being processed."""

    envelope: Envelope
    upstreams: Upstreams
    persons: RecentPersons
    received: dt.datetime

    @property
    def input(self) -> Node:
        """The envelope's `input` object."""
        return Node(self.envelope.input, "input")

    @property
    def fixmedins_code(self) -> str:
        """The authenticated institution."""
        return self.envelope.fixmedins_code

    @property
    def request_id(self) -> str:
        """Idempotency key for the services: unique per institution and msgid."""
        return f"{self.envelope.fixmedins_code}/{self.envelope.msgid}"


@dataclass(frozen=True)
class Outcome:
    """A transaction's output and the id it created or acted on (for 2601)."""

    output: dict[str, Any]
    reference: str = ""


Handler = Callable[[Call], Awaitable[Outcome]]


def credential(node: Node) -> tuple[int, str, str]:
    """(credential type, number, card_sn) from mdtrt_cert_type / mdtrt_cert_no / card_sn."""
    kind = node.code("mdtrt_cert_type", CREDENTIAL_TYPES)
    number = node.text("mdtrt_cert_no", CREDENTIAL_NO_LIMIT)
    card_sn = node.text("card_sn", 32, required=kind == "03")
    return CREDENTIAL_TYPES[kind], number, card_sn


def emergency(node: Node) -> bool:
    """er_flag = "1" in exp_content (规程 art.34): an emergency needs no filing."""
    flag = node.extension().get("er_flag", "0")
    if str(flag) not in ("0", "1", "2", "3"):
        raise EnvelopeError(f"{node.path}.exp_content.er_flag must be 0, 1, 2 or 3")
    return str(flag) == "1"
