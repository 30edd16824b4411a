"""Domain errors become google.rpc.Status values with exactly one ErrorInfo."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from services.common.errors import DomainError, NotFound, passed_on

pytestmark = pytest.mark.unit


class FilingRequired(NotFound):
    reason = "FILING_REQUIRED"


def test_domain_error_status_carries_code_message_and_one_error_info() -> None:
    error = FilingRequired("no effective filing for person P1 in 110000", psnNo="P1")
    status = error.to_status("filing.medsettle")
    assert status.code == code_pb2.NOT_FOUND
    assert status.message == "no effective filing for person P1 in 110000"
    assert len(status.details) == 1
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "FILING_REQUIRED"
    assert info.domain == "filing.medsettle"
    assert dict(info.metadata) == {"psnNo": "P1"}


def test_base_domain_error_is_a_failed_precondition() -> None:
    assert DomainError.code is grpc.StatusCode.FAILED_PRECONDITION
    assert DomainError("x").to_status("d").code == code_pb2.FAILED_PRECONDITION


def _failed_call(code: grpc.StatusCode, error: DomainError | None) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata()
    if error is not None:
        status = error.to_status("identity.medsettle")
        trailing.add("grpc-status-details-bin", status.SerializeToString())
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details=error.message)
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details="connect failed")


def test_an_upstream_refusal_passes_on_with_its_code_reason_and_message() -> None:
    call = _failed_call(grpc.StatusCode.NOT_FOUND, FilingRequired("no filing", psnNo="P1"))
    relayed = passed_on(call, "filing")
    assert (relayed.code, relayed.reason) == (grpc.StatusCode.NOT_FOUND, "FILING_REQUIRED")
    assert (relayed.message, relayed.metadata) == ("no filing", {"psnNo": "P1"})


def test_an_upstream_that_did_not_answer_becomes_upstream_unavailable() -> None:
    relayed = passed_on(_failed_call(grpc.StatusCode.UNAVAILABLE, None), "catalogue")
    assert (relayed.code, relayed.reason) == (grpc.StatusCode.UNAVAILABLE, "UPSTREAM_UNAVAILABLE")
    assert "catalogue did not answer (UNAVAILABLE)" in relayed.message
    internal = _failed_call(grpc.StatusCode.INTERNAL, FilingRequired("secret"))
    assert passed_on(internal, "filing").reason == "UPSTREAM_UNAVAILABLE"
