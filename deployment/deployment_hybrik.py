"""Export HybrIK (HRNet-W48 with camera, HybrIK's released weights) to one ONNX file with the seed's I/O and
verify it against PyTorch. See ``--help``."""

import sys

from lib.deploy.hybrik_export_cli import main

if __name__ == "__main__":
    sys.exit(main())
