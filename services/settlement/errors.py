"""Why the settlement service refuses a request (each reason is listed in the README)."""

from __future__ import annotations

from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)


class PolicyInvalid(InvalidArgument):
    """A policy's figures make no sense (the message names the field)."""

    reason = "POLICY_INVALID"


class PolicyNotFound(FailedPrecondition):
    """The insured place has no policy for this insurance type, year, medical type and person."""

    reason = "POLICY_NOT_FOUND"


class VisitInvalid(InvalidArgument):
    """A field of the admission is missing or malformed (the message names it)."""

    reason = "VISIT_INVALID"


class NotCrossProvince(FailedPrecondition):
    """The person is insured in the institution's own province: not a cross-province case."""

    reason = "NOT_CROSS_PROVINCE"


class InstitutionNotOpen(FailedPrecondition):
    """The institution is not open for cross-province settlement of this medical type."""

    reason = "INSTITUTION_NOT_OPEN"


class FilingRequired(FailedPrecondition):
    """No effective filing covers the visit and it is not an emergency."""

    reason = "FILING_REQUIRED"


class InsuranceTypeNotHeld(FailedPrecondition):
    """The person holds no active insurance of the requested type."""

    reason = "INSUTYPE_NOT_HELD"


class VisitExists(AlreadyExists):
    """The institution already has an open visit with this hospital visit number."""

    reason = "VISIT_EXISTS"


class VisitNotFound(NotFound):
    """No visit with this id at this institution."""

    reason = "VISIT_NOT_FOUND"


class VisitClosed(FailedPrecondition):
    """The visit was cancelled, or is not in a state that allows this call."""

    reason = "VISIT_CLOSED"


class FeeLineInvalid(InvalidArgument):
    """A fee line is malformed (the message names the line and field)."""

    reason = "FEE_LINE_INVALID"


class FeeLineConflict(AlreadyExists):
    """A live line with this feedetl_sn exists with other content; cancel it first."""

    reason = "FEE_LINE_CONFLICT"


class FeeLineNotFound(NotFound):
    """No live fee line with this feedetl_sn on the visit."""

    reason = "FEE_LINE_NOT_FOUND"


class VisitSettled(FailedPrecondition):
    """The visit has a live settlement; cancel it before changing fees or settling again."""

    reason = "VISIT_SETTLED"


class NoFees(FailedPrecondition):
    """The visit has no live fee lines to settle."""

    reason = "NO_FEES"


class TotalMismatch(FailedPrecondition):
    """The hospital's medfee_sumamt differs from the sum of the visit's live lines."""

    reason = "MEDFEE_SUMAMT_MISMATCH"


class SettlementNotFound(NotFound):
    """No settlement with this id for this visit and institution."""

    reason = "SETTLEMENT_NOT_FOUND"


class SettlementCancelled(FailedPrecondition):
    """The settlement was already cancelled (by another request)."""

    reason = "SETTLEMENT_ALREADY_CANCELLED"


class RequestIdConflict(AlreadyExists):
    """The request_id was used before with a different request."""

    reason = "REQUEST_ID_CONFLICT"


class CallerNotAllowed(PermissionDenied):
    """Hospital calls come through the gateway (or the national platform), not a province."""

    reason = "CALLER_NOT_ALLOWED"


class AccumulatorsNotFound(NotFound):
    """The person has no settlement in that year."""

    reason = "ACCUMULATORS_NOT_FOUND"


class VisitPersonMismatch(FailedPrecondition):
    """The request names another person than the visit's."""

    reason = "VISIT_PERSON_MISMATCH"
