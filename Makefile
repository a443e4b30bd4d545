# wideth: every target that needs Python depends on the .venv stamp, so a fresh
# clone builds its environment first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NT_VERSION := 0.6.5
EXPERIMENTS := catapult edge_of_stability double_descent implicit_bias criticality finite_width pl_adaptive scaling_laws linear_regions depth_fluctuations sgd_stationarity hessian_structure pl_conditioning bayes_deep_linear
PYTEST_ARGS ?=

.PHONY: install test test-slow lint reproduce reproduce-full report bench notebooks docs clean $(EXPERIMENTS)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,data,docs]"
	# neural-tangents without TensorFlow (see wideth/_compat.py)
	$(PY) -m pip install --quiet --no-deps neural-tangents==$(NT_VERSION)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -n 2 -q -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check wideth tests experiments benchmarks
	$(VENV)/bin/lint-imports

# Every experiment in quick mode on CPU, then results/REPORT.md.
reproduce: $(STAMP)
	$(PY) -m experiments.report --run --quick --out results

# Full size, for a GPU.
reproduce-full: $(STAMP)
	$(PY) -m experiments.report --run --full --out results-full

report: $(STAMP)
	$(PY) -m experiments.report --out results

$(EXPERIMENTS): $(STAMP)
	$(PY) -m experiments.$@ --quick --out results/$@

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

notebooks: $(STAMP)
	$(PY) -m pytest -q tests/test_notebooks.py

# Sphinx site with warnings as errors; the gallery uses results/ when present.
docs: $(STAMP)
	$(PY) docs/gen_gallery.py
	$(VENV)/bin/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html

clean:
	rm -rf $(VENV) results results-full .pytest_cache build *.egg-info
