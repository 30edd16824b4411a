"""The small runtime every service shares: settings, storage, cache, errors, gRPC plumbing."""
