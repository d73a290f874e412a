"""A copy of a data_root whose HybrIK poses are replaced by their per-frame 2D fit (``lib.body.fit2d``).

    python -m benchmarks.fit2d_data_root SRC DST --prior-weight 0.01 [--config configs/mesh/demo.yaml]
    python -m benchmarks.fit2d_data_root SRC DST --prior-weight 0.01 --only pw3d:test   # one split

Every split of the three mesh pickles named by ``--config`` (``dt_file_*``) gets ``pred_smpl_pose``
(F, 72 axis-angle) = HybrIK's pose fitted to the split's own 2D (the normalised H36M-17 keypoints the
dataset feeds the refiner, so COCO's are converted first) with HybrIK's per-frame betas; everything else
is copied as it is. The issue-14 experiment "fit, then refine" trains and scores the demo recipe on such
copies (``docs/differences.md``); the task config's ``fit2d_prior`` now does the same inside the pipeline
(``lib.data.hybrik_fit``, whose ``fit_hybrik_pose`` this calls). ~3 ms per frame on 2 cores (50 L-BFGS
iterations).
"""

from __future__ import annotations

import argparse
import logging
import pickle
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks import common

log = logging.getLogger("benchmarks.fit2d_data_root")

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="the data_root to copy")
    parser.add_argument("dst", type=Path, help="the new data_root (created; files in it are replaced)")
    parser.add_argument("--prior-weight", type=float, required=True, help="lib.body.fit2d prior weight")
    parser.add_argument("--config", type=Path, default=common.DEMO_CONFIG, help="task YAML naming the pickles")
    parser.add_argument("--only", nargs="*", default=None, metavar="DATASET:SPLIT",
                        help="fit only these splits (e.g. pw3d:test); the others are copied unchanged")
    parser.add_argument("--threads", type=int, default=common.DEFAULT_THREADS)
    return parser


def run(args: argparse.Namespace) -> dict[str, float]:
    from lib.atomic_write import atomic_open
    from lib.body.fit2d import DEFAULT_STEPS
    from lib.body.smpl import BodyModel
    from lib.config.task import load_task_config
    from lib.data.datasets import MeshFiles
    from lib.data.hybrik_fit import fit_hybrik_pose

    common.setup(args.threads)
    shutil.copytree(args.src, args.dst, dirs_exist_ok=True)
    config = common.write_config(args.dst / "fit2d_source.yaml", base=args.config, data_root=str(args.src),
                                 fit2d_prior=None)  # read the source as it is (no fit, no cache beside it)
    cfg = load_task_config(config)
    files = MeshFiles(cfg)
    body = BodyModel(args.src)
    seconds: dict[str, float] = {}
    for dataset, name in (("pw3d", cfg.dt_file_pw3d), ("h36m", cfg.dt_file_h36m), ("coco", cfg.dt_file_coco)):
        with open(args.src / name, "rb") as handle:
            raw = pickle.load(handle)
        for split_name, arrays in raw.items():
            if args.only is not None and f"{dataset}:{split_name}" not in args.only:
                continue
            start = time.perf_counter()
            pose2d = files.split(dataset, split_name).pose2d  # (F, 17, 3), the refiner's normalised 2D
            pose = np.asarray(arrays["pred_smpl_pose"])  # (F, 72)
            fitted = fit_hybrik_pose(body, pose, np.asarray(arrays["pred_smpl_shape"]), pose2d,
                                     prior_weight=args.prior_weight, steps=DEFAULT_STEPS)
            arrays["pred_smpl_pose"] = fitted.astype(pose.dtype)
            seconds[f"{dataset}:{split_name}"] = time.perf_counter() - start
            log.info("%s %s: %d frames fitted in %.0fs", dataset, split_name, len(pose),
                     seconds[f"{dataset}:{split_name}"])
        with atomic_open(args.dst / name, "wb") as handle:
            pickle.dump(raw, handle)
    return seconds


def main(argv: list[str] | None = None) -> int:
    return common.run_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
