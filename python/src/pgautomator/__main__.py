"""`python -m pgautomator` is the `pgautomator` command."""

import sys

from pgautomator.cli import main

sys.exit(main())
