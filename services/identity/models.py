"""Tables owned by the identity service."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from services.common.db import new_metadata


class Base(DeclarativeBase):
    """Declarative base of the identity service's own database."""

    metadata = new_metadata()
