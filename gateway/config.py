"""Gateway settings (environment variables prefixed `GATEWAY_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.config import ProcessSettings

UPSTREAMS = ("identity", "filing", "catalogue", "settlement", "clearing")


class GatewaySettings(ProcessSettings):
    """Where the gateway listens, where its services are, its database and its limits."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    http_host: str = "127.0.0.1"
    """Address the HTTP server binds; `0.0.0.0` in containers."""
    http_port: int = 8080
    """HTTP port."""
    identity_target: str = "127.0.0.1:50051"
    """gRPC address of the identity service."""
    filing_target: str = "127.0.0.1:50052"
    """gRPC address of the filing service."""
    catalogue_target: str = "127.0.0.1:50053"
    """gRPC address of the catalogue service."""
    settlement_target: str = "127.0.0.1:50054"
    """gRPC address of the settlement service."""
    clearing_target: str = "127.0.0.1:50055"
    """gRPC address of the clearing service."""
    request_timeout_s: float = Field(default=3.0, gt=0)
    """Budget of one hospital request across every hop behind the gateway."""
    timestamp_window_s: int = Field(default=300, gt=0)
    """How far x-tif-timestamp may be from the gateway's clock, either way."""
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    """Largest request body accepted (1,000 fee lines take about 600 KB)."""
    session_ttl_s: int = Field(default=86_400, gt=0)
    """How long a sign-in (9001) stays valid without a sign-out."""
    recent_person_s: float = Field(default=300.0, ge=0)
    """How long a person identity returned is kept in memory for the settlements that follow
    (gateway.persons); 0 keeps none."""
    recent_persons: int = Field(default=10_000, gt=0)
    """Most persons kept at once (the least recently used go first)."""
    message_pool_size: int = Field(default=10, gt=0)
    """PostgreSQL connections for the claim and the answer every message writes, run on asyncpg
    directly (services.common.driver), beside the 10 (up to 20) of the SQLAlchemy engine."""

    def targets(self) -> dict[str, str]:
        """Upstream name -> gRPC address."""
        return {name: getattr(self, f"{name}_target") for name in UPSTREAMS}
