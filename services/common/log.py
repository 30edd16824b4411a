"""Logging: one JSON object per line on stdout, with the current trace and span ids.

Identity numbers and names must never reach a log line. Callers log person numbers, not
credentials; as a backstop the formatter masks anything shaped like an 18-character resident ID
number (`110105********1234`).
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime

import orjson
from opentelemetry import trace

from services.common.tracing import current_trace_id

_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")


def mask_id_numbers(text: str) -> str:
    """Keep the area prefix and the last four characters of every ID-number-like run."""
    return _ID_NUMBER.sub(r"\1********\2", text)


def mask_certno(certno: str) -> str:
    """Display form of one ID number: `110105********1234`; short values become `****`."""
    if len(certno) < 10:
        return "****"
    return certno[:6] + "*" * (len(certno) - 10) + certno[-4:]


class JsonFormatter(logging.Formatter):
    """Formats records as JSON with trace correlation and ID-number masking."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self._service_name = service_name

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self._service_name,
            "logger": record.name,
            "message": mask_id_numbers(record.getMessage()),
        }
        trace_id = current_trace_id()
        if trace_id:
            line["trace_id"] = trace_id
            line["span_id"] = format(trace.get_current_span().get_span_context().span_id, "016x")
        if record.exc_info:
            line["exception"] = mask_id_numbers(self.formatException(record.exc_info))
        return orjson.dumps(line).decode()


class MaskingFormatter(logging.Formatter):
    """Plain text for humans at a terminal, masked the same way."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_id_numbers(super().format(record))


def configure_logging(service_name: str, level: str = "INFO", *, json_lines: bool = True) -> None:
    """Route the root logger to stdout in the chosen format (called once, from __main__)."""
    handler = logging.StreamHandler(sys.stdout)
    if json_lines:
        handler.setFormatter(JsonFormatter(service_name))
    else:
        handler.setFormatter(
            MaskingFormatter(f"%(asctime)s {service_name} %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
