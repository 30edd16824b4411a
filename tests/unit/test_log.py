"""Log lines are JSON with trace ids and never show a whole ID number."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from services.common.log import JsonFormatter, mask_certno, mask_id_numbers

pytestmark = pytest.mark.unit


def test_mask_id_numbers_keeps_area_and_last_four() -> None:
    text = "verify 11010519491231002X and 440301199001011234 for card 12345"
    assert mask_id_numbers(text) == (
        "verify 110105********002X and 440301********1234 for card 12345"
    )


def test_mask_id_numbers_leaves_longer_digit_runs_alone() -> None:
    # A 30-character msgid is not an ID number.
    msgid = "H51010400012202611241200000001"
    assert mask_id_numbers(msgid) == msgid


def test_mask_certno_display_form() -> None:
    assert mask_certno("11010519491231002X") == "110105********002X"
    assert mask_certno("123") == "****"


def test_json_formatter_adds_trace_ids_and_masks(tracer_provider: TracerProvider) -> None:
    formatter = JsonFormatter("identity")
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "person %s", ("11010519491231002X",), None
    )
    with tracer_provider.get_tracer("t").start_as_current_span("s") as span:
        line = json.loads(formatter.format(record))
        context = span.get_span_context()
    assert line["message"] == "person 110105********002X"
    assert line["service"] == "identity"
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
