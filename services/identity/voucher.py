"""E-voucher tokens (医保电子凭证令牌): opaque, short-lived, signed with the service's Ed25519 key.

A token is `base64url(voucher_id ‖ expiry) + "." + base64url(signature)`: 16 random bytes naming a
row of the vouchers table (which holds the person), 8 bytes of expiry (Unix seconds), and the
signature over both. No personal data travels in the token; a forged or altered token fails the
signature check before any lookup.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import struct
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.identity.errors import VoucherExpired, VoucherInvalid

_PAYLOAD = struct.Struct(">16sQ")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class VoucherSigner:
    """Issues and checks tokens with one Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self._public_key = private_key.public_key()

    @classmethod
    def from_seed(cls, seed: bytes) -> VoucherSigner:
        """A signer from a 32-byte private seed."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_key_file(cls, path: Path) -> VoucherSigner:
        """The signer whose seed is kept in path, creating it (mode 0600) on first use."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_bytes(secrets.token_bytes(32))
        return cls.from_seed(path.read_bytes())

    def issue(self, expires_at: dt.datetime) -> tuple[str, str]:
        """A new (voucher_id hex, token) pair valid until expires_at."""
        voucher_id = secrets.token_bytes(16)
        payload = _PAYLOAD.pack(voucher_id, int(expires_at.timestamp()))
        token = f"{_b64(payload)}.{_b64(self._private_key.sign(payload))}"
        return voucher_id.hex(), token

    def verify(self, token: str, now: dt.datetime) -> str:
        """The voucher_id (hex) of a genuine, unexpired token."""
        try:
            payload_text, signature_text = token.split(".")
            payload, signature = _unb64(payload_text), _unb64(signature_text)
            self._public_key.verify(signature, payload)
            voucher_id, expires = _PAYLOAD.unpack(payload)
        except (ValueError, binascii.Error, InvalidSignature, struct.error):
            raise VoucherInvalid("the e-voucher token is not valid") from None
        if now.timestamp() >= expires:
            raise VoucherExpired("the e-voucher token has expired; ask the person to refresh it")
        return str(voucher_id.hex())
