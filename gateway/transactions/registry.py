"""infno -> handler for the transactions the services answer (9001, 9002 and 2601 are the
gateway's own, in `gateway.hospital`)."""

from __future__ import annotations

from gateway.transactions import fees, queries, reconciliation, settlements, visits
from gateway.transactions.base import Handler

SERVICE_TRANSACTIONS: dict[str, Handler] = {
    "1101": queries.person_info,
    "1201": queries.institutions,
    "1312": queries.catalogue_items,
    "5206": queries.accumulations,
    "2201": visits.register_outpatient,
    "2202": visits.cancel_visit,
    "2203": visits.upload_visit_info,
    "2203A": visits.upload_visit_info,
    "2204": fees.upload_fees,
    "2205": fees.cancel_outpatient_fees,
    "2206": settlements.pre_settle_outpatient,
    "2207": settlements.settle_outpatient,
    "2208": settlements.cancel_outpatient_settlement,
    "2401": visits.admit_inpatient,
    "2402": visits.discharge,
    "2404": visits.cancel_visit,
    "2405": visits.undo_discharge,
    "2301": fees.upload_fees,
    "2302": fees.cancel_inpatient_fees,
    "2303": settlements.pre_settle_inpatient,
    "2304": settlements.settle_inpatient,
    "2305": settlements.cancel_inpatient_settlement,
    "3201": reconciliation.reconcile_totals,
    "3202": reconciliation.reconcile_details,
}
# Known national transactions this platform does not offer yet, with what to do instead.
NOT_YET_AVAILABLE: dict[str, str] = {
    "3203": "clearing applications (3203) are not taken from institutions: the platform clears "
    "between provinces monthly",
}
# What a 2601 can undo, and how: a created visit is cancelled, a settlement is cancelled.
REVERSIBLE = {"2201": "visit", "2401": "visit", "2207": "settlement", "2304": "settlement"}
