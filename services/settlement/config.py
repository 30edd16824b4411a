"""Settings of the settlement service (environment variables prefixed `SETTLEMENT_`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings


class SettlementSettings(ServiceSettings):
    """Settlement service settings."""

    model_config = SettingsConfigDict(env_prefix="SETTLEMENT_", extra="ignore")

    service_name: str = "settlement"
    grpc_port: int = 50054
