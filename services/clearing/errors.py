"""Why the clearing service refuses a request (each reason is listed in the README)."""

from __future__ import annotations

from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound


class LedgerEventInvalid(InvalidArgument):
    """A ledger event is missing a field or its amounts do not add up."""

    reason = "LEDGER_EVENT_INVALID"


class LedgerEventConflict(AlreadyExists):
    """The event id was recorded before with other content."""

    reason = "LEDGER_EVENT_CONFLICT"


class ReconcileInvalid(InvalidArgument):
    """A reconciliation request is malformed (the message names the field)."""

    reason = "RECONCILE_INVALID"


class PeriodInvalid(InvalidArgument):
    """A period is not YYYY-MM, or a province code is malformed."""

    reason = "PERIOD_INVALID"


class PeriodClosed(FailedPrecondition):
    """The period is closed: nothing in it changes any more."""

    reason = "PERIOD_CLOSED"


class PeriodNotCleared(FailedPrecondition):
    """Statements are confirmed or disputed only in a cleared period."""

    reason = "PERIOD_NOT_CLEARED"


class TreatmentNotConfirmed(FailedPrecondition):
    """Some treatment province has not confirmed the month."""

    reason = "TREATMENT_NOT_CONFIRMED"


class StatementChanged(FailedPrecondition):
    """The statements changed since the hash the province reviewed."""

    reason = "STATEMENT_CHANGED"


class StatementNotFound(NotFound):
    """The province has no statement in the period."""

    reason = "STATEMENT_NOT_FOUND"


class SettlementNotInPeriod(NotFound):
    """The disputed settlement was not cleared in this period (or not for this province)."""

    reason = "SETTLEMENT_NOT_IN_PERIOD"


class DisputeExists(AlreadyExists):
    """The settlement is already under an open dispute."""

    reason = "DISPUTE_EXISTS"


class DisputeNotFound(NotFound):
    """No open dispute of this settlement (for this caller)."""

    reason = "DISPUTE_NOT_FOUND"


class PrepaymentNotFound(NotFound):
    """No prepayment for the pair and year (compute or set it first)."""

    reason = "PREPAYMENT_NOT_FOUND"


class TopUpConflict(AlreadyExists):
    """The top-up's request_id was used for another top-up."""

    reason = "TOP_UP_CONFLICT"
