# dclip: `make setup && make test` is the whole quick start (and exactly what CI runs).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.dclip-installed
PROFILE ?= auto
export HF_HUB_DISABLE_TELEMETRY := 1

NBVAL  := --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg --nbval-cell-timeout=300

.PHONY: setup test test-fast test-notebooks test-portable notebook-spread figures notebook-outputs lab bench clean

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

figures: setup
	$(PY) -m dclip.figures --profile $(PROFILE)

# Re-run every notebook at the smoke profile and store only the outputs nbval checks.
# Then check they are portable: `make notebook-spread` (and `make test-portable` before committing).
notebook-outputs: setup
	HF_HUB_OFFLINE=1 $(PY) -m dclip.figures --store-outputs

# Run the notebooks under simulated CPUs (dclip.portability.SIMULATED_CPUS) and report every checked
# number that moves; ONLY=02 for one notebook.
notebook-spread: setup
	HF_HUB_OFFLINE=1 $(PY) -m dclip.portability spread $(if $(ONLY),--only $(ONLY))

# `make test` once per simulated CPU (this machine as is, AVX2, plain SSE on one thread), with wall times.
test-portable: setup
	$(PY) -m dclip.portability test

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

bench: setup
	$(PY) bench/bench.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
