"""policies.json: the bundle-format example loads; every problem names its entry and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.bundle import BundleInvalid
from services.settlement import wire
from services.settlement.bundle import read_policies

pytestmark = pytest.mark.unit
# The example of bundle-format.md, verbatim.
EXAMPLE = {
    "insuplc_admdvs": "131000",
    "insutype": "310",
    "year": 2026,
    "med_type": "21",
    "psn_type": "retired",
    "deductible": {"1": "300.00", "2": "600.00", "3": "1000.00"},
    "repeat_deductible_factor": "0.5",
    "tiers": [{"upto": "10000.00", "ratio": "0.85"}, {"upto": None, "ratio": "0.90"}],
    "annual_cap": "300000.00",
    "reduction": {"referral": "0.10", "emergency": "0.10", "other_temporary": "0.20"},
    "critical_illness": {
        "fund": "hifob_pay",
        "threshold": "15000.00",
        "tiers": [{"upto": "100000.00", "ratio": "0.60"}, {"upto": None, "ratio": "0.70"}],
        "annual_cap": "400000.00",
    },
    "assistance": {
        "identities": ["low_income", "extreme_poverty"],
        "ratio": "0.70",
        "annual_cap": "50000.00",
    },
}


def write(tmp_path: Path, entries: object) -> Path:
    path = tmp_path / "policies.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


def test_the_bundle_format_example_becomes_the_policy_it_describes(tmp_path: Path) -> None:
    (message,) = read_policies(write(tmp_path, [EXAMPLE]))
    policy = wire.policy_from_proto(message)
    assert wire.policy_key(message).policy_id == "131000-310-2026-21-retired"
    assert policy.deductible_fen == {1: 30_000, 2: 60_000, 3: 100_000}
    assert [(t.upto_fen, str(t.ratio)) for t in policy.tiers] == [
        (1_000_000, "0.85"),
        (None, "0.90"),
    ]
    assert policy.annual_cap_fen == 30_000_000
    assert policy.critical_illness is not None and policy.critical_illness.fund == "hifob_pay"
    assert policy.assistance is not None and policy.assistance.annual_cap_fen == 5_000_000
    assert str(policy.reduction["other_temporary"]) == "0.20"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"year": "2026"}, "entry 1: year: must be an integer"),
        ({"tiers": [{"upto": "10000.001", "ratio": "0.85"}]}, "tiers[0].upto: must be an amount"),
        ({"annual_cap": 300000}, "annual_cap: must be a string"),
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"med_type": "31"}, "med_type: must be one of 21, 11, 14"),
        (
            {"tiers": [{"upto": None, "ratio": "0.8"}, {"upto": None, "ratio": "0.9"}]},
            "only the last",
        ),
        ({"critical_illness": {"fund": "hifob_pay"}}, "critical_illness.threshold"),
    ],
)
def test_a_bad_entry_is_named_with_its_field_and_nothing_loads(
    tmp_path: Path, change: dict[str, object], expected: str
) -> None:
    with pytest.raises(BundleInvalid) as raised:
        read_policies(write(tmp_path, [{**EXAMPLE, **change}, EXAMPLE | {"psn_type": "employed"}]))
    assert len(raised.value.problems) == 1
    assert expected in str(raised.value.problems[0])
    assert str(raised.value.problems[0]).startswith("policies.json: entry 1")


def test_a_policy_listed_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleInvalid, match="entry 2: 131000-310-2026-21-retired repeats entry 1"):
        read_policies(write(tmp_path, [EXAMPLE, EXAMPLE]))


def test_a_file_that_is_not_a_json_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleInvalid, match="must be a JSON list"):
        read_policies(write(tmp_path, {"policies": []}))
