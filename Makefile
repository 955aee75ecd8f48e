# dclip: `make setup && make test` is the whole quick start (and exactly what CI runs).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.dclip-installed
PROFILE ?= auto
export HF_HUB_DISABLE_TELEMETRY := 1

NBVAL  := --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg --nbval-cell-timeout=300

.PHONY: setup test test-fast test-notebooks figures notebook-outputs toy-models lab bench clean

setup: $(STAMP)

# Re-runs only when the dependency list or the pins change; a second `make setup` is a no-op.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name dclip --display-name "Python (dclip)" >/dev/null
	touch $@

# Unit tests, then every notebook under nbval. Offline on purpose.
test: setup
	HF_HUB_OFFLINE=1 DCLIP_PROGRESS=0 $(PY) -m pytest tests
	$(MAKE) --no-print-directory test-notebooks

# nbval runs each notebook with its stored defaults ("auto"), forced to NBVAL_PROFILE (the profile the
# stored outputs were made at: dclip.figures.STORED_PROFILE); only the cells marked "# NBVAL_CHECK_OUTPUT"
# are compared. Figures go to .cache/, not the source tree.
NBVAL_PROFILE ?= smoke
test-notebooks: setup
	HF_HUB_OFFLINE=1 DCLIP_PROGRESS=0 DCLIP_PROFILE=$(NBVAL_PROFILE) DCLIP_FIGURES_DIR=$(CURDIR)/.cache/nbval-figures \
		$(PY) -m pytest -p no:cacheprovider $(NBVAL) notebooks/

test-fast: setup
	HF_HUB_OFFLINE=1 DCLIP_PROGRESS=0 $(PY) -m pytest tests -x -q

figures: setup
	$(PY) -m dclip.figures --profile $(PROFILE)

# Re-run every notebook at dclip.figures.STORED_PROFILE and store only the outputs nbval checks.
notebook-outputs: setup
	HF_HUB_OFFLINE=1 $(PY) -m dclip.figures --store-outputs

# Retrain the shipped toy models (DDPM, CLIP, judge) into dclip/toy/models/ on the CPU (see README).
toy-models: setup
	$(PY) -m dclip.toy train all

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

bench: setup
	$(PY) bench/bench.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
