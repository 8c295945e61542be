"""`python -m graphc`: the same as the `graphc` command (see graphc.cli)."""

import sys

from graphc.cli import main

if __name__ == "__main__":
    sys.exit(main())
