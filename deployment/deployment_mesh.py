"""Export a trained refiner to one ONNX file and verify it against PyTorch. See ``--help`` and README.md."""

import sys

from lib.deploy.export_cli import main

if __name__ == "__main__":
    sys.exit(main())
