# EndoSpine: `make run` opens the app on the shipped demo, `make test` runs the test suite.
# Both create .venv and install the package (with test extras) the first time, then stay quiet.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.endospine-installed

.PHONY: run test setup demo clips sbom clean
.DEFAULT_GOAL := run

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 12) else "EndoSpine needs Python 3.10-3.12, found %d.%d (set PYTHON=python3.11)" % v)'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing EndoSpine and its dependencies into $(VENV) (first run only; log: $(VENV)/install.log)"
	@( $(BIN)/python -m pip install --disable-pip-version-check --upgrade pip && \
	   $(BIN)/python -m pip install --disable-pip-version-check -e '.[test]' ) > $(VENV)/install.log 2>&1 \
	   || { tail -n 30 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log"; exit 1; }
	@touch $@

run: $(STAMP)
	@$(BIN)/endospine run

test: $(STAMP)
	@QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

# Regenerate the shipped demo video (fixed seed; see README).
demo: $(STAMP)
	$(BIN)/endospine-model synth --out build/demo-labels --video assets/demo.mp4 \
		--resolution 1920x1080 --fps 30 --frames 720 --seed 2056 --crf 26

# The 1080p60 and 4K30 clips of the README's "4K and 60 fps" table (fixed seeds; not shipped).
# `endospine bench build/clip-1080p60.mp4` and `endospine bench build/clip-4k30.mp4` measure them.
clips: build/clip-1080p60.mp4 build/clip-4k30.mp4

build/clip-1080p60.mp4: | $(STAMP)
	$(BIN)/endospine-model synth --out build/clip-1080p60-labels --video $@ \
		--resolution 1920x1080 --fps 60 --frames 600 --seed 2056 --crf 26

build/clip-4k30.mp4: | $(STAMP)
	$(BIN)/endospine-model synth --out build/clip-4k30-labels --video $@ \
		--resolution 3840x2160 --fps 30 --frames 300 --seed 2056 --crf 26

# Software bill of materials of the installed environment (CycloneDX JSON).
sbom: $(STAMP)
	$(BIN)/python -m models.sbom --out build/sbom.json

clean:
	rm -rf $(VENV) build .pytest_cache
