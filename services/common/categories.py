"""Filing categories by name, as bundles, REST bodies and settlement reasons write them
("retired_relocated"): derived from medsettle.filing.v1.FilingCategory, so they cannot drift."""

from __future__ import annotations

from medsettle.filing.v1 import filing_pb2

_PREFIX = "FILING_CATEGORY_"


def category_name(value: filing_pb2.FilingCategory.ValueType) -> str:
    """FILING_CATEGORY_REFERRAL -> "referral" (and an unset category -> "unspecified")."""
    return filing_pb2.FilingCategory.Name(value).removeprefix(_PREFIX).lower()


# Every set category, in the enum's order.
FILING_CATEGORIES: dict[str, filing_pb2.FilingCategory.ValueType] = {
    category_name(value): value
    for value in filing_pb2.FilingCategory.values()
    if value != filing_pb2.FILING_CATEGORY_UNSPECIFIED
}
