"""policies.json of a bundle: parsing, checking, loading through SettlementService.UpsertPolicies.

Every entry is checked by the same rules the service applies (wire.policy_from_proto) before
anything is sent; the whole file goes in one call, so it loads whole or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medsettle.settlement.v1 import (
    settlement_pb2,
    settlement_service_pb2,
    settlement_service_pb2_grpc,
)

from services.common import bundle
from services.common.bundle import BundleInvalid, Problem
from services.common.callers import caller_metadata
from services.common.errors import InvalidArgument
from services.common.values import money
from services.settlement import wire

_KEYS = {
    "insuplc_admdvs",
    "insutype",
    "year",
    "med_type",
    "psn_type",
    "deductible",
    "repeat_deductible_factor",
    "tiers",
    "annual_cap",
    "reduction",
    "critical_illness",
    "assistance",
}
_CRITICAL_KEYS = {"fund", "threshold", "tiers", "annual_cap"}
_ASSISTANCE_KEYS = {"identities", "ratio", "annual_cap"}


class _EntryProblem(ValueError):
    """One field of one entry is wrong; the message starts with the field's path."""


def _object(value: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _EntryProblem(f"{where}: must be an object")
    unknown = sorted(set(value) - keys)
    if unknown:
        raise _EntryProblem(f"{where}: unknown key {unknown[0]!r}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _EntryProblem(f"{where}: must be a string")
    return value


def _amount(value: Any, where: str) -> int:
    try:
        return int(bundle.amount_fen(_text(value, where)))
    except ValueError as error:
        raise _EntryProblem(f"{where}: {error}") from None


def _tiers(value: Any, where: str) -> list[settlement_pb2.Tier]:
    if not isinstance(value, list):
        raise _EntryProblem(f"{where}: must be a list")
    tiers = []
    for index, item in enumerate(value):
        tier = _object(item, f"{where}[{index}]", {"upto", "ratio"})
        message = settlement_pb2.Tier(ratio=_text(tier.get("ratio"), f"{where}[{index}].ratio"))
        if tier.get("upto") is not None:
            message.upto.CopyFrom(money(_amount(tier["upto"], f"{where}[{index}].upto")))
        tiers.append(message)
    return tiers


def policy_from_json(entry: Any) -> settlement_pb2.Policy:
    """One policies.json entry as a Policy message (not yet checked by the service's rules)."""
    data = _object(entry, "entry", _KEYS)
    year = data.get("year")
    if not isinstance(year, int) or isinstance(year, bool):
        raise _EntryProblem("year: must be an integer")
    policy = settlement_pb2.Policy(
        insuplc_admdvs=_text(data.get("insuplc_admdvs"), "insuplc_admdvs"),
        insutype=_text(data.get("insutype"), "insutype"),
        year=year,
        med_type=_text(data.get("med_type"), "med_type"),
        psn_type=_text(data.get("psn_type", ""), "psn_type"),
        repeat_deductible_factor=_text(
            data.get("repeat_deductible_factor", "1"), "repeat_deductible_factor"
        ),
        tiers=_tiers(data.get("tiers"), "tiers"),
        annual_cap=money(_amount(data.get("annual_cap"), "annual_cap")),
    )
    for level, amount in _object(data.get("deductible", {}), "deductible", {"1", "2", "3"}).items():
        policy.deductibles.add(
            level=int(level), amount=money(_amount(amount, f"deductible.{level}"))
        )
    reduction = data.get("reduction", {})
    for category, points in _object(reduction, "reduction", set(reduction or {})).items():
        policy.reductions.add(category=category, points=_text(points, f"reduction.{category}"))
    if data.get("critical_illness") is not None:
        rule = _object(data["critical_illness"], "critical_illness", _CRITICAL_KEYS)
        policy.critical_illness.CopyFrom(
            settlement_pb2.CriticalIllness(
                fund=_text(rule.get("fund"), "critical_illness.fund"),
                threshold=money(_amount(rule.get("threshold"), "critical_illness.threshold")),
                tiers=_tiers(rule.get("tiers"), "critical_illness.tiers"),
                annual_cap=money(_amount(rule.get("annual_cap"), "critical_illness.annual_cap")),
            )
        )
    if data.get("assistance") is not None:
        rule = _object(data["assistance"], "assistance", _ASSISTANCE_KEYS)
        identities = rule.get("identities")
        if not isinstance(identities, list) or not all(isinstance(i, str) for i in identities):
            raise _EntryProblem("assistance.identities: must be a list of strings")
        policy.assistance.CopyFrom(
            settlement_pb2.Assistance(
                identities=identities,
                ratio=_text(rule.get("ratio"), "assistance.ratio"),
                annual_cap=money(_amount(rule.get("annual_cap"), "assistance.annual_cap")),
            )
        )
    return policy


def read_policies(path: Path) -> list[settlement_pb2.Policy]:
    """Every entry of policies.json, checked whole; problems name the entry and the field."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleInvalid([Problem(path.name, 0, "", f"not valid UTF-8 JSON: {error}")]) from None
    if not isinstance(entries, list):
        raise BundleInvalid([Problem(path.name, 0, "", "must be a JSON list of policies")])
    problems: list[Problem] = []
    policies: list[settlement_pb2.Policy] = []
    seen: dict[str, int] = {}
    for number, entry in enumerate(entries, start=1):
        label = f"entry {number}"
        try:
            policy = policy_from_json(entry)
            wire.policy_from_proto(policy)
        except _EntryProblem as problem:
            problems.append(Problem(path.name, 0, label, str(problem)))
            continue
        except InvalidArgument as refused:
            problems.append(Problem(path.name, 0, label, refused.message))
            continue
        policy_id = wire.policy_key(policy).policy_id
        if policy_id in seen:
            problems.append(
                Problem(path.name, 0, label, f"{policy_id} repeats entry {seen[policy_id]}")
            )
            continue
        seen[policy_id] = number
        policies.append(policy)
    if problems:
        raise BundleInvalid(problems)
    return policies


async def load_policies(
    stub: settlement_service_pb2_grpc.SettlementServiceAsyncStub,
    policies: list[settlement_pb2.Policy],
) -> settlement_service_pb2.UpsertPoliciesResponse:
    """All policies in one call (one transaction), as the national platform."""
    return await stub.UpsertPolicies(
        settlement_service_pb2.UpsertPoliciesRequest(policies=policies),
        metadata=caller_metadata("national"),
        timeout=60,
    )
