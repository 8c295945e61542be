"""`python -m graphc.bench [--quick] [--only W3] ...`: the same as `graphc bench ...`."""

import sys

from graphc.cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
