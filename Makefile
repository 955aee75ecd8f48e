# dclip: `make setup && make test` is the whole quick start (and exactly what CI runs).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.dclip-installed
PROFILE ?= auto
export HF_HUB_DISABLE_TELEMETRY := 1

NBVAL  := --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg --nbval-cell-timeout=300

.PHONY: setup test test-fast test-notebooks paper-standins figures notebook-outputs lab bench clean

setup: $(STAMP)

# Re-runs only when the dependency list or the pins change; a second `make setup` is a no-op.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name dclip --display-name "Python (dclip)" >/dev/null
	touch $@

# Unit tests, then every notebook at the smoke profile under nbval. Offline on purpose.
test: setup
	HF_HUB_OFFLINE=1 DCLIP_PROGRESS=0 $(PY) -m pytest tests
	$(MAKE) --no-print-directory test-notebooks

# nbval runs each notebook with its stored defaults ("auto"), forced to the smoke profile; only the
# cells marked "# NBVAL_CHECK_OUTPUT" are compared. Figures go to .cache/, not the source tree.
test-notebooks: setup
	HF_HUB_OFFLINE=1 DCLIP_PROGRESS=0 DCLIP_PROFILE=smoke DCLIP_FIGURES_DIR=$(CURDIR)/.cache/nbval-figures \
		$(PY) -m pytest -p no:cacheprovider $(NBVAL) notebooks/

test-fast: setup
	HF_HUB_OFFLINE=1 DCLIP_PROGRESS=0 $(PY) -m pytest tests -x -q

# All six notebooks at the paper profile on stand-in weights in the real file layouts (random values;
# tests/standins.py), CPU, one image, fewest steps, ~3 GB in $(STANDINS). About 20 minutes on 2 free
# cores; notebook 02's GAN baselines at 1024 px need ~15 GB of RAM. For whoever changes the notebooks or
# the loaders. `make test` runs notebook 01 of it.
STANDINS ?= $(or $(TMPDIR),/tmp)/dclip-standins
paper-standins: setup
	DCLIP_PROGRESS=0 $(PY) tests/standins.py notebooks $(STANDINS)

figures: setup
	$(PY) -m dclip.figures --profile $(PROFILE)

# Re-run every notebook at the smoke profile and store only the outputs nbval checks.
notebook-outputs: setup
	HF_HUB_OFFLINE=1 $(PY) -m dclip.figures --store-outputs

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

bench: setup
	$(PY) bench/bench.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
