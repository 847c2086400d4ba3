# The README's two commands: `make demo` (main job) and `make test` (test suite).
# Both first run the idempotent set-up (tools/setup_env.sh -> .venv/).
PYTHON := .venv/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test
setup:
	bash tools/setup_env.sh

demo: setup
	$(PYTHON) tools/demo.py

test: setup
	$(PYTHON) -m pytest tests
