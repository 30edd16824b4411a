"""`python -m services.identity`: run the identity service alone."""

from services.common.runtime import run_service
from services.identity.config import IdentitySettings
from services.identity.server import serve

if __name__ == "__main__":
    run_service(IdentitySettings(), serve)
