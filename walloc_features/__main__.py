"""``python -m walloc_features``: the ``walloc-features`` command line (see :mod:`walloc_features.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
