# Two commands (README Quickstart): `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The suite fails if fewer tests than this are collected (a misnamed test cannot hide); keep it within
# 10 % of what the suite collects (725 on 2026-12-07).
MIN_TESTS ?= 660

.PHONY: demo test venv clean-demo

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m lib.demo --out demo_out

test: $(STAMP)
	$(PY) -m pytest -q --min-tests=$(MIN_TESTS)

clean-demo:
	rm -rf demo_out
