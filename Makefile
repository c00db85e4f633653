# labvirt: the commands a developer and CI use. Every target installs what it needs first.
VENV := .venv
LABVIRT := $(VENV)/bin/labvirt
PYTEST := $(VENV)/bin/python -m pytest
# the demo's own simulated host and state, so it never touches a user's labs
DEMO_ENV := LABVIRT_STATE_DIR=$(CURDIR)/out/demo-state

.PHONY: setup setup-test demo test test-fast bench fresh-check clean

setup:
	@scripts/setup

setup-test:
	@scripts/setup --test

# The main job on the built-in simulator: check the (simulated) host, bring the standard lab up
# (building its golden image), snapshot it, give a class of 3 students their copies, clean up.
# No KVM host needed; a state directory of its own, so it never touches a user's labs.
demo: setup
	@rm -rf out/demo-state
	$(DEMO_ENV) $(LABVIRT) check -c sim
	$(DEMO_ENV) $(LABVIRT) plan -c sim
	$(DEMO_ENV) $(LABVIRT) up -c sim
	$(DEMO_ENV) $(LABVIRT) up -c sim
	$(DEMO_ENV) $(LABVIRT) snapshot pre-packstack -c sim
	$(DEMO_ENV) $(LABVIRT) status -c sim
	$(DEMO_ENV) $(LABVIRT) packstack answers -c sim
	$(DEMO_ENV) $(LABVIRT) class up --students 3 -c sim
	$(DEMO_ENV) $(LABVIRT) class status -c sim
	$(DEMO_ENV) $(LABVIRT) class destroy -c sim
	$(DEMO_ENV) $(LABVIRT) destroy -c sim

# Everything, including the real-daemon tests (starts libvirtd itself when root).
test: setup-test
	@if [ "$$(id -u)" -eq 0 ]; then scripts/libvirtd-up >/dev/null; fi
	$(PYTEST)

# Without a daemon or virt-builder: the pure core, the simulator and the CLI.
test-fast: setup
	$(PYTEST) -m "not daemon and not slow"

bench: setup-test
	@if [ "$$(id -u)" -eq 0 ]; then scripts/libvirtd-up >/dev/null; fi
	$(VENV)/bin/python bench/run.py
	$(VENV)/bin/python bench/bench_disks.py
	$(VENV)/bin/python bench/bench_class.py
	$(VENV)/bin/python bench/bench_rebuild.py
	$(VENV)/bin/python bench/bench_fixed_cost.py

# Proof that a fresh Debian 12 machine passes `make test` on the first run: a clean root
# (mmdebstrap), set up with network, tested in a network namespace with no uplink. Root; about an hour.
fresh-check:
	scripts/fresh-machine-check

clean:
	rm -rf out .pytest_cache
