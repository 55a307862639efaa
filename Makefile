# Two entry points on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install preview clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/binmark demo

preview: $(STAMP)
	$(BIN)/binmark data preview face --out preview_face.png
	$(BIN)/binmark data preview pose --out preview_pose.png

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
