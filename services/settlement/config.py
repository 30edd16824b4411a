"""Settings of the settlement service (environment variables prefixed `SETTLEMENT_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings


class SettlementSettings(ServiceSettings):
    """Settlement service settings."""

    model_config = SettingsConfigDict(env_prefix="SETTLEMENT_", extra="ignore")

    service_name: str = "settlement"
    grpc_port: int = 50054
    identity_target: str = "127.0.0.1:50051"
    """identity service (host:port)."""
    filing_target: str = "127.0.0.1:50052"
    """filing service (host:port)."""
    catalogue_target: str = "127.0.0.1:50053"
    """catalogue service (host:port)."""
    clearing_target: str = "127.0.0.1:50055"
    """clearing service (host:port), where the outbox relay delivers ledger events."""
    relay_enabled: bool = True
    """Run the outbox relay in this process (one or more replicas may run it)."""
    relay_linger_s: float = Field(default=0.5, ge=0)
    """How long the relay waits after a commit before delivering, so that the commits of that
    moment go to clearing in one call: at 0.5 instead of 0.1 s, clearing spent 0.7-0.8 instead of
    1.5-2.0 ms of CPU per settlement (docs/performance.md, eleventh round). The ledger sees a
    settlement that much later; nothing at the counter waits for it."""
    relay_max_backoff_s: float = Field(default=60.0, gt=0)
    """Longest wait between two delivery attempts while clearing is down."""
    filing_ends_enabled: bool = True
    """Follow filing's change stream (filing_ends.py): an admission then finds the person's
    filing in this service's copy, and a settlement uses the filing found at admission unless
    the stream has reported it ended, neither asking filing."""
    filing_ends_current_s: float = Field(default=3.0, gt=0)
    """How old the stream's last heartbeat may be for that; older, both ask filing."""
    filing_watch_s: float = Field(default=60.0, gt=0)
    """Deadline of one watch call; the next resumes where it ended."""
    lookup_pool_size: int = Field(default=10, gt=0)
    """PostgreSQL connections for the lookups of an admission and an upload, run on asyncpg
    directly (services.common.driver), beside the 10 (up to 20) of the SQLAlchemy engine."""

    def upstream_targets(self) -> dict[str, str]:
        """The services settlement asks during admission, upload and settlement."""
        return {
            "identity": self.identity_target,
            "filing": self.filing_target,
            "catalogue": self.catalogue_target,
        }
