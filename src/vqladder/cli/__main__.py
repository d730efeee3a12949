"""``python -m vqladder.cli`` (and ``torchrun -m vqladder.cli``) runs the command line."""

import sys

from . import main

sys.exit(main())
