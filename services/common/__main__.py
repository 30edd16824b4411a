"""`python -m services.common`: the same as the `medsettle` command."""

import sys

from services.common.cli import main

sys.exit(main())
