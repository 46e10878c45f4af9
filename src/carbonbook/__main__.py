"""``python -m carbonbook``."""

import sys

from carbonbook.cli import main

sys.exit(main())
