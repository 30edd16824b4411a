"""Demo and load-test data: a deterministic bundle of real areas and made-up people."""
