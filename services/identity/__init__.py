"""Identity service: insured persons, insurance records, social security cards, e-vouchers."""
