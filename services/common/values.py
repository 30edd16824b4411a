"""Conversions between the shared proto value types (medsettle.type.v1) and Python values."""

from __future__ import annotations

import datetime as dt

from google.protobuf import timestamp_pb2
from medsettle.type.v1 import date_pb2, money_pb2

from services.common.errors import InvalidArgument

SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


class InvalidDate(InvalidArgument):
    """A date field is not a real calendar date."""

    reason = "INVALID_DATE"


def date_to_proto(value: dt.date) -> date_pb2.Date:
    """A Python date as medsettle.type.v1.Date."""
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def date_from_proto(value: date_pb2.Date, field: str) -> dt.date:
    """A medsettle.type.v1.Date as a Python date; refuses impossible dates, naming the field."""
    try:
        return dt.date(value.year, value.month, value.day)
    except ValueError:
        raise InvalidDate(
            f"{field} is not a valid date: {value.year:04d}-{value.month:02d}-{value.day:02d}",
            field=field,
        ) from None


def optional_date(message: object, field: str) -> dt.date | None:
    """The date in `message.<field>` when the field is set, else None."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    return date_from_proto(getattr(message, field), field)


def money(fen: int) -> money_pb2.Money:
    """An amount in fen as medsettle.type.v1.Money."""
    return money_pb2.Money(amount_fen=fen)


def timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    """An aware datetime as google.protobuf.Timestamp."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(dt.UTC))
    return stamp


def stored_utc(value: dt.datetime) -> dt.datetime:
    """A datetime read back from a timezone-aware column: SQLite returns it naive, in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def today_in_china() -> dt.date:
    """Today's date in Asia/Shanghai, the calendar every rule is written in."""
    return dt.datetime.now(SHANGHAI).date()


def province_of(admdvs: str) -> str:
    """The province code of an area: its first two digits followed by 0000."""
    return admdvs[:2] + "0000"


def yuan_text(fen: int) -> str:
    """Fen as yuan text with two decimals ("-12.30"), for messages and exports."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"
