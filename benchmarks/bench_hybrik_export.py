"""HybrIK's ONNX export at full size (HRNet-W48, 256 x 256 crops, flip test baked in): both exporters.

    python -m benchmarks.bench_hybrik_export            # HRNet-W48, both exporters (~5-10 min on 2 cores)
    python -m benchmarks.bench_hybrik_export --quick    # a check that it runs: HRNet-W18

For each exporter (``lib.deploy.hybrik_export.EXPORTERS``), in one process on the same network: the
export time (``export_hybrik_onnx``: trace / export, ``onnx.checker``-ready file written atomically), the
file size, and onnxruntime vs eager PyTorch per output at N = 1 and N = 3 (``verify_hybrik_onnx``, the
check ``deployment/deployment_hybrik.py`` runs), plus the two files against each other.

The network is built from a synthetic ``model_files/`` (``lib.body.synthetic.write_hybrik_model_files``)
with random weights: no released weights here. An untrained HRNet puts joints millimetres apart, where
the IK turns float32 differences into rotation differences; the rotation tolerance is then widened with
the IK's conditioning (``_conditioned`` in ``lib.deploy.hybrik_export``) and the table says by how much.

Writes ``hybrik_export.json`` and ``hybrik_export.md`` under ``--out`` (``--quick``: ``--out``/quick).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import common

log = logging.getLogger("benchmarks.hybrik_export")

FULL_WIDTH = 48
QUICK_WIDTH = 18
BATCHES = (1, 3)


def run(args: Any) -> dict[str, Any]:
    from lib.body.synthetic import write_hybrik_model_files
    from lib.deploy.hybrik_export import (
        EXPORT_OUTPUT_NAMES,
        EXPORTERS,
        export_hybrik_onnx,
        onnx_session,
        parity_table,
        random_inputs,
        verify_hybrik_onnx,
    )
    from lib.hybrik.model import build_hybrik

    common.setup(args.threads)
    out = common.results_dir(args.out, args.quick)
    width = QUICK_WIDTH if args.quick else FULL_WIDTH
    results: dict[str, Any] = {"machine": common.machine_info(), "width": width, "flip_test": True,
                               "batches": list(BATCHES), "exporters": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model_files = write_hybrik_model_files(Path(tmp) / "model_files", seed=args.seed)["smpl"].parent
        torch.manual_seed(args.seed)
        model = build_hybrik(model_files, width=width, mean_beta=True)
        paths = {}
        for exporter in EXPORTERS:
            log.info("exporting HRNet-W%d with the %s exporter", width, exporter)
            info = export_hybrik_onnx(model, Path(tmp) / f"hybrik_{exporter}.onnx", flip_test=True, exporter=exporter)
            checks = verify_hybrik_onnx(model, info.path, flip_test=True, batches=BATCHES, seed=args.seed)
            print(f"{exporter}: export {info.seconds:.1f} s, {info.size_bytes / 1e6:.1f} MB, opset {info.opset}")
            print(parity_table(checks))
            paths[exporter] = info.path
            results["exporters"][exporter] = {
                "export_s": info.seconds, "size_mb": info.size_bytes / 1e6, "opset": info.opset,
                "parity_ok": all(c.ok for c in checks),
                "max_abs": {name: max(c.max_abs[name] for c in checks) for name in EXPORT_OUTPUT_NAMES},
                "tolerance": {name: max(c.tolerances[name] for c in checks) for name in EXPORT_OUTPUT_NAMES},
            }
        inputs = random_inputs(3, seed=args.seed + 7)
        runs = {e: dict(zip(EXPORT_OUTPUT_NAMES, onnx_session(p).run(list(EXPORT_OUTPUT_NAMES), inputs)))
                for e, p in paths.items()}
        first, second = EXPORTERS
        results["between_exporters_max_abs"] = {
            name: float(np.abs(runs[first][name].astype(np.float64) - runs[second][name]).max())
            for name in EXPORT_OUTPUT_NAMES}
    results["machine"]["load_average_after"] = common.machine_info()["load_average_1_5_15min"]
    rows = [[name, *(results["exporters"][e]["max_abs"][name] for e in EXPORTERS),
             max(results["exporters"][e]["tolerance"][name] for e in EXPORTERS),
             results["between_exporters_max_abs"][name]] for name in EXPORT_OUTPUT_NAMES]
    headers = ["output", *(f"{e} vs PyTorch" for e in EXPORTERS), "tolerance", "between files"]
    times = [[e, results["exporters"][e]["export_s"], results["exporters"][e]["size_mb"],
              "yes" if results["exporters"][e]["parity_ok"] else "NO"] for e in EXPORTERS]
    time_headers = ["exporter", "export s", "MB", "parity holds"]
    head = (f"HybrIK HRNet-W{width} ONNX export, flip test baked in, random weights; max |onnxruntime - PyTorch| "
            f"over N = {list(BATCHES)}\n{common.machine_line(results['machine'])}")
    text = "\n\n".join([head, common.text_table(time_headers, times, ".1f"), common.text_table(headers, rows, ".2e")])
    md = "\n\n".join([f"# {head}", common.markdown_table(time_headers, times, ".1f"),
                      common.markdown_table(headers, rows, ".2e")]) + "\n"
    common.publish(out, "hybrik_export", results, text, md)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = common.benchmark_parser("hybrik_export", __doc__.splitlines()[0],
                                     config_help="unused (kept for the shared flags)",
                                     quick_help=f"HRNet-W{QUICK_WIDTH} instead of W{FULL_WIDTH}")
    return common.run_cli(run, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
