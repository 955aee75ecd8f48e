# dclip: `make setup && make test` is the whole quick start (and exactly what CI runs).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.dclip-installed
PROFILE ?= auto
export HF_HUB_DISABLE_TELEMETRY := 1

# The cell timeout guards against a hung kernel, not a slow machine: the slowest checked cell takes 172 s on 2 free
# cores (02's toy edits against the truth), 258 s on a machine 1.5x slower; notebooks/conftest.py prints any cell
# that takes over half of it.
NBVAL  := --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg --nbval-cell-timeout=600

.PHONY: setup git-filter test test-fast test-notebooks test-portable notebook-spread paper-standins figures \
	notebook-outputs toy-models lab bench clean

setup: $(STAMP)

# Re-runs only when the dependency list or the pins change; a second `make setup` is a no-op.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name dclip --display-name "Python (dclip)" >/dev/null
	$(MAKE) --no-print-directory git-filter
	touch $@

# nbstripout as the git filter .gitattributes names: git stores a notebook's sources and only the outputs of
# cells marked keep_output (the "# NBVAL_CHECK_OUTPUT" ones), so a JupyterLab session leaves `git status`
# clean. --keep-id: cell ids stay as stored. Outside a git checkout there is nothing to do.
git-filter:
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		py="$$(cd $(VENV)/bin && pwd -P)/python"; \
		git config filter.nbstripout.clean "\"$$py\" -m nbstripout --keep-id" && \
		git config filter.nbstripout.smudge cat && \
		git config filter.nbstripout.required true && \
		git config diff.ipynb.textconv "\"$$py\" -m nbstripout --keep-id -t"; \
	fi

# Unit tests, then every notebook at the smoke profile under nbval. Offline on purpose.
# tests/test_browser_editor.py drives notebook 06 in JupyterLab with the system Chromium; without one it
# is skipped, and -rs prints why (DCLIP_REQUIRE_BROWSER=1 turns that into a failure, as in CI).
test: setup
	HF_HUB_OFFLINE=1 DCLIP_PROGRESS=0 $(PY) -m pytest -rs --durations=20 tests
	$(MAKE) --no-print-directory test-notebooks

# nbval runs each notebook with its stored defaults ("auto"), forced to NBVAL_PROFILE (the profile the
# stored outputs were made at: dclip.dev.figures.CHECKED_PROFILE); only the cells marked "# NBVAL_CHECK_OUTPUT"
# are compared. Figures go to .cache/, not the source tree.
NBVAL_PROFILE ?= toy-check
test-notebooks: setup
	HF_HUB_OFFLINE=1 DCLIP_PROGRESS=0 DCLIP_PROFILE=$(NBVAL_PROFILE) DCLIP_FIGURES_DIR=$(CURDIR)/.cache/nbval-figures \
		$(PY) -m pytest -p no:cacheprovider --durations=8 $(NBVAL) notebooks/

test-fast: setup
	HF_HUB_OFFLINE=1 DCLIP_PROGRESS=0 $(PY) -m pytest tests -x -q

# All six notebooks at the paper profile on stand-in weights in the real file layouts (random values;
# tests/standins.py), CPU, one image, fewest steps, ~3 GB in $(STANDINS). 15 minutes on 2 free
# cores (measured); notebook 02's GAN baselines at 1024 px peak at ~16 GB of RAM. For whoever changes the notebooks or
# the loaders. `make test` runs notebook 01 of it.
STANDINS ?= $(or $(TMPDIR),/tmp)/dclip-standins
paper-standins: setup
	DCLIP_PROGRESS=0 $(PY) tests/standins.py notebooks $(STANDINS)

# The main job (README: how long it takes): every notebook at PROFILE (auto: paper with CUDA, else toy); figures and
# tables to figures/<subdir>/, each executed notebook (small, committed) to figures/<subdir>/notebooks/. A notebook
# whose inputs have not changed since figures/<subdir>/manifest.json was written is skipped (FORCE=1 re-runs all);
# one that fails leaves its old figures, and the others still run. ONLY=03 runs one notebook.
figures: setup
	$(PY) -m dclip figures --profile $(PROFILE) $(if $(FORCE),--force) $(if $(ONLY),--only $(ONLY))

# Re-run every notebook at dclip.dev.figures.CHECKED_PROFILE and store only the outputs nbval checks.
# Then check they are portable: `make notebook-spread` (and `make test-portable` before committing).
notebook-outputs: setup
	HF_HUB_OFFLINE=1 $(PY) -m dclip figures --store-outputs

# Run the notebooks under simulated CPUs (dclip.dev.portability.SIMULATED_CPUS) and report every checked
# number that moves; ONLY=02 for one notebook.
notebook-spread: setup
	HF_HUB_OFFLINE=1 $(PY) -m dclip portability spread $(if $(ONLY),--only $(ONLY))

# `make test` once per simulated CPU (this machine as is, AVX2, plain SSE on one thread), with wall times.
test-portable: setup
	$(PY) -m dclip portability test

# Retrain the shipped toy models (DDPM, CLIP, judge) into dclip/models/shipped/ on the CPU (see docs/toy.md).
toy-models: setup
	$(PY) -m dclip toy train all --out dclip/models/shipped --force

# JupyterLab refuses to run as root without --allow-root (the usual user in containers).
lab: setup
	$(VENV)/bin/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# The engine's fast path against the original implementation's path; fp32 against bf16 on the CPU at 256² (bf16 is
# the fast path where the CPU has it natively; ~10 min); the recipe table (what the later accelerations buy at the toy
# profile: LoRA, the loss at the first step, fewer steps, batching; ~30 min on 1 core); then the live editor's
# timings at the toy profile (bench/editor.py, ~2 min).
bench: setup
	$(PY) bench/bench.py
	$(PY) bench/cpu_bf16.py
	$(PY) bench/recipes.py
	$(PY) bench/editor.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
