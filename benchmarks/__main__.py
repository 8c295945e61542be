"""`python -m benchmarks [--quick] [--only W3] ...` from the repository root: the same as `graphc bench ...`.

The suite lives in the package (graphc/bench/); this folder holds separate scripts.
"""

import sys

from graphc.cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
