# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# the three convolution-kernel sets the numerics must hold on (DESIGN.md §2b); `make test-numerics` runs each
ISA_AVX2 := ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
ISA_SSE41 := ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default

.PHONY: demo test test-under-load test-numerics test-numerics-quick lab app bench bench-ui bench-gpu bench-scaling \
	docs docs-serve notebooks readme-figure lock clean calibrations check-calibrations

# the exact versions of requirements.lock, then the package itself without resolving anything again
$(STAMP): $(LOCK) pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/plqa explain --sample astronaut --out results/demo

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# the whole suite with one CPU-bound process per core beside it: no verdict may follow the machine's load
test-under-load: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python scripts/under_load.py -- $(BIN)/python -m pytest -q

# the whole suite on the default kernels, then on AVX2 and on SSE4.1 ones: verdicts must not follow the CPU
test-numerics: $(STAMP)
	$(BIN)/python -m pytest -q
	$(ISA_AVX2) $(BIN)/python -m pytest -q
	$(ISA_SSE41) $(BIN)/python -m pytest -q

# the numerics-sensitive tests only, on SSE4.1 kernels (what .ci/run adds to `make test`)
test-numerics-quick: $(STAMP)
	$(ISA_SSE41) $(BIN)/python -m pytest -q -m numerics

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# the tutorial and ICAO explorers as a page without code (Voilà) on 127.0.0.1; open the address it prints
app: $(STAMP)
	$(BIN)/plqa app

bench: $(STAMP)
	$(BIN)/plqa bench --json results/bench.json

# page latency: the browser test (tests/browser, about 6 min) records its timings, then a table of them against the
# goals (docs/results/benchmark.md, "Page latency"); the table is made even when a check failed, which fails the target
UI_TIMINGS := results/ui_timings.json
bench-ui: $(STAMP)
	rm -f $(UI_TIMINGS)
	PLQA_UI_TIMINGS=$(UI_TIMINGS) $(BIN)/python -m pytest tests/browser -q; status=$$?; \
		$(BIN)/plqa bench --ui $(UI_TIMINGS) && exit $$status

# the GPU rows of the benchmark, on a machine with CUDA: the FaceNet-size network (random weights: timing only) and
# the shipped dlib-resnet, batch sizes up to 512
bench-gpu: $(STAMP)
	$(BIN)/plqa bench --device cuda --backbone facenet-random --json results/bench_gpu_facenet.json
	$(BIN)/plqa bench --device cuda --json results/bench_gpu_dlib.json

# end to end: `plqa explain` serially and on 1 and 2 workers, three rounds in turn, over the 102 London neutral photos
# four times under other names (408 files; docs/results/benchmark.md, "End to end and on several workers"): hard
# links where the filesystem allows, else copies (the file walk counts symbolic links to one file once)
SCALING_INPUT := results/bench-scaling-input
bench-scaling: $(STAMP)
	rm -rf $(SCALING_INPUT)
	for c in a b c d; do mkdir -p $(SCALING_INPUT)/$$c && { ln $(FACES)/london/neutral/*.jpg $(SCALING_INPUT)/$$c/ \
		2>/dev/null || cp $(FACES)/london/neutral/*.jpg $(SCALING_INPUT)/$$c/; } || exit 1; done
	$(BIN)/plqa bench --scaling $(SCALING_INPUT) --max-workers 2 --rounds 3 --scaling-out results/bench-scaling \
		--json results/bench_scaling.json

# the documentation site (mkdocs.yml, docs/) into site/; --strict: a broken link or a missing page fails
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# the same site served on 127.0.0.1:8000, rebuilt on every change
docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# write notebooks/*.ipynb again from the cell texts of scripts/make_notebooks.py (clean, without outputs)
notebooks: $(STAMP)
	$(BIN)/python scripts/make_notebooks.py

# the README's first picture, docs/figures/explain.png (needs the London photos: PLQA_FACES or ../shared/faces)
FACES ?= $(or $(PLQA_FACES),../shared/faces)
readme-figure: $(STAMP)
	$(BIN)/python scripts/render_readme_explain.py $(FACES)/london/neutral/001.jpg \
		--reference $(FACES)/london/smiling/001.jpg

# refresh the lock: resolve the loose ranges of pyproject.toml in a scratch venv and record every version
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip
	.lock-venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	.lock-venv/bin/pip install -q ".[dev,notebooks,docs]"
	( echo "# Exact versions that \`make\` installs (refresh: \`make lock\`); loose ranges live in pyproject.toml."; \
	  .lock-venv/bin/pip freeze --exclude plqa_nb --exclude pip ) > $(LOCK)
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) results site

# the calibration bundles shipped for the built-in networks: `plqa calibrate` on the London *smiling* photos (the
# neutral ones stay held out), on MTCNN's crops (the default detector's crops move Q̂ about as much as a one-pixel
# shift of the photo does, see docs/results/verification.md#detectors). `make calibrations` refits and writes them;
# `make check-calibrations` refits and compares with the shipped files, writing nothing.

DEV_PHOTOS := $(FACES)/london/smiling
LONDON := photos: Face Research Lab London Set, smiling, CC BY 4.0, DeBruine & Jones 2017
CALIBRATE = $(BIN)/plqa calibrate $(DEV_PHOTOS) --detector mtcnn --note "$(LONDON)" --overwrite
calibrations check-calibrations: $(STAMP)
	$(CALIBRATE) --backbone dlib-resnet --estimators utility ers serfiq faceqan:26 \
		--out plqa_nb/shipped/dlib-resnet.json $(if $(findstring check,$@),--check)
	$(CALIBRATE) --backbone sface --estimators utility ers serfiq faceqan:12 \
		--out plqa_nb/shipped/sface.json $(if $(findstring check,$@),--check)
