"""Conversions between medsettle.settlement.v1 messages and the settlement domain (logic.py).

Shared by the servicer and the bundle reader, so a policy is checked the same way whether it
arrives over gRPC or from policies.json.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from medsettle.catalogue.v1 import catalogue_pb2, catalogue_service_pb2
from medsettle.clearing.v1 import ledger_pb2
from medsettle.settlement.v1 import settlement_pb2
from medsettle.type.v1 import money_pb2

from services.common.values import money, timestamp
from services.settlement import logic
from services.settlement.errors import PolicyInvalid

_CHRGITM_LV = {
    catalogue_pb2.ITEM_CLASS_A: "01",
    catalogue_pb2.ITEM_CLASS_B: "02",
    catalogue_pb2.ITEM_CLASS_C: "03",
}
_STEP_KINDS = {
    "deductible": settlement_pb2.STEP_KIND_DEDUCTIBLE,
    "tier": settlement_pb2.STEP_KIND_TIER,
    "annual_cap": settlement_pb2.STEP_KIND_ANNUAL_CAP,
    "critical_illness": settlement_pb2.STEP_KIND_CRITICAL_ILLNESS,
    "assistance": settlement_pb2.STEP_KIND_ASSISTANCE,
    "account": settlement_pb2.STEP_KIND_ACCOUNT,
}


def ratio_text(value: Decimal) -> str:
    """A ratio with four decimals, as the national interface prints them."""
    return str(value.quantize(logic.RATIO_PLACES))


# --- Policies ---------------------------------------------------------------------------------


def _ratio(text: str, where: str, default: Decimal | None = None) -> Decimal:
    if not text and default is not None:
        return default
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise logic.PolicyProblem(f"{where}: {text!r} is not a decimal") from None
    if not value.is_finite():
        raise logic.PolicyProblem(f"{where}: {text!r} is not a decimal")
    return value


def _tiers(tiers: list[settlement_pb2.Tier], where: str) -> tuple[logic.Tier, ...]:
    return tuple(
        logic.Tier(
            tier.upto.amount_fen if tier.HasField("upto") else None,
            _ratio(tier.ratio, f"{where}[{index}].ratio"),
        )
        for index, tier in enumerate(tiers)
    )


def policy_key(message: settlement_pb2.Policy) -> logic.PolicyKey:
    """What the policy applies to."""
    return logic.PolicyKey(
        message.insuplc_admdvs, message.insutype, message.year, message.med_type, message.psn_type
    )


def policy_from_proto(message: settlement_pb2.Policy) -> logic.Policy:
    """The domain policy; refuses (POLICY_INVALID, naming the field) what cannot be applied."""
    try:
        logic.check_key(policy_key(message))
        critical = None
        if message.HasField("critical_illness"):
            rule = message.critical_illness
            critical = logic.CriticalIllness(
                fund=rule.fund,
                threshold_fen=rule.threshold.amount_fen,
                tiers=_tiers(list(rule.tiers), "critical_illness.tiers"),
                annual_cap_fen=rule.annual_cap.amount_fen,
            )
        assistance = None
        if message.HasField("assistance"):
            assistance = logic.Assistance(
                identities=frozenset(message.assistance.identities),
                ratio=_ratio(message.assistance.ratio, "assistance.ratio"),
                annual_cap_fen=message.assistance.annual_cap.amount_fen,
            )
        levels = [d.level for d in message.deductibles]
        if len(set(levels)) != len(levels):
            raise logic.PolicyProblem("deductibles: a level is listed twice")
        if not message.HasField("annual_cap"):
            raise logic.PolicyProblem("annual_cap: is required")
        policy = logic.Policy(
            deductible_fen={d.level: d.amount.amount_fen for d in message.deductibles},
            repeat_deductible_factor=_ratio(
                message.repeat_deductible_factor, "repeat_deductible_factor", logic.ONE
            ),
            tiers=_tiers(list(message.tiers), "tiers"),
            annual_cap_fen=message.annual_cap.amount_fen,
            reduction={
                r.category: _ratio(r.points, f"reductions.{r.category}") for r in message.reductions
            },
            critical_illness=critical,
            assistance=assistance,
        )
        logic.check_policy(policy)
    except logic.PolicyProblem as problem:
        key = policy_key(message)
        raise PolicyInvalid(f"policy {key.policy_id}: {problem}", policyId=key.policy_id) from None
    return policy


def policy_body(message: settlement_pb2.Policy) -> bytes:
    """The stored form: the policy without the fields the service assigns."""
    body = settlement_pb2.Policy()
    body.CopyFrom(message)
    body.ClearField("policy_id")
    body.ClearField("version")
    body.ClearField("upload_time")
    return body.SerializeToString(deterministic=True)


# --- Fee lines --------------------------------------------------------------------------------


def catalogue_line(line: settlement_pb2.FeeLine) -> catalogue_service_pb2.FeeLine:
    """A hospital fee line as the catalogue classifies it."""
    return catalogue_service_pb2.FeeLine(
        feedetl_sn=line.feedetl_sn,
        med_list_codg=line.med_list_codg,
        medins_list_codg=line.medins_list_codg,
        cnt=line.cnt,
        pric=line.pric,
        amount=line.amount,
        fee_date=line.fee_date,
    )


def classified_fee(
    line: catalogue_service_pb2.ClassifiedLine, version: int
) -> settlement_pb2.ClassifiedFee:
    """The catalogue's answer for one line, as settlement stores and returns it."""
    fee = settlement_pb2.ClassifiedFee(
        feedetl_sn=line.feedetl_sn,
        med_list_codg=line.med_list_codg,
        amount=line.amount,
        fulamt_ownpay_amt=line.fulamt_ownpay_amt,
        overlmt_amt=line.overlmt_amt,
        preselfpay_amt=line.preselfpay_amt,
        inscp_scp_amt=line.inscp_scp_amt,
        chrgitm_lv=_CHRGITM_LV.get(line.item_class, ""),
        selfpay_prop=line.selfpay_prop,
        memo=line.memo,
        list_type=line.list_type,
        catalogue_version=version,
    )
    if line.HasField("price_cap"):
        fee.price_cap.CopyFrom(line.price_cap)
    return fee


