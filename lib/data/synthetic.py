"""Synthetic ``data_root``s in the real formats: the entry point over the two independent styles.

    python -m lib.data.synthetic --out data/demo --preset demo [--style b] [--seed N]

Style "a" (``lib.data.synthetic_style_a``, the default; its docstring documents the files, keys, dtypes
and noise model) and style "b" (``lib.data.synthetic_style_b``: every convention drawn differently)
write the same files. ``ensure_data_root`` reuses a folder only when its manifest names the same seed,
preset, style and generator version.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from lib.atomic_write import write_text_atomic
from lib.data import synthetic_style_a, synthetic_style_b
from lib.data.synthetic_style_a import MESH_FILES, PRESETS  # noqa: F401 - the file names and sizes of both styles

STYLES = ("a", "b")
GENERATORS = {"a": synthetic_style_a, "b": synthetic_style_b}
GENERATOR_VERSIONS = {style: module.GENERATOR_VERSION for style, module in GENERATORS.items()}
MANIFEST_FILE = "synthetic_manifest.json"  # written last: its presence marks a complete data_root


def generate_data_root(out_dir: str | Path, seed: int = 0, preset: str = "tiny", style: str = "a") -> dict[str, Any]:
    """Write a complete synthetic ``data_root`` of ``style``.

    Args:
        out_dir: folder to write into (created if missing; existing files of the same names are replaced).
        seed: the only source of randomness; same seed, preset and style -> same bytes.
        preset: ``"tiny"`` (tests) or ``"demo"`` (the embedded demo).
        style: ``"a"`` or ``"b"``.
    Returns:
        ``{"out_dir", "seed", "preset", "style", "generator_version", "files": [names], "datasets": {name:
        {"file", "fps", "train": {"frames", "sequences", "seconds"}, "test": {...}}}}``; style b's ``fps``
        is the sorted tuple of the frame rates it used.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {list(STYLES)}, got {style!r}")
    summary = GENERATORS[style].generate_data_root(out_dir, seed=seed, preset=preset)
    return {**summary, "generator_version": GENERATOR_VERSIONS[style]}


def ensure_data_root(out_dir: str | Path, seed: int = 0, preset: str = "tiny",
                     style: str = "a") -> tuple[dict[str, Any], bool]:
    """The synthetic ``data_root`` at ``out_dir``, generated unless a complete one is there.

    Complete means its ``MANIFEST_FILE`` (written last) names the same seed, preset, style and
    ``GENERATOR_VERSIONS[style]``; anything else (no manifest, another seed, an older generator) is
    rewritten. Returns ``(summary, generated)``: the manifest's contents and whether it was written now.
    """
    out = Path(out_dir)
    manifest = out / MANIFEST_FILE
    wanted = {"seed": seed, "preset": preset, "style": style, "generator_version": GENERATOR_VERSIONS.get(style)}
    if manifest.is_file():
        try:
            summary = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = {}
        if {key: summary.get(key) for key in wanted} == wanted:
            return summary, False
    return write_data_root(out, seed=seed, preset=preset, style=style), True


def write_data_root(out_dir: str | Path, seed: int = 0, preset: str = "tiny", style: str = "a") -> dict[str, Any]:
    """``generate_data_root``, then its summary as ``MANIFEST_FILE`` (removed first, written last)."""
    out = Path(out_dir)
    (out / MANIFEST_FILE).unlink(missing_ok=True)  # an interrupted rewrite must not look complete
    summary = generate_data_root(out, seed=seed, preset=preset, style=style)
    write_text_atomic(out / MANIFEST_FILE, json.dumps(summary, indent=1, default=str))
    return summary

def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI: generate and print a short summary."""
    args = _parse_args(argv)
    start = time.perf_counter()
    summary = write_data_root(args.out, seed=args.seed, preset=args.preset, style=args.style)
    elapsed = time.perf_counter() - start
    print(f"synthetic data_root '{args.preset}' (seed {args.seed}, style {args.style}) written to "
          f"{summary['out_dir']} in {elapsed:.1f} s")
    for dataset, info in summary["datasets"].items():
        parts = [f"{split} {info[split]['frames']} frames / {info[split]['sequences']} "
                 f"{'images' if dataset == 'coco' else 'sequences'}" for split in ("train", "test")]
        fps = info["fps"] if isinstance(info["fps"], (tuple, list)) else (info["fps"],)
        rate = "" if dataset == "coco" else f" @ {'/'.join(f'{x:g}' for x in fps)} Hz"
        print(f"  {info['file']}: {', '.join(parts)}{rate}")
    print(f"  files: {', '.join(summary['files'])}")
    return summary


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Write a synthetic data_root (SMPL stand-in, regressors, "
                                                 "MotionBERT-format mesh pickles).")
    parser.add_argument("--out", type=Path, required=True, help="output folder, e.g. data/demo")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    parser.add_argument("--preset", type=str, default="demo", choices=sorted(PRESETS),
                        help="size: 'tiny' for tests, 'demo' for the embedded demo")
    parser.add_argument("--style", type=str, default="a", choices=STYLES,
                        help="'a' (default) or 'b': the same formats with other conventions "
                             "(lib/data/synthetic_style_b.py)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
