"""Clearing service: ledger, reconciliation, monthly clearing between provinces, prepayments."""
