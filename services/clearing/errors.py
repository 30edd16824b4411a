"""Why the clearing service refuses a request (each reason is listed in the README)."""

from __future__ import annotations

from services.common.errors import AlreadyExists, InvalidArgument


class LedgerEventInvalid(InvalidArgument):
    """A ledger event is missing a field or its amounts do not add up."""

    reason = "LEDGER_EVENT_INVALID"


class LedgerEventConflict(AlreadyExists):
    """The event id was recorded before with other content."""

    reason = "LEDGER_EVENT_CONFLICT"


class ReconcileInvalid(InvalidArgument):
    """A reconciliation request is malformed (the message names the field)."""

    reason = "RECONCILE_INVALID"
