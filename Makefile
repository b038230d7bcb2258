# Two commands for a fresh machine with Python 3.11:
#   make run    -> .venv + everything installed, then the app on the bundled weights
#   make test   -> .venv + everything installed, then the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8501

.PHONY: install run test lint bench mutate clean-venv

# Reinstalls only when a requirements or project file changed since the last install.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --no-cache-dir -q -r requirements-dev.txt
	$(BIN)/python -m pip install --disable-pip-version-check --no-cache-dir -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/streamlit run app.py --server.port $(PORT) --server.headless true

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/pre-commit run --all-files

# Mutation testing (pyproject's [tool.mutmut]): postprocess, render, analysis, metrics, image_io,
# boxes. Results stay in mutants/ (git-ignored); `mutmut browse` shows each survivor.
mutate: $(STAMP)
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

bench: $(STAMP)
	$(BIN)/digit-detector bench --family

clean-venv:
	rm -rf $(VENV)
