"""Settings of the catalogue service (environment variables prefixed `CATALOGUE_`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings


class CatalogueSettings(ServiceSettings):
    """Catalogue service settings."""

    model_config = SettingsConfigDict(env_prefix="CATALOGUE_", extra="ignore")

    service_name: str = "catalogue"
    grpc_port: int = 50053
    cache_enabled: bool = True
    """Cache items, institutions and mappings (Redis or in-process); false reads the database
    on every call (benchmarks compare the two)."""
