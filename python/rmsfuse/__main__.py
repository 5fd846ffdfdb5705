"""python3 -m rmsfuse {info,selftest,bench}: see rmsfuse.cli."""
import sys

from .cli import main

sys.exit(main())
