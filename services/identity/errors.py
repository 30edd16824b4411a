"""Why the identity service refuses a request (each reason is listed in the README)."""

from __future__ import annotations

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, Unauthenticated


class InvalidIdNumber(InvalidArgument):
    """The ID number fails the GB 11643 format, birth date or check digit."""

    reason = "INVALID_ID_NUMBER"


class PersonNotFound(NotFound):
    """No person holds this credential."""

    reason = "PERSON_NOT_FOUND"


class CardSnRequired(InvalidArgument):
    """A card credential came without its card identification code."""

    reason = "CARD_SN_REQUIRED"


class CardSnMismatch(Unauthenticated):
    """The card identification code does not match the card."""

    reason = "CARD_SN_MISMATCH"


class CardLost(FailedPrecondition):
    """The card was reported lost (or replaced)."""

    reason = "CARD_LOST"


class CardFrozen(FailedPrecondition):
    """The card is frozen."""

    reason = "CARD_FROZEN"


class InsuranceSuspended(FailedPrecondition):
    """The person has no active insurance; at least one record is suspended."""

    reason = "INSURANCE_SUSPENDED"


class InsuranceTerminated(FailedPrecondition):
    """The person has no active insurance; every record is terminated."""

    reason = "INSURANCE_TERMINATED"


class VoucherInvalid(Unauthenticated):
    """The e-voucher token is malformed or its signature is not ours (forged)."""

    reason = "VOUCHER_INVALID"


class VoucherExpired(Unauthenticated):
    """The e-voucher token was genuine but has expired."""

    reason = "VOUCHER_EXPIRED"


class CredentialTypeInvalid(InvalidArgument):
    """The credential type is missing or unknown."""

    reason = "CREDENTIAL_TYPE_INVALID"


class CardNotFound(NotFound):
    """No card with this number."""

    reason = "CARD_NOT_FOUND"


class CardNotReplaceable(FailedPrecondition):
    """Only a lost or frozen card can be replaced, and the new number must be free."""

    reason = "CARD_NOT_REPLACEABLE"


class AreaNotFound(NotFound):
    """No area with this code."""

    reason = "AREA_NOT_FOUND"


class PersonRecordInvalid(InvalidArgument):
    """An uploaded person record breaks a rule (named in the message)."""

    reason = "PERSON_RECORD_INVALID"
