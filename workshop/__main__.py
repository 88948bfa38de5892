"""Run the workshop: ``python -m workshop``."""

import sys

from workshop.cli import main

sys.exit(main())
