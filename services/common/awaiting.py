"""Awaiting two calls side by side."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar, cast

A = TypeVar("A")
B = TypeVar("B")


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """The results of two awaitables run concurrently. Both always run to their end (neither is
    left running behind a failure); if either failed, the first one's failure is raised before
    the second's, so the caller chooses which refusal a client sees by the order."""
    results = await asyncio.gather(first, second, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(A, results[0]), cast(B, results[1])
