"""Model options: one default per switch, shared by the command line and the typed value."""

from __future__ import annotations

import argparse
import dataclasses

from lib.config.cli import add_model_arguments, model_options_from_args
from lib.config.options import ModelOptions


def test_command_line_defaults_are_the_model_options_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    from_flags = model_options_from_args(parser.parse_args(["--config", "x.yaml"]))
    assert from_flags == ModelOptions()
    assert ModelOptions().hyper_relation_bias == "none"  # the original's default; documented commands pass uniform
    changed = model_options_from_args(parser.parse_args(["--config", "x.yaml", "--hyper_relation_bias", "uniform",
                                                         "--version", "1", "--no-j2e_bias"]))
    assert dataclasses.replace(ModelOptions(), hyper_relation_bias="uniform", version=1, j2e_bias=False) == changed
