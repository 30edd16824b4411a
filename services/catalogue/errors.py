"""Why the catalogue service refuses a request (each reason is listed in the README)."""

from __future__ import annotations

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound


class LineInvalid(InvalidArgument):
    """A fee line is malformed (the message names the line and the field)."""

    reason = "FEE_LINE_INVALID"


class LineAmountMismatch(InvalidArgument):
    """A line's amount differs from quantity × unit price by more than one fen."""

    reason = "LINE_AMOUNT_MISMATCH"


class InstitutionNotFound(NotFound):
    """No designated institution with this code."""

    reason = "INSTITUTION_NOT_FOUND"


class CatalogueNotLoaded(FailedPrecondition):
    """The treatment province has not uploaded a catalogue yet."""

    reason = "CATALOGUE_NOT_LOADED"


class CatalogueItemInvalid(InvalidArgument):
    """An uploaded catalogue item breaks a rule (the message names it)."""

    reason = "CATALOGUE_ITEM_INVALID"


class InstitutionInvalid(InvalidArgument):
    """An uploaded institution breaks a rule (the message names it)."""

    reason = "INSTITUTION_INVALID"


class ItemNotFound(NotFound):
    """No such item in the province's catalogue version."""

    reason = "ITEM_NOT_FOUND"


class VersionNotFound(NotFound):
    """The province has no such catalogue version."""

    reason = "VERSION_NOT_FOUND"
