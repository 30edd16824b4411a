"""Settlement service: visits, fee lines, policies, settlements, annual accumulators, outbox."""
