"""`python -m services.settlement`: run the settlement service alone."""

from services.common.runtime import run_service
from services.settlement.config import SettlementSettings
from services.settlement.server import serve

if __name__ == "__main__":
    run_service(SettlementSettings(), serve)
