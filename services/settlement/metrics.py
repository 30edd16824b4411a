"""What settlement reports to Prometheus: settlements, the money by fund, the outbox backlog."""

from __future__ import annotations

from medsettle.settlement.v1 import settlement_pb2

from services.common.metrics import ProcessMetrics

_FUNDS = ("hifp_pay", "hifmi_pay", "hifob_pay", "maf_pay", "acct_pay")


class SettlementMetrics:
    """Counters of committed settlements and cancellations, and the outbox backlog gauge."""

    def __init__(self, metrics: ProcessMetrics) -> None:
        self._events = metrics.counter(
            "medsettle_settlements",
            "Settlements and cancellations committed, by medical type",
            ["event", "med_type"],
        )
        self._amounts = metrics.counter(
            "medsettle_settled_fen",
            "Money settled (or given back by cancellations) per fund, in fen",
            ["event", "fund"],
        )
        self.outbox_backlog = metrics.gauge(
            "medsettle_outbox_backlog", "Ledger events committed but not yet delivered to clearing"
        )

    def record(self, settlement: settlement_pb2.Settlement) -> None:
        """One committed settlement or cancellation (cancellations carry cancel_time)."""
        event = "cancelled" if settlement.HasField("cancel_time") else "settled"
        self._events.labels(event, settlement.med_type).inc()
        for fund in _FUNDS:
            self._amounts.labels(event, fund).inc(getattr(settlement, fund).amount_fen)
