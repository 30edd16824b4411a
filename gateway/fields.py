"""Reading a transaction's `input` node by node; every refusal names the field's full path.

Lengths and number formats follow the national types (nhsa-interface.md: C = string of at most n
characters; N16,2 amounts; N16,4 quantities; N16,6 prices; D `yyyy-MM-dd`; DT
`yyyy-MM-dd HH:mm:ss`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Collection
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.envelope import EnvelopeError, fen_from_yuan

_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", re.ASCII)


class Node:
    """One JSON object of the input, with its path for messages (`input.feedetail[3]`)."""

    def __init__(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise EnvelopeError(f"{path} must be a JSON object")
        self._value = value
        self.path = path

    def _raw(self, name: str, required: bool) -> Any:
        value = self._value.get(name)
        if value is None or value == "":
            if required:
                raise EnvelopeError(f"{self.path}.{name} is required")
            return None
        return value

    def child(self, name: str) -> Node:
        """A nested object (`data`, `mdtrtinfo` ...)."""
        value = self._value.get(name)
        if value is None:
            raise EnvelopeError(f"{self.path}.{name} is required")
        return Node(value, f"{self.path}.{name}")

    def children(self, name: str, *, most: int, required: bool = True) -> list[Node]:
        """A list of objects, at most `most` of them; a single object counts as a list of one."""
        value = self._value.get(name)
        if value is None or value == []:
            if required:
                raise EnvelopeError(f"{self.path}.{name} is required")
            return []
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            raise EnvelopeError(f"{self.path}.{name} must be a list of objects")
        if len(value) > most:
            raise EnvelopeError(f"{self.path}.{name} has {len(value)} entries; at most {most}")
        return [Node(item, f"{self.path}.{name}[{index}]") for index, item in enumerate(value)]

    def text(self, name: str, limit: int, *, required: bool = True) -> str:
        """A string field (C<limit>); numbers sent for codes are accepted as their digits."""
        value = self._raw(name, required)
        if value is None:
            return ""
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise EnvelopeError(f"{self.path}.{name} must be a string")
        if len(value) > limit:
            raise EnvelopeError(f"{self.path}.{name} is longer than {limit} characters")
        return value

    def code(self, name: str, allowed: Collection[str], *, required: bool = True) -> str:
        """A code field whose value must be one of `allowed`."""
        value = self.text(name, 6, required=required)
        if value and value not in allowed:
            raise EnvelopeError(
                f"{self.path}.{name} is {value!r}; expected one of {', '.join(sorted(allowed))}"
            )
        return value

    def flag(self, name: str, *, required: bool = False) -> bool:
        """A 0/1 flag; absent means 0."""
        return self.code(name, ("0", "1"), required=required) == "1"

    def amount(self, name: str, *, required: bool = True) -> int | None:
        """A non-negative N16,2 amount in yuan, as fen (None when absent and optional)."""
        value = self._raw(name, required)
        if value is None:
            return None
        fen = fen_from_yuan(value, f"{self.path}.{name}")
        if fen < 0:
            raise EnvelopeError(f"{self.path}.{name} must not be negative")
        return fen

    def number(self, name: str, scale: int, *, required: bool = True) -> str:
        """An N16,<scale> number as its decimal text (quantities, prices)."""
        value = self._raw(name, required)
        if value is None:
            return ""
        path = f"{self.path}.{name}"
        if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
            raise EnvelopeError(f"{path} must be a number")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise EnvelopeError(f"{path} must be a number") from None
        if not number.is_finite() or number != number.quantize(Decimal(1).scaleb(-scale)):
            raise EnvelopeError(f"{path} has more than {scale} decimals")
        if abs(number) >= Decimal(10) ** (16 - scale):
            raise EnvelopeError(f"{path} is out of range (N16,{scale})")
        return format(number.normalize(), "f")

    def date(self, name: str, *, required: bool = True) -> dt.date | None:
        """A D field; a DT value is accepted and its date taken."""
        value = self.text(name, 19, required=required)
        if not value:
            return None
        if len(value) not in (10, 19):
            raise EnvelopeError(f"{self.path}.{name} must be yyyy-MM-dd")
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            raise EnvelopeError(f"{self.path}.{name} must be yyyy-MM-dd") from None

    def moment(self, name: str, *, required: bool = True) -> dt.datetime | None:
        """A DT field (`yyyy-MM-dd HH:mm:ss`, Beijing time), naive."""
        value = self.text(name, 19, required=required)
        if not value:
            return None
        # The shape first, since fromisoformat also takes other ISO forms; it is ~40 times
        # faster than strptime, which was a third of reading a fee line.
        if _MOMENT.fullmatch(value) is None:
            raise EnvelopeError(f"{self.path}.{name} must be yyyy-MM-dd HH:mm:ss")
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            raise EnvelopeError(f"{self.path}.{name} must be yyyy-MM-dd HH:mm:ss") from None

    def extension(self, name: str = "exp_content") -> dict[str, Any]:
        """The extension object, sent as a JSON object or as a JSON string (C4000)."""
        value = self._value.get(name)
        if value is None or value == "":
            return {}
        path = f"{self.path}.{name}"
        if isinstance(value, str):
            if len(value) > 4000:
                raise EnvelopeError(f"{path} is longer than 4000 characters")
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                raise EnvelopeError(
                    f"{path} must be a JSON object or a JSON string of one"
                ) from None
        if not isinstance(value, dict):
            raise EnvelopeError(f"{path} must be a JSON object or a JSON string of one")
        return value
