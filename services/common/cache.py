"""Cache-aside storage: Redis when configured, an in-process LRU otherwise or while Redis is down.

The cache only ever speeds calls up. A Redis error is logged, the process stops asking Redis for
`retry_after_s`, and reads fall back to the in-process copy and then to the loader (the database).
Values are bytes (serialised protobufs), every key gets a TTL, every key carries the prefix.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import redis.asyncio as redis_asyncio
from opentelemetry.trace import SpanKind, Tracer
from redis.exceptions import RedisError

_LOGGER = logging.getLogger(__name__)
V = TypeVar("V")


@dataclass
class CacheStats:
    """Counters an operator reads to see whether the cache is earning its keep."""

    hits: int = 0
    misses: int = 0
    redis_errors: int = 0

    @property
    def hit_ratio(self) -> float:
        """Hits over lookups; 0 before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class LocalCache(Generic[V]):
    """A bounded in-process LRU with per-entry expiry."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._max_entries = max_entries

    def get(self, key: str) -> V | None:
        """The live entry of key, or None."""
        return self.get_many((key,)).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, V]:
        """The live entries among keys."""
        now = time.monotonic()
        found: dict[str, V] = {}
        for key in keys:
            entry = self._entries.get(key)
            if entry is None:
                continue
            expires_at, value = entry
            if expires_at < now:
                del self._entries[key]
                continue
            self._entries.move_to_end(key)
            found[key] = value
        return found

    def set_many(self, items: Mapping[str, V], ttl_s: float) -> None:
        """Store items, evicting the least recently used beyond the bound."""
        expires_at = time.monotonic() + ttl_s
        for key, value in items.items():
            self._entries[key] = (expires_at, value)
            self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def delete(self, keys: Sequence[str]) -> None:
        """Forget keys."""
        for key in keys:
            self._entries.pop(key, None)


class Cache:
    """Two-level cache: in-process LRU in front of Redis (when a client is given).

    The local level holds entries for at most `local_ttl_s`, so other processes' writes become
    visible quickly; callers that need immediate visibility put a version in the key instead.
    """

    def __init__(
        self,
        redis_client: redis_asyncio.Redis | None,
        *,
        prefix: str,
        local_ttl_s: float = 5.0,
        local_max_entries: int = 100_000,
        retry_after_s: float = 5.0,
        tracer: Tracer | None = None,
    ) -> None:
        self._redis = redis_client
        self._tracer = tracer
        self._prefix = prefix
        self._local: LocalCache[bytes] = LocalCache(local_max_entries)
        self._local_ttl_s = local_ttl_s
        self._retry_after_s = retry_after_s
        self._redis_down_until = 0.0
        self.stats = CacheStats()

    @property
    def redis_client(self) -> redis_asyncio.Redis | None:
        """The configured Redis client (it may be down right now), or None."""
        return self._redis

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    def _redis_available(self) -> redis_asyncio.Redis | None:
        if self._redis is None or time.monotonic() < self._redis_down_until:
            return None
        return self._redis

    def _span(self, command: str) -> AbstractContextManager[Any]:
        """A CLIENT span around one Redis round trip (none without a tracer)."""
        if self._tracer is None:
            return nullcontext()
        return self._tracer.start_as_current_span(
            f"redis {command}", kind=SpanKind.CLIENT, attributes={"db.system": "redis"}
        )

    def _redis_failed(self, error: Exception) -> None:
        self.stats.redis_errors += 1
        self._redis_down_until = time.monotonic() + self._retry_after_s
        _LOGGER.warning("redis unavailable, using the in-process cache: %s", type(error).__name__)

    async def get_many(self, keys: Sequence[str], *, local: bool = True) -> dict[str, bytes]:
        """Values found for keys (missing keys are absent); counts hits and misses.

        With local=False the in-process level is skipped: for values that must be seen by every
        process as soon as they change (a catalogue's current version).
        """
        found = self._local.get_many(keys) if local else {}
        missing = [key for key in keys if key not in found]
        client = self._redis_available()
        if missing and client is not None:
            try:
                with self._span("MGET"):
                    values = await client.mget([self._key(key) for key in missing])
            except (RedisError, OSError) as error:
                self._redis_failed(error)
            else:
                # The client is built without decode_responses, so values are bytes.
                from_redis = {
                    key: cast(bytes, value)
                    for key, value in zip(missing, values, strict=True)
                    if value is not None
                }
                if local:
                    self._local.set_many(from_redis, self._local_ttl_s)
                found.update(from_redis)
        self.stats.hits += len(found)
        self.stats.misses += len(keys) - len(found)
        return found

    async def set_many(
        self, items: Mapping[str, bytes], ttl_s: float, *, local: bool = True
    ) -> None:
        """Store items in both levels with a TTL (one pipeline round trip to Redis)."""
        if not items:
            return
        if local:
            self._local.set_many(items, min(ttl_s, self._local_ttl_s))
        client = self._redis_available()
        if client is None:
            return
        try:
            pipeline = client.pipeline(transaction=False)
            for key, value in items.items():
                pipeline.set(self._key(key), value, px=int(ttl_s * 1000))
            with self._span("SET"):
                await pipeline.execute()
        except (RedisError, OSError) as error:
            self._redis_failed(error)

    async def delete(self, keys: Sequence[str]) -> None:
        """Forget keys in both levels."""
        self._local.delete(keys)
        client = self._redis_available()
        if client is None or not keys:
            return
        try:
            with self._span("DEL"):
                await client.delete(*(self._key(key) for key in keys))
        except (RedisError, OSError) as error:
            self._redis_failed(error)

    async def add_once(self, key: str, ttl_s: float) -> bool | None:
        """Set key in Redis unless it exists (SET NX, one round trip): True when this call set
        it, False when it was there. None when there is no Redis to ask (none configured, or
        down): the caller decides what to do instead. The in-process level is not used, since
        only a shared store can tell processes apart."""
        client = self._redis_available()
        if client is None:
            return None
        try:
            with self._span("SET"):
                created = await client.set(self._key(key), b"1", nx=True, px=int(ttl_s * 1000))
        except (RedisError, OSError) as error:
            self._redis_failed(error)
            return None
        return bool(created)


def make_redis(url: str, *, timeout_s: float = 0.2) -> redis_asyncio.Redis | None:
    """A Redis client with short timeouts (a slow cache is worse than none), or None for ''."""
    if not url:
        return None
    return redis_asyncio.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
    )
