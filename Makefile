# The README's two commands are `make run` and `make test`; everything else is a helper.
PY := .venv/bin/python
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONWARNINGS := ignore::FutureWarning

.PHONY: setup run test test-all e2e lint bench lock clean

setup:
	@bash scripts/setup.sh

run: setup
	$(PY) -m pipeline run $(ARGS)

test: setup
	$(PY) -m pytest -q $(ARGS)

test-all: setup
	$(PY) -m pytest -q -m "" $(ARGS)

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) -m benchmarks.run_all

lock:
	uv pip compile pyproject.toml --extra dev --python .venv/bin/python --no-header -o requirements.lock
	sed -i "1i # Exact pins of every dependency (Python 3.10). Regenerate with make lock." requirements.lock

clean:
	rm -rf .venv build *.egg-info
