"""The persons this gateway answered for in the last few minutes, so a settlement can name them.

A hospital reads the patient's credential (1101) at the counter and settles (2304, 2207) moments
later; the settlement's setlinfo repeats the person's name, ID number, sex, ethnicity and age,
which only identity holds. Keeping what identity just told this process saves that settlement an
identity call, about a fifth of a 2304's CPU (docs/performance.md, eighth round).

Kept in this process's memory only, for `GATEWAY_RECENT_PERSON_S` (300 s; 0 keeps none), at most
`GATEWAY_RECENT_PERSONS` entries. A correction made in identity reaches setlinfo once its entry
expires; no amount depends on these fields (settlement took the insurance at admission).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medsettle.identity.v1 import identity_pb2, identity_service_pb2

from gateway.upstreams import AS_GATEWAY, ask
from services.common.cache import CacheStats, LocalCache

if TYPE_CHECKING:
    from gateway.upstreams import IdentityStub


class RecentPersons:
    """identity's Person by psn_no, as identity last told this process within ttl_s."""

    def __init__(self, identity: IdentityStub, ttl_s: float, max_entries: int) -> None:
        self._identity = identity
        self._ttl_s = ttl_s
        self._recent: LocalCache[identity_pb2.Person] = LocalCache(max_entries)
        self.stats = CacheStats()

    def remember(self, person: identity_pb2.Person) -> None:
        """Keep a person identity has just returned."""
        if self._ttl_s > 0:
            self._recent.set_many({person.psn_no: person}, self._ttl_s)

    async def person(self, psn_no: str) -> identity_pb2.Person:
        """The person, from memory or else from identity (NOT_FOUND passes through)."""
        known = self._recent.get(psn_no)
        if known is not None:
            self.stats.hits += 1
            return known
        self.stats.misses += 1
        request = identity_service_pb2.GetPersonRequest(psn_no=psn_no)
        person = await ask(self._identity.GetPerson(request, metadata=AS_GATEWAY), "identity")
        self.remember(person)
        return person
