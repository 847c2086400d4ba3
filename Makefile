# The README's two commands: `make demo` (main job) and `make test` (lint + test suite).
# Both first run the idempotent set-up (tools/setup_env.sh -> .venv/).
PYTHON := .venv/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: setup demo lint test test-quick
setup:
	bash tools/setup_env.sh

demo: setup
	$(PYTHON) tools/demo.py

lint: setup
	$(PYTHON) -m ruff check .

test: lint
	$(PYTHON) -m pytest tests -n 2

# The quick loop while developing: no subprocess end-to-end runs.
test-quick: setup
	$(PYTHON) -m pytest tests -m "not slow"
