"""Train, finetune, resume or evaluate the temporal mesh refiner. See ``--help`` and README.md."""

import sys

from lib.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
