# The two commands a newcomer needs: `make demo` and `make test`. Both install first.
# `make test` skips the tests marked slow (pyproject.toml); `make test-all` runs every test (CI).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# A prebuilt mmcv wheel beside the checkout is used as a cache; without it mmcv is compiled here.
WHEELS := $(wildcard ../shared/wheels)
FIND_LINKS := $(if $(WHEELS),--find-links $(abspath $(WHEELS)),)
STAMP  := $(VENV)/.installed

# TORCH=system: install into the active Python ($(PYTHON)) and its own torch, no venv, never
# touching torch or torchvision (tools/wheelhouse.py install; supported: torch 2.11 to 2.13);
# WHEELHOUSE=dir: offline, from a folder made by `tools/wheelhouse.py build` (docs/gpu.md).
TORCH      ?= venv
WHEELHOUSE ?=
SYSTEM     := $(filter system,$(TORCH))
$(if $(filter-out venv system,$(TORCH)),$(error TORCH must be venv or system, got '$(TORCH)'))
$(if $(and $(WHEELHOUSE),$(if $(SYSTEM),,1)),$(error WHEELHOUSE needs TORCH=system))

.PHONY: install demo cifar-demo test test-all lint bench clean cuda-build-check

ifeq ($(SYSTEM),system)
install:
	$(PYTHON) tools/wheelhouse.py install $(WHEELHOUSE)
else
# mmcv with CPU ops, or with CUDA ops when torch sees a GPU or FORCE_CUDA=1 (tools/install_mmcv.py
# picks the compiler: a system nvcc matching torch's CUDA, else the registry's pinned one). The
# check after the stamp rebuilds an mmcv that does not fit, e.g. `FORCE_CUDA=1 make install`
# after a CPU install; when it fits it does nothing.
install: $(STAMP)
	@$(BIN)/python tools/install_mmcv.py --ensure $(FIND_LINKS)
endif

