"""Why the filing service refuses a request (each reason is listed in the README)."""

from __future__ import annotations

from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound


class FilingInvalid(InvalidArgument):
    """A field of the filing is missing or malformed (the message names it)."""

    reason = "FILING_INVALID"


class NotCrossProvince(InvalidArgument):
    """The destination lies in the person's own insured province."""

    reason = "NOT_CROSS_PROVINCE"


class TemporaryFilingTooShort(InvalidArgument):
    """A temporary filing must be valid for at least six months."""

    reason = "TEMPORARY_FILING_TOO_SHORT"


class LongTermEndDate(InvalidArgument):
    """Long-term filings are open-ended; an end date is not accepted."""

    reason = "LONG_TERM_FILING_OPEN_ENDED"


class FilingLocked(FailedPrecondition):
    """A long-term filing cannot be changed or revoked within its lock period."""

    reason = "FILING_LOCKED"


class FilingNotActive(FailedPrecondition):
    """Only an active filing can be revoked."""

    reason = "FILING_NOT_ACTIVE"


class FilingNotFound(NotFound):
    """No filing with this id (or not visible to the caller)."""

    reason = "FILING_NOT_FOUND"


class FilingRequired(NotFound):
    """No effective filing covers this person, area and date."""

    reason = "FILING_REQUIRED"


class RequestIdConflict(AlreadyExists):
    """The request_id was used before with a different request."""

    reason = "REQUEST_ID_CONFLICT"
