"""Conversions between catalogue rows, protos and the rule engine's values."""

from __future__ import annotations

from decimal import Decimal

from medsettle.catalogue.v1 import catalogue_pb2

from services.catalogue.logic import Item, ItemClass
from services.catalogue.models import InstitutionRow
from services.catalogue.repository import StoredItem
from services.common.values import date_to_proto, money, optional_date


def institution_to_proto(row: InstitutionRow) -> catalogue_pb2.Institution:
    """The wire form of an institution row."""
    message = catalogue_pb2.Institution(
        fixmedins_code=row.fixmedins_code,
        fixmedins_name=row.fixmedins_name,
        admdvs=row.admdvs,
        level=row.level,
        open_inpatient=row.open_inpatient,
        open_outpatient=row.open_outpatient,
        open_chronic=row.open_chronic,
        begin_date=date_to_proto(row.begin_date),
    )
    if row.end_date is not None:
        message.end_date.CopyFrom(date_to_proto(row.end_date))
    return message


def stored_to_proto(prov_admdvs: str, item: StoredItem) -> catalogue_pb2.CatalogueItem:
    """The wire form of a stored item."""
    message = catalogue_pb2.CatalogueItem(
        prov_admdvs=prov_admdvs,
        list_type=item.list_type,
        med_list_codg=item.med_list_codg,
        name=item.name,
        item_class=item.item_class,  # type: ignore[arg-type]
        selfpay_prop=item.selfpay_prop,
        min_level=item.min_level,
        med_types=[code for code in item.med_types.split(";") if code],
        begin_date=date_to_proto(item.begin_date),
    )
    if item.price_cap_fen is not None:
        message.price_cap.CopyFrom(money(item.price_cap_fen))
    if item.end_date is not None:
        message.end_date.CopyFrom(date_to_proto(item.end_date))
    return message


def stored_from_proto(message: catalogue_pb2.CatalogueItem) -> StoredItem:
    """The stored form of an item message (dates must already be valid)."""
    begin = optional_date(message, "begin_date")
    if begin is None:
        raise ValueError("begin_date is required")
    return StoredItem(
        med_list_codg=message.med_list_codg,
        list_type=message.list_type,
        name=message.name,
        item_class=message.item_class,
        selfpay_prop=message.selfpay_prop or "0",
        price_cap_fen=message.price_cap.amount_fen if message.HasField("price_cap") else None,
        min_level=message.min_level,
        med_types=";".join(message.med_types),
        begin_date=begin,
        end_date=optional_date(message, "end_date"),
    )


def rule_item(item: StoredItem) -> Item:
    """The rule engine's view of a stored item."""
    return Item(
        code=item.med_list_codg,
        list_type=item.list_type,
        item_class=ItemClass(item.item_class),
        selfpay_prop=Decimal(item.selfpay_prop),
        price_cap_fen=item.price_cap_fen,
        min_level=item.min_level,
        med_types=tuple(code for code in item.med_types.split(";") if code),
        begin_date=item.begin_date,
        end_date=item.end_date,
    )
