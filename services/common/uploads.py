"""Client-streamed uploads (persons, filings, catalogues): the end of an upload is explicit.

A gRPC server sees its request stream end in the same way whether the uploader half-closed it or
was cancelled halfway (say, at the first bad row of a file it is still reading). So the uploader
sets `last` on its final message, the service writes nothing unless it got that message, and the
uploader keeps its final message back until it knows the whole file is good.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, TypeVar

from services.common.errors import InvalidArgument, UploadIncomplete


class UploadMessage(Protocol):
    """One message of an upload stream."""

    last: bool


U = TypeVar("U", bound=UploadMessage)


async def complete_upload(messages: AsyncIterator[U]) -> AsyncIterator[U]:
    """The messages of an upload; raises UploadIncomplete when it ends before the last one.

    Raised from inside the caller's transaction, this rolls back everything already written.
    """
    finished = False
    async for message in messages:
        if finished:
            raise InvalidArgument("no message may follow the one marked last")
        finished = message.last
        yield message
    if not finished:
        raise UploadIncomplete("the upload ended before its message marked last; nothing is kept")
