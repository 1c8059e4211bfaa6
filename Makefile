# minicontainer: two commands for everything.
#   make demo   set everything up, then run the main job (a busybox container, isolated, narrated)
#   make test   set everything up, then run the tests
# Set-up is idempotent and quick when all is there: it installs only what is missing.

PYTHON ?= /usr/bin/python3
VENV   := .venv
# Debian packages the project needs.  python3-venv: the virtual environment; busybox-static: the
# root filesystem of the demo and test containers; runc: the peer the tests compare against;
# docker-registry: the real local registry the image tests pull from; skopeo, umoci: interop peers;
# tini: a minimal init for PID 1; redis-server: the starter redis image is built from it;
# python3-seccomp: libseccomp's own binding, which compiles seccomp profiles (kernel/seccomp.py says
# why this one and how the venv reaches it).
APT_PACKAGES := python3 python3-venv busybox-static runc docker-registry skopeo umoci tini redis-server \
                python3-seccomp
BENCH_PACKAGES := hyperfine podman
SOURCES := $(shell find minicontainer -name '*.py')

.PHONY: demo test bench setup apt group lint clean

demo: setup
	$(VENV)/bin/python -m minicontainer.demo

test: setup
	$(VENV)/bin/python -m pytest -q

bench: setup
	@$(MAKE) --no-print-directory apt APT_PACKAGES="$(BENCH_PACKAGES)"
	$(VENV)/bin/python benchmarks/bench_runtime.py

lint: setup
	$(VENV)/bin/ruff check minicontainer tests benchmarks

setup: apt group $(VENV)/.installed $(VENV)/.compiled

# The group whose members may use the daemon's socket (as Debian's docker package adds `docker`):
# `sudo usermod -aG minicontainer $$USER` lets that user's notebooks run containers without root.
group:
	@getent group minicontainer >/dev/null || { [ "$$(id -u)" = 0 ] && groupadd --system minicontainer \
	  && echo "added the group 'minicontainer' (its members may use minicontainerd's socket)"; } \
	  || echo "no group 'minicontainer': as root, groupadd --system minicontainer lets non-root users in"

# Install the Debian packages that are missing (needs root: CI and the demo run as root).
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing -- run as root, or: sudo apt-get install$$missing"; exit 1; fi; \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The package, editable ("compat" mode: a plain path in a .pth file, cheap at start-up), with the
# dev tools.
$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --config-settings editable_mode=compat -e '.[dev]'
	touch $@

# Byte-compile ahead of time: every container start imports the runtime, and compiling it on each
# start (as happens where PYTHONDONTWRITEBYTECODE is set) would cost tens of milliseconds.
$(VENV)/.compiled: $(SOURCES) $(VENV)/.installed
	$(VENV)/bin/python -m compileall -q minicontainer
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +
