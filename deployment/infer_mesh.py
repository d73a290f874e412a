"""Refine HybrIK's per-frame SMPL predictions of a new video. See ``--help`` and README.md."""

import sys

from lib.deploy.infer_cli import main

if __name__ == "__main__":
    sys.exit(main())
