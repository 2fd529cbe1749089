# Two entry points: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job: the quick benchmark on both built-in datasets (about 2-3 minutes on 2 CPU cores),
# report (Markdown, PNG plots, CSV) in reports/demo/.
demo: $(STAMP)
	$(BIN)/walloc-features benchmark --preset quick --dataset mnist --dataset speech_commands --out reports/demo

# pytest exits 5 when it collects no test; make treats that (like any failure) as an error.
test: $(STAMP)
	$(BIN)/python -m pytest walloc_features tests

clean:
	rm -rf $(VENV) build *.egg-info
