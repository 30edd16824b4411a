"""Finding a hospital message and its trace (`medsettle trace`): an SRE handed the inf_refmsgid
of an answer, or the msgid of a request, gets the trace id to open in the tracing backend."""

from __future__ import annotations

from typing import Any

from gateway.models import DONE, PENDING, REVERSED
from gateway.repository import GatewayRepository
from services.common.db import make_engine, make_session_factory

_STATES = {PENDING: "PENDING", DONE: "DONE", REVERSED: "REVERSED"}


async def find_message_trace(reference: str, database_url: str) -> dict[str, Any] | None:
    """What the gateway keeps of the message answered as `reference` (an inf_refmsgid), or sent
    as `reference` (a msgid): None when it holds neither. Refusals that decided nothing are not
    kept; their trace id is in the x-trace-id header and the gateway's log line."""
    engine = make_engine(database_url)
    try:
        async with make_session_factory(engine)() as session:
            row = await GatewayRepository(session).find_message(reference)
    finally:
        await engine.dispose()
    if row is None:
        return None
    return {
        "fixmedins_code": row.fixmedins_code,
        "msgid": row.msgid,
        "infno": row.infno,
        "state": _STATES[row.state],
        "inf_refmsgid": row.inf_refmsgid,
        "trace_id": row.trace_id,
        "reference": row.reference,
        "reversed_by": row.reversed_by,
        "received_at": row.created_at.isoformat(),
    }
