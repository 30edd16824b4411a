"""Hospital transactions: each reads its `input`, calls the services over gRPC and builds the
national `output`. The registry (`registry.py`) maps infno to handler."""
