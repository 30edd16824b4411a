"""Domain errors and their wire form: google.rpc.Status with exactly one ErrorInfo (AIP-193).

Services raise subclasses of DomainError from their logic; one server interceptor turns them into
statuses. Each subclass fixes a gRPC code and an UPPER_SNAKE_CASE reason, listed in the service's
README. Dynamic values travel in `metadata` (lowerCamelCase keys) as well as in the message.
"""

from __future__ import annotations

from typing import ClassVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


class DomainError(Exception):
    """A refusal the caller can act on. Subclasses set `code` and `reason`."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.FAILED_PRECONDITION
    reason: ClassVar[str] = "FAILED_PRECONDITION"

    def __init__(self, message: str, **metadata: object) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = {key: str(value) for key, value in metadata.items()}

    def to_status(self, domain: str) -> status_pb2.Status:
        """The google.rpc.Status carrying this error, with one ErrorInfo."""
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=domain, metadata=self.metadata
        )
        detail = any_pb2.Any()
        detail.Pack(info)
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=[detail])


class InvalidArgument(DomainError):
    """The request itself is malformed; retrying it unchanged never helps."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"


class NotFound(DomainError):
    """The named thing does not exist (or the caller may not see it)."""

    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    """A conflicting record exists (e.g. a request id reused with a different body)."""

    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    """The system is not in a state that allows this operation."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    """The caller did not prove who it is."""

    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class Unavailable(DomainError):
    """A dependency is down; the same request may succeed later."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class ResourceExhausted(DomainError):
    """A limit was reached (size, count, rate)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


class UploadIncomplete(DomainError):
    """A client-streamed upload ended without its last message; nothing of it was written."""

    code = grpc.StatusCode.ABORTED
    reason = "UPLOAD_INCOMPLETE"


def error_info(error: grpc.aio.AioRpcError | grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo a failed call carried, or None when the peer sent a bare status."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


class UpstreamUnavailable(Unavailable):
    """Another service did not answer in time; the same request may succeed later."""

    reason = "UPSTREAM_UNAVAILABLE"


# Codes that say the upstream could not answer, as opposed to a refusal the caller can act on.
UNANSWERED_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


def passed_on(error: grpc.aio.AioRpcError, upstream: str) -> DomainError:
    """An upstream's failure as this service's own error.

    A refusal with an ErrorInfo (PERSON_NOT_FOUND, CARD_LOST...) keeps its code, reason and
    message, so the hospital learns the real cause. A call that was not answered becomes
    UNAVAILABLE / UPSTREAM_UNAVAILABLE naming the upstream, never its internals.
    """
    info = None
    if error.code() not in UNANSWERED_CODES:
        try:
            info = error_info(error)
        except ValueError:  # a status whose details contradict its code: not trusted
            info = None
    if info is None:
        return UpstreamUnavailable(
            f"{upstream} did not answer ({error.code().name}); the call can be retried",
            upstream=upstream,
        )
    relayed: type[DomainError] = type(
        info.reason.title().replace("_", ""),
        (DomainError,),
        {"code": error.code(), "reason": info.reason},
    )
    return relayed(error.details() or info.reason, **dict(info.metadata))