$(STAMP): requirements.txt pyproject.toml tools/install_mmcv.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	$(PIP) install -q "torch==2.13.0,!=2.13.0+cpu" "torchvision==0.28.0"
	$(PIP) install -q "setuptools>=77,<82" wheel ninja
	$(BIN)/python tools/install_mmcv.py --ensure $(FIND_LINKS)
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import mmcv.ops, mmdet, mmengine, torch; print('installed: torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__, '| mmengine', mmengine.__version__)"
	touch $(STAMP)

PY        := $(if $(SYSTEM),$(PYTHON),$(abspath $(BIN))/python)
# SEED=1 (any other seed) trains every backbone and detector again, into work_dirs/demo-seed1,
# on the same data: the run-to-run noise. tools/summarize.py on both folders gives mean +- std.
SEED      ?= 0
DEMO      := work_dirs/demo$(if $(filter-out 0,$(SEED)),-seed$(SEED),)
DEMO_ROWS ?= random_init baseline dense_distill
# make demo ends by checking its table: each pretrained row must beat random_init by these
# points (x100); a miss fails make demo (error: line, exit 1). DEMO_REQUIRED=baseline (rows, comma-
# separated) turns the misses of the other rows into warning: lines, e.g. for a row of your own.
DEMO_MARGIN   ?= voc07_mAP=10,coco_AP=5
DEMO_REQUIRED ?=
export PATH := $(if $(SYSTEM),,$(abspath $(BIN)):)$(PATH)
export PYTHONUNBUFFERED := 1

# The main job, on the embedded demo data, on CPU: data -> pretrain -> export -> robustness,
# calibration and OOD evaluation of each pretrained classifier (held-out shapes as the OOD set)
# -> Faster R-CNN on demo VOC and demo COCO -> test -> results table, plots and training curves.
demo: install
	$(PY) tools/make_demo_data.py --out data/demo
	set -e; for method in $(filter-out random_init,$(DEMO_ROWS)); do \
	    $(PY) pretrain/train.py --method $$method --demo --seed $(SEED) --work-dir $(DEMO)/pretrain/$$method; \
	done
	set -e; for method in $(filter-out random_init,$(DEMO_ROWS)); do \
	    $(PY) tools/evaluate.py "$$(cat $(DEMO)/pretrain/$$method/last_checkpoint)" --size 64 --resize 64 \
	        --data-root data/demo/cls --ood-root data/demo/cls/ood --work-dir $(DEMO)/det/$$method/eval; \
	done
	set -e; for row in $(DEMO_ROWS); do \
	    if [ $$row = random_init ]; then bb=none; else bb=$(DEMO)/pretrain/$$row/backbone.pth; fi; \
	    for ds in voc coco; do \
	        wd=$(DEMO)/det/$$row/$$ds; \
	        $(PY) tools/train.py configs/demo/faster_rcnn_$$ds.py --backbone $$bb --work-dir $$wd \
	            --cfg-options randomness.seed=$(SEED); \
	        $(PY) tools/test.py configs/demo/faster_rcnn_$$ds.py "$$(cat $$wd/last_checkpoint)" --work-dir $$wd; \
	    done; \
	done
	$(PY) tools/summarize.py $(DEMO)/det --out $(DEMO)/results --curves \
	    --title "Embedded synthetic demo data, 2-core CPU (not ImageNet/VOC/COCO), seed $(SEED)" \
	    --check-margin $(DEMO_MARGIN) $(if $(DEMO_REQUIRED),--required-rows $(DEMO_REQUIRED),)

# The paper's CIFAR pipeline on CPU, in about 10 minutes: synthetic CIFAR-10 in the official
# pickle layout -> every method trains configs/demo/cifar10_synthetic.py (PreActResNet-18 at
# 1/8 width) -> evaluate (FGSM/PGD, ECE, OOD on held-out shapes) and analyze (alignment,
# uniformity) -> the Table 1-style table. Runs land in $(CIFAR_DEMO)/cifar10_synthetic/
# <method>/seed<SEED>; `make cifar-demo SEED=1` adds a seed and the table shows mean +- std.
# untrained: the initial weights (one step at lr 0), the chance-level reference of the check.
CIFAR_DEMO         := work_dirs/cifar-demo
CIFAR_DEMO_DATA    := data/demo/cifar10
CIFAR_DEMO_METHODS ?= baseline mixup cutmix manifold_mixup multimix dense distill dense_distill
CIFAR_DEMO_MARGIN  ?= top1=20,pgd_err=10
CIFAR_DEMO_RUN      = $(CIFAR_DEMO)/cifar10_synthetic/$(1)/seed$(SEED)
cifar-demo: install
	$(PY) tools/make_demo_data.py --layout cifar10 --out $(CIFAR_DEMO_DATA) --seed 0
	$(PY) pretrain/train.py --method baseline --config configs/demo/cifar10_synthetic.py \
	    --seed $(SEED) --max-iters 1 --cfg-options optim_wrapper.optimizer.lr=0 \
	    --work-dir $(call CIFAR_DEMO_RUN,untrained)
	set -e; for method in $(CIFAR_DEMO_METHODS); do \
	    $(PY) pretrain/train.py --method $$method --config configs/demo/cifar10_synthetic.py \
	        --seed $(SEED) --work-dir $(call CIFAR_DEMO_RUN,$$method); \
	done
	set -e; for row in untrained $(CIFAR_DEMO_METHODS); do \
	    wd=$(call CIFAR_DEMO_RUN,$$row); \
	    $(PY) tools/evaluate.py "$$(cat $$wd/last_checkpoint)" --data-root $(CIFAR_DEMO_DATA) \
	        --ood-root $(CIFAR_DEMO_DATA)/ood --work-dir $$wd/eval; \
	    $(PY) tools/analyze_embeddings.py "$$(cat $$wd/last_checkpoint)" \
	        --data-root $(CIFAR_DEMO_DATA) --out-dir $$wd/embeddings; \
	done
	$(PY) tools/summarize.py --classification $(CIFAR_DEMO) --out $(CIFAR_DEMO)/results \
	    --title "Synthetic CIFAR-10 (not CIFAR), PreActResNet-18 at 1/8 width, 8 epochs, 2-core CPU" \
	    --check-margin $(CIFAR_DEMO_MARGIN) --reference untrained

# The fast default: every test but those marked slow (real training jobs, several processes, costly
# CLI checks; docs/testing.md). test-all: the whole suite, what CI runs (.ci/run).
test: install
	$(PY) -m pytest -q -m "not slow"

test-all: install
	$(PY) -m pytest -q

lint: install
	$(BIN)/ruff check mmtransfer pretrain tools tests benchmarks

bench: install
	$(PY) benchmarks/bench_train_step.py --device cpu --arch resnet18 --size 64 --m 128 --n 1000 --classes 100 --json $(DEMO)/bench_train_step.json

# Proves the CUDA build of `make install` on a machine without a GPU, in a scratch clone of HEAD:
# `make cuda-build-check TOOLCHAIN=system` (the toolkit found on this machine) or
# `TOOLCHAIN=pip` (the registry's compiler, as if none were installed). About 20 min on 2 cores
# each; never part of `make test`.
TOOLCHAIN ?= auto
cuda-build-check:
	tools/check_cuda_build.sh $(TOOLCHAIN)

clean:
	rm -rf work_dirs data/demo
