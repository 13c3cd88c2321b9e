# Quick start: `make lab` (set up + open the notebooks in JupyterLab), `make figures` (reproduce every
# figure/table), `make audit` (measure each claim), `make test` (run the tests), `make site` (the
# notebooks as a static website, docs/site.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export JEAT_DATA ?= $(abspath ../shared/data/cifar10)

.PHONY: setup lab figures audit test test-fast lint bench site site-smoke clean

$(BIN)/jeat: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# one resolver run: torch pinned (this machine has these wheels on disk), the package with its dev
	# tools and the static site's tools (`make site`; its browser test, tests/test_site.py, is part of `make test`)
	$(BIN)/pip install --quiet --no-compile torch==2.14.1 torchvision==0.29.1 -e '.[dev,site]'
	# peer library for cross-checks and AutoAttack: the `attacks` extra of pyproject.toml, installed here with
	# --no-deps because it pins an old `requests` (its scipy comes from the dev extra)
	$(BIN)/pip install --quiet --no-compile --no-deps torchattacks==3.5.1
	touch $(BIN)/jeat

setup: $(BIN)/jeat

lab: setup
	# the .py notebooks are the source; pair each with a (git-ignored) .ipynb, then open JupyterLab.
	# notebooks/jupytext.toml keeps the .py headers stable, so this leaves `git status` clean; notebooks
	# export to the git-ignored figures-local/ (only `make figures` writes figures/)
	$(BIN)/jupytext --sync notebooks/*.py
	# jupyter/overrides.json: .py notebooks open as notebooks (Jupytext Notebook viewer), no news pop-up
	$(BIN)/jupyter lab --LabApp.app_settings_dir=$(CURDIR)/jupyter $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/

figures: setup
	# every paper figure and table from the shipped models -> figures/ (about 15 minutes on 2 cores)
	$(BIN)/jeat figures --out figures

audit: setup
	# each claim of the paper measured on the shipped models -> figures/audit.md (+ .json)
	$(BIN)/jeat audit --out figures/audit.md

# two workers (pytest-xdist, one per core; a third was measured slower); the tests that share the one
# execution of the notebooks (or the tiny zoo) run on one worker each (xdist_group marks), so each session
# fixture is made once
test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

test-fast: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not slow"

lint: setup
	$(BIN)/ruff check .

site: setup
	# the notebooks at their default sizes + README, figures/, docs/ -> build/site/html (about 4 minutes on 2
	# cores after setup; notebook runs are cached, so a prose-only rebuild takes about 10 s)
	$(BIN)/python docs/site/build.py

site-smoke: setup
	# the same at smoke sizes (about 2 minutes; what tests/test_site.py checks) -> build/site-smoke/html
	$(BIN)/python docs/site/build.py --smoke

bench: setup
	$(BIN)/python benchmarks/bench_core.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info node_modules
