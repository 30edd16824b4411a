"""The two-level cache: LRU bounds and expiry, Redis round trips, and Redis outages."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as redis_asyncio

from services.common.cache import Cache, LocalCache, make_redis
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.unit


def test_local_cache_evicts_least_recently_used_beyond_its_bound() -> None:
    cache: LocalCache[bytes] = LocalCache(max_entries=2)
    cache.set_many({"a": b"1", "b": b"2"}, ttl_s=60)
    assert cache.get_many(["a"]) == {"a": b"1"}  # "a" is now the most recently used
    cache.set_many({"c": b"3"}, ttl_s=60)
    assert cache.get_many(["a", "b", "c"]) == {"a": b"1", "c": b"3"}


def test_local_cache_forgets_expired_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    cache: LocalCache[bytes] = LocalCache()
    cache.set_many({"a": b"1"}, ttl_s=5)
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 6)
    assert cache.get_many(["a"]) == {}


async def test_cache_without_redis_serves_from_process_memory_and_counts() -> None:
    cache = Cache(None, prefix="t")
    assert await cache.get_many(["k1", "k2"]) == {}
    await cache.set_many({"k1": b"v1"}, ttl_s=60)
    assert await cache.get_many(["k1", "k2"]) == {"k1": b"v1"}
    assert (cache.stats.hits, cache.stats.misses) == (1, 3)
    assert cache.stats.hit_ratio == 0.25


async def test_cache_writes_through_to_redis_with_prefix_and_ttl(
    redis_client: redis_asyncio.Redis, redis_prefix: str
) -> None:
    writer, reader = make_redis(REDIS_URL), make_redis(REDIS_URL)
    cache = Cache(writer, prefix=redis_prefix)
    await cache.set_many({"item:1": b"one", "item:2": b"two"}, ttl_s=30)
    assert await redis_client.get(f"{redis_prefix}:item:1") == b"one"
    ttl_ms = await redis_client.pttl(f"{redis_prefix}:item:2")
    assert 25_000 < ttl_ms <= 30_000
    # A second process (an empty local level) finds the values in Redis.
    other = Cache(reader, prefix=redis_prefix)
    assert await other.get_many(["item:1", "item:2", "item:3"]) == {
        "item:1": b"one",
        "item:2": b"two",
    }
    assert (other.stats.hits, other.stats.misses) == (2, 1)
    await cache.delete(["item:1"])
    assert await redis_client.get(f"{redis_prefix}:item:1") is None
    for client in (writer, reader):
        assert client is not None
        await client.aclose()


async def test_cache_keeps_answering_when_redis_is_unreachable() -> None:
    # Nothing listens on port 1: every Redis call fails at once.
    client = make_redis("redis://127.0.0.1:1/0")
    cache = Cache(client, prefix="down", retry_after_s=60)
    await cache.set_many({"k": b"v"}, ttl_s=60)
    assert await cache.get_many(["k", "missing"]) == {"k": b"v"}
    assert cache.stats.redis_errors == 1  # after the first failure Redis is left alone
    assert client is not None
    await client.aclose()


async def test_add_once_sets_a_key_in_redis_only_if_it_is_missing(
    redis_client: redis_asyncio.Redis, redis_prefix: str
) -> None:
    client = make_redis(REDIS_URL)
    cache = Cache(client, prefix=redis_prefix)
    assert await cache.add_once("nonce:a", ttl_s=30) is True
    assert await cache.add_once("nonce:a", ttl_s=30) is False
    assert 25_000 < await redis_client.pttl(f"{redis_prefix}:nonce:a") <= 30_000
    await cache.delete(["nonce:a"])
    assert await cache.add_once("nonce:a", ttl_s=30) is True
    assert client is not None
    await client.aclose()


async def test_add_once_without_a_reachable_redis_leaves_the_decision_to_the_caller() -> None:
    assert await Cache(None, prefix="t").add_once("k", ttl_s=5) is None
    client = make_redis("redis://127.0.0.1:1/0")
    cache = Cache(client, prefix="down")
    assert await cache.add_once("k", ttl_s=5) is None
    assert cache.stats.redis_errors == 1
    assert client is not None
    await client.aclose()
