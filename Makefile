# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# Start vigie on its embedded defaults: submission on 127.0.0.1:2587 (STARTTLS)
# and 127.0.0.1:2465 (TLS), delivery into a local Maildir, a demo user on first start.
run: $(VENV)/.installed
	$(BIN)/vigie serve

# The whole test suite, with the linters that keep main clean.
test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	$(BIN)/python bench/relay_load.py
	$(BIN)/python bench/patient_data.py
	$(BIN)/python bench/scan.py
	$(BIN)/python bench/sender_auth.py
	$(BIN)/python bench/inbound.py
	$(BIN)/python bench/directory.py
	$(BIN)/python bench/mime_edit.py
	$(BIN)/python bench/quarantine.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
