"""Domain errors become google.rpc.Status values with exactly one ErrorInfo."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from services.common.errors import DomainError, NotFound

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
