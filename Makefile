# One command each on a fresh machine: `make tour`, `make test`, `make bench`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Installed first and alone: the CPU wheel is on disk; an open torch range on an empty venv
# would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: tour test bench lint data clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.torch
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@ $(VENV)/.installed

# Fashion-MNIST comes from Debian; tests that need it skip cleanly when it cannot be installed.
data:
	@if [ ! -d $(FASHION_MNIST) ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing dataset-fashion-mnist"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	  || echo "warning: dataset-fashion-mnist not installed; tests that need it will skip"; \
	fi

tour: $(VENV)/.installed
	$(BIN)/probforge tour

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check probforge samplers pgm generative tests examples bench
	$(BIN)/mypy probforge samplers pgm generative

# pytest exits 5 when it collected no tests; make treats that as the failure it is.
test: $(VENV)/.installed-dev data lint
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-dev
	@set -e; for f in bench/[!_]*.py; do echo "== $$f"; $(BIN)/python $$f --quick; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
