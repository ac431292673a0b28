# Two commands for a fresh machine:  `make lab` (install + open the lessons)  and  `make test`.
PY ?= python3
PIP := $(PY) -m pip
TORCH ?= torch==2.13.0
PORT ?= 8866

.PHONY: install lab test test-fast demo lint notebooks browser-deps

# torch first, CPU build: a plain `torch` requirement on a machine without it pulls a multi-GB CUDA build.
install:
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install $(TORCH)
	$(PIP) install -q -e ".[dev,classroom]"

# As root (containers, Binder-style images, CI) Jupyter refuses to start unless told --allow-root.
ROOT_FLAG := $(shell [ "$$(id -u 2>/dev/null)" = "0" ] && echo --allow-root)

lab: install
	$(PY) -m jupyter lab $(ROOT_FLAG) notebooks/00_start_here.ipynb

# The whole suite: unit, property, notebook (lessons) and browser tests, one test file per core (2 workers;
# every worker pins torch to 1 thread in tests/conftest.py, so both cores work and nothing oversubscribes).
test: install
	$(PY) -m pytest -q -n 2 --dist loadgroup --timeout=900

test-fast: install
	$(PY) -m pytest -q -m "not slow and not browser"

# The classroom: `make demo` (this machine), `make demo HOST=0.0.0.0 STUDENTS=40` (a room on a trusted network).
STUDENTS ?= 30
demo: install
	$(PY) -m explainer.classroom --port=$(PORT) --students=$(STUDENTS) $(if $(HOST),--host="$(HOST)") \
		$(if $(MODEL),--model="$(MODEL)")

lint:
	$(PY) -m ruff check explainer tests benchmarks lessons

# Rebuild the paired notebooks from their jupytext sources (lessons/*.py are the truth).
notebooks:
	for f in lessons/[0-9]*.py; do $(PY) -m jupytext --update --to ipynb -o notebooks/$$(basename $${f%.py}).ipynb $$f; done
