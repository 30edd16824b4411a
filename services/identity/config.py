"""Settings of the identity service (environment variables prefixed `IDENTITY_`)."""

from __future__ import annotations

import base64

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings
from services.identity.voucher import VoucherSigner


class IdentitySettings(ServiceSettings):
    """Identity service settings."""

    model_config = SettingsConfigDict(env_prefix="IDENTITY_", extra="ignore")

    service_name: str = "identity"
    grpc_port: int = 50051
    voucher_ttl_s: int = Field(default=300, gt=0)
    """How long an issued e-voucher token is accepted (5 minutes)."""
    lookup_pool_size: int = Field(default=10, gt=0)
    """PostgreSQL connections for the person lookup of every credential check, run on asyncpg
    directly (services.common.driver), beside the 10 (up to 20) of the SQLAlchemy engine."""
    voucher_seed: SecretStr = SecretStr("")
    """Ed25519 private seed of the voucher key, base64 (32 bytes); empty: kept in
    `<DATA_DIR>/identity-voucher.key`, created on first start."""

    def voucher_signer(self) -> VoucherSigner:
        """The signer for e-voucher tokens from the configured seed or the key file."""
        seed = self.voucher_seed.get_secret_value()
        if seed:
            return VoucherSigner.from_seed(base64.b64decode(seed))
        return VoucherSigner.from_key_file(self.data_dir / "identity-voucher.key")
