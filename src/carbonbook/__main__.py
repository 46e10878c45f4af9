"""``python -m carbonbook``."""

import sys

from carbonbook.operations.cli import main

sys.exit(main())
