# minicontainer: two commands for everything.
#   make demo   set everything up, then run the main job (a busybox container, isolated, narrated)
#               and notebook 1, executed headless into build/notebooks/01-hello-world.html
#   make test   set everything up, then run the tests
# And a third, for the course: make lab (JupyterLab on notebooks/, as the user who typed it).
# Set-up is idempotent and quick when all is there: it installs only what is missing.

PYTHON ?= /usr/bin/python3
VENV   := .venv
# Debian packages the project needs.  python3-venv: the virtual environment; busybox-static: the
# root filesystem of the demo and test containers; runc: the peer the tests compare against;
# docker-registry: the real local registry the image tests pull from; skopeo, umoci: interop peers;
# tini: a minimal init for PID 1; redis-server: the starter redis image is built from it; nftables:
# the `nft` command that loads the bridge networks' NAT and isolation rules; iproute2: `ip`, with
# which the network tests make their "outside" hosts; python3-seccomp:
# libseccomp's own binding, which compiles seccomp profiles (kernel/seccomp.py says why this one and
# how the venv reaches it).
# The course: chromium and chromium-driver let the tests look at the notebooks' pages as a browser
# shows them (and npm, below, fetches the widget renderer for those pages).
APT_PACKAGES := python3 python3-venv busybox-static runc docker-registry skopeo umoci tini redis-server \
                nftables iproute2 python3-seccomp chromium chromium-driver
BENCH_PACKAGES := hyperfine podman
SOURCES := $(shell find minicontainer -name '*.py')

# The JavaScript that draws widgets (progress bars, sliders) in a notebook exported as HTML, from npm,
# so that the pages open offline; pinned (html-manager 1.0.x goes with ipywidgets 8).
WIDGETS_DIR := $(VENV)/share/minicontainer/widgets
WIDGET_PACKAGES := @jupyter-widgets/html-manager@1.0.15 requirejs@2.3.8

.PHONY: demo test bench setup apt group lint clean lab

demo: setup
	$(VENV)/bin/python -m minicontainer.demo
	$(VENV)/bin/python -m minicontainer.course.render notebooks/01-hello-world.ipynb build/notebooks

# JupyterLab on notebooks/, as the user who typed it (under sudo: as $$SUDO_USER, not root): its
# kernel talks to the daemon over the socket, as a member of the group minicontainer.
lab:
	@test -x $(VENV)/bin/jupyter || { echo "run 'sudo make setup' first (it installs JupyterLab into $(VENV))"; exit 1; }
	@if [ -n "$$SUDO_USER" ] && [ "$$(id -u)" = 0 ]; then \
	  exec runuser -u "$$SUDO_USER" -- $(VENV)/bin/jupyter lab --notebook-dir=notebooks; \
	else exec $(VENV)/bin/jupyter lab --notebook-dir=notebooks; fi

test: setup
	$(VENV)/bin/python -m pytest -q

bench: setup
	@$(MAKE) --no-print-directory apt APT_PACKAGES="$(BENCH_PACKAGES)"
	$(VENV)/bin/python benchmarks/bench_runtime.py
	$(VENV)/bin/python benchmarks/bench_exec.py

lint: setup
	$(VENV)/bin/ruff check minicontainer tests benchmarks

setup: apt group $(VENV)/.installed $(VENV)/.compiled $(VENV)/.kernel $(WIDGETS_DIR)/embed-amd.js

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
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --config-settings editable_mode=compat -e '.[dev,notebooks]'
	touch $@

# The notebooks' kernel: the venv's own python, installed into the venv (every user who runs the
# venv's jupyter sees it; the notebooks name it "minicontainer").
$(VENV)/.kernel: $(VENV)/.installed
	$(VENV)/bin/python -m ipykernel install --sys-prefix --name minicontainer --display-name "Python (minicontainer)" >/dev/null
	touch $@

# npm: Debian's package, unless this host has npm already (Node.js's own nodejs package includes it).
$(WIDGETS_DIR)/embed-amd.js:
	@command -v npm >/dev/null || $(MAKE) --no-print-directory apt APT_PACKAGES=npm
	rm -rf $(WIDGETS_DIR).tmp && mkdir -p $(WIDGETS_DIR).tmp
	cd $(WIDGETS_DIR).tmp && npm pack --silent $(WIDGET_PACKAGES) >/dev/null
	tar xzf $(WIDGETS_DIR).tmp/jupyter-widgets-html-manager-*.tgz -C $(WIDGETS_DIR).tmp --strip-components=2 package/dist/embed-amd.js
	tar xzf $(WIDGETS_DIR).tmp/requirejs-*.tgz -C $(WIDGETS_DIR).tmp --strip-components=1 package/require.js
	rm $(WIDGETS_DIR).tmp/*.tgz && rm -rf $(WIDGETS_DIR) && mv $(WIDGETS_DIR).tmp $(WIDGETS_DIR)

# Byte-compile ahead of time: every container start imports the runtime, and compiling it on each
# start (as happens where PYTHONDONTWRITEBYTECODE is set) would cost tens of milliseconds.
$(VENV)/.compiled: $(SOURCES) $(VENV)/.installed
	$(VENV)/bin/python -m compileall -q minicontainer
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +
