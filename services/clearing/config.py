"""Settings of the clearing service (environment variables prefixed `CLEARING_`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings


class ClearingSettings(ServiceSettings):
    """Clearing service settings."""

    model_config = SettingsConfigDict(env_prefix="CLEARING_", extra="ignore")

    service_name: str = "clearing"
    grpc_port: int = 50055
