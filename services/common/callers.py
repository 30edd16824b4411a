"""Who is calling: read from the `x-medsettle-caller` metadata key.

Provincial platforms send "province:PP0000", the national platform "national", the gateway
"gateway". This stands in for the mTLS identity (the certificate's SAN) that production uses;
only this module changes when that arrives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from services.common.errors import PermissionDenied, Unauthenticated

CALLER_METADATA_KEY = "x-medsettle-caller"
_PROVINCE = re.compile(r"province:(\d{2})0000")


class CallerUnknown(Unauthenticated):
    """No caller identity on the call."""

    reason = "CALLER_UNKNOWN"


class AreaNotOwned(PermissionDenied):
    """A province tried to write data of another province."""

    reason = "AREA_NOT_OWNED"


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one RPC."""

    kind: str
    """"province", "national" or "gateway"."""
    province_prefix: str = ""
    """Two-digit province prefix for provincial callers."""

    @property
    def is_national(self) -> bool:
        """The national platform may write every area."""
        return self.kind == "national"

    def require_owns(self, admdvs: str, what: str) -> None:
        """Refuse unless this caller may write data of area `admdvs`."""
        if self.is_national:
            return
        if self.kind != "province" or not admdvs.startswith(self.province_prefix):
            raise AreaNotOwned(
                f"{what}: area {admdvs} is outside the caller's province",
                admdvs=admdvs,
                callerProvince=f"{self.province_prefix}0000",
            )


def caller_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> Caller:
    """The caller named in call metadata; refuses calls that name none."""
    for key, value in metadata or ():
        if key != CALLER_METADATA_KEY:
            continue
        text = value.decode() if isinstance(value, bytes) else value
        if text in ("national", "gateway"):
            return Caller(text)
        match = _PROVINCE.fullmatch(text)
        if match:
            return Caller("province", match.group(1))
        break
    raise CallerUnknown(
        f"the call must carry {CALLER_METADATA_KEY}: 'province:PP0000' or 'national'"
    )


def caller_metadata(caller: str) -> tuple[tuple[str, str], ...]:
    """Metadata a client sends to identify itself (e.g. 'province:510000')."""
    return ((CALLER_METADATA_KEY, caller),)