def line_sums(fees: list[settlement_pb2.ClassifiedFee]) -> logic.LineSums:
    """The per-settlement sums of step 1."""
    return logic.LineSums(
        medfee_sumamt=sum(f.amount.amount_fen for f in fees),
        fulamt_ownpay_amt=sum(f.fulamt_ownpay_amt.amount_fen for f in fees),
        overlmt_selfpay=sum(f.overlmt_amt.amount_fen for f in fees),
        preselfpay_amt=sum(f.preselfpay_amt.amount_fen for f in fees),
        inscp_scp_amt=sum(f.inscp_scp_amt.amount_fen for f in fees),
    )


# --- Settlements ------------------------------------------------------------------------------


def settlement_to_proto(
    result: logic.Result, visit: settlement_pb2.Visit, when: dt.datetime
) -> settlement_pb2.Settlement:
    """The national settlement output of a result (setl_id and the policy are set by the caller)."""
    sums = result.sums
    return settlement_pb2.Settlement(
        mdtrt_id=visit.mdtrt_id,
        psn_no=visit.psn_no,
        fixmedins_code=visit.fixmedins_code,
        insuplc_admdvs=visit.insuplc_admdvs,
        treatment_admdvs=visit.treatment_admdvs,
        insutype=visit.insutype,
        psn_type=visit.psn_type,
        med_type=visit.med_type,
        setl_time=timestamp(when),
        medfee_sumamt=money(sums.medfee_sumamt),
        fulamt_ownpay_amt=money(sums.fulamt_ownpay_amt),
        overlmt_selfpay=money(sums.overlmt_selfpay),
        preselfpay_amt=money(sums.preselfpay_amt),
        inscp_scp_amt=money(sums.inscp_scp_amt),
        act_pay_dedc=money(result.act_pay_dedc),
        hifp_pay=money(result.hifp_pay),
        pool_prop_selfpay=ratio_text(result.pool_prop_selfpay),
        hifmi_pay=money(result.hifmi_pay),
        hifob_pay=money(result.hifob_pay),
        maf_pay=money(result.maf_pay),
        fund_pay_sumamt=money(result.fund_pay_sumamt),
        psn_part_amt=money(result.psn_part_amt),
        acct_pay=money(result.acct_pay),
        psn_cash_pay=money(result.psn_cash_pay),
        balc=money(result.balc),
        fund_payments=[
            settlement_pb2.FundPayment(
                fund_pay_type=share.fund_pay_type,
                fund_pay_type_name=share.name,
                fund_payamt=money(share.amount_fen),
                inscp_scp_amt=money(share.inscp_fen),
            )
            for share in logic.fund_shares(result, visit.insutype)
        ],
    )


def steps_to_proto(steps: list[logic.Step]) -> list[settlement_pb2.Step]:
    """The explanation's steps."""
    return [
        settlement_pb2.Step(
            kind=_STEP_KINDS[step.kind],
            base=money(step.base_fen),
            ratio="" if step.ratio is None else ratio_text(step.ratio),
            amount=money(step.amount_fen),
            description=step.description,
        )
        for step in steps
    ]


def ledger_event(
    settlement: settlement_pb2.Settlement, kind: int, when: dt.datetime
) -> ledger_pb2.LedgerEvent:
    """The ledger event of a settlement (kind SETTLED) or its cancellation (amounts negated)."""
    sign = -1 if kind == ledger_pb2.LEDGER_EVENT_KIND_CANCELLED else 1
    suffix = "C" if sign < 0 else "S"

    def signed(amount: money_pb2.Money) -> money_pb2.Money:
        return money(sign * amount.amount_fen)

    critical = settlement.hifmi_pay.amount_fen + settlement.hifob_pay.amount_fen
    return ledger_pb2.LedgerEvent(
        event_id=f"{settlement.setl_id}{suffix}",
        kind=kind,  # type: ignore[arg-type]
        setl_id=settlement.setl_id,
        mdtrt_id=settlement.mdtrt_id,
        fixmedins_code=settlement.fixmedins_code,
        treatment_admdvs=settlement.treatment_admdvs,
        insuplc_admdvs=settlement.insuplc_admdvs,
        insutype=settlement.insutype,
        med_type=settlement.med_type,
        event_time=timestamp(when),
        medfee_sumamt=signed(settlement.medfee_sumamt),
        hifp_pay=signed(settlement.hifp_pay),
        critical_illness_pay=money(sign * critical),
        maf_pay=signed(settlement.maf_pay),
        acct_pay=signed(settlement.acct_pay),
        fund_pay_sumamt=signed(settlement.fund_pay_sumamt),
        psn_cash_pay=signed(settlement.psn_cash_pay),
        psn_no=settlement.psn_no,
    )
