# genai.stack: every target works on a fresh machine; the first one that needs the virtualenv
# or the sandbox builds it. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The Python of the virtualenv (ansible, the modules, moto, pytest: most of make test's CPU time).
# The distribution's own python3.11 comes first when it can make a virtualenv: Debian builds it with
# PGO and LTO and without a shared libpython, and on these machines it ran a kube module task in 24%
# less CPU than a python3.11 built from source without them (pyenv's default; README, Tests).
# PYTHON_BOOT=... chooses another. The virtualenv is rebuilt when it changes.
PYTHON_BOOT ?= $(firstword $(foreach p,/usr/bin/python3.11 $(shell command -v python3.11) $(shell command -v python3),\
  $(if $(shell $(p) -c 'import venv, ensurepip' 2>/dev/null && echo ok),$(p))))
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# The sandbox a target works on: .sandbox unless SANDBOX_DIR names another (make test runs some
# suites on a second one, .sandbox-side); sandbox/sandboxctl reads the same variable.
SANDBOX_ENV = $${SANDBOX_DIR:-./.sandbox}/env
# Sourced by every target that talks to the sandbox.
WITH_SANDBOX = set -a; . "$(SANDBOX_ENV)"; set +a; export PATH="$(CURDIR)/$(BIN):$$PATH";
# A suite that needs a known starting state brings the sandbox back to its seed first, whatever
# an earlier demo, suite or interrupted run left in it, and says so (sandbox/sandboxctl reset).
# The reset starts the sandbox too, so these targets do not start it first (that made one start
# and a stop for nothing on a sandbox that was not up).
RESET_FOR = sandbox/sandboxctl reset "$(1)"
# The reliability sandbox's emulator (strict IAM, as every sandbox's) lets the suite's made-up keys
# act as the account root: it attributes each case's AWS calls to its own key (AKIAREL..., BADCASE...).
RELIABILITY_SANDBOX_DIR := $(CURDIR)/.sandbox-reliability
RELIABILITY_SANDBOX = SANDBOX_DIR=$(RELIABILITY_SANDBOX_DIR) SANDBOX_AWS_ROOT_KEYS='testing,AKIAREL*,BADCASE*'
ANSIBLE_TEST_TREE := tests/output/collection/ansible_collections

.PHONY: help venv sandbox sandbox-down sandbox-status sandbox-reset demo teardown demo-fleet teardown-fleet test sanity lint unit integration \
        integration-% integration-side molecule build bench bench-smoke clean docs docs-check install-check alongside reliability reliability-quick site-check demo-check loop-picture

help:
	@echo "make demo          converge site.yml on the sandbox (starts it first)"
	@echo "make teardown      remove what make demo deployed (playbooks/teardown.yml)"
	@echo "make demo-fleet    site.yml on two sandbox clusters, one host each (make teardown-fleet removes it)"
	@echo "make test          sanity, lint, unit and integration tests (what CI runs)"
	@echo "make sandbox       start the local cloud; make sandbox-down stops it and removes its state"
	@echo "make sandbox-reset back to the seeded sandbox (what make test's suites do first)"
	@echo "make bench         benchmarks (not part of make test)"

# The Python the virtualenv was made from (its pyvenv.cfg) and the one it would be made from now.
VENV_MADE_FROM = $(shell sed -n 's/^executable = //p' $(VENV)/pyvenv.cfg 2>/dev/null)
PYTHON_BOOT_REAL = $(shell $(PYTHON_BOOT) -c 'import os, sys; print(os.path.realpath(sys.executable))' 2>/dev/null)
$(VENV)/.stamp: requirements.txt requirements-dev.txt $(if $(filter-out $(PYTHON_BOOT_REAL),$(realpath $(VENV_MADE_FROM))),FORCE)
	@test -n "$(PYTHON_BOOT)" || { echo "no python3.11 or python3 that can make a virtualenv (Debian: apt-get install python3-venv)" >&2; exit 1; }
	rm -rf $(VENV)
	$(PYTHON_BOOT) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

FORCE:

venv: $(VENV)/.stamp

sandbox: venv
	sandbox/sandboxctl up

sandbox-down:
	sandbox/sandboxctl down

sandbox-status:
	sandbox/sandboxctl status

sandbox-reset: venv
	$(call RESET_FOR,make sandbox-reset)

demo: sandbox
	$(WITH_SANDBOX) $(BIN)/ansible-playbook site.yml --diff
	@echo "demo: site.yml converged on the sandbox. Run make demo again and it reports changed=0."
	@echo "demo: to remove what it deployed: make teardown   (to stop the sandbox too: make sandbox-down)"

teardown: sandbox
	$(WITH_SANDBOX) $(BIN)/ansible-playbook playbooks/teardown.yml

# The same site on a fleet: the sandbox grown to two EKS clusters, each with its own API server, and
# inventories/sandbox_fleet (a host per cluster, each connected by genai.stack.eks_connection).
# tests/playbooks/test_fleet.py runs this inventory in make test. Remove it with make teardown-fleet.
demo-fleet: venv
	SANDBOX_EKS_CLUSTERS=2 sandbox/sandboxctl up
	$(WITH_SANDBOX) $(BIN)/ansible-playbook site.yml -i inventories/sandbox_fleet --diff
	@echo "demo-fleet: site.yml converged on both clusters. To remove it: make teardown-fleet"

teardown-fleet: venv
	SANDBOX_EKS_CLUSTERS=2 sandbox/sandboxctl up
	$(WITH_SANDBOX) $(BIN)/ansible-playbook playbooks/teardown.yml -i inventories/sandbox_fleet

# make test runs three streams at once (tests/tools/make-test.sh), since much of a suite's time is
# waiting: the main sandbox's suites (MAIN_SUITES_SANDBOX; site-check, which includes demo-check's
# checks, passes whatever the sandbox holds, a demo or an interrupted earlier run, and every later
# suite resets it); the reliability suite's sandbox (.sandbox-reliability: make alongside, the
# about 140 integration tests marked `alongside` that need only a seeded sandbox, then make
# reliability, then BESIDE_SUITES_AFTER: bench-smoke, since this stream ended first in the cold run
# of 2026-12-07, at 3011 s against 3240 s and 3285 s, while bench-smoke's 439 s ran alone last on
# the main stream); and the checks that need no sandbox (MAIN_SUITES_FIRST) followed by SIDE_SUITES on
# a side sandbox (.sandbox-side, stopped at the end). make integration leaves out what the other
# streams run (INTEGRATION_ALL=0, INTEGRATION_SPLIT=1). Each suite's wall time is printed in a table
# at the end, and when make test is stopped. RELIABILITY_ALONGSIDE=0 runs them all one after the other.
MAIN_SUITES_FIRST := sanity lint unit docs-check
MAIN_SUITES_SANDBOX := site-check integration
SIDE_SUITES := integration-side
BESIDE_SUITES_AFTER := bench-smoke
RELIABILITY_LOG := tests/output/reliability/make-reliability.log
RELIABILITY_ALONGSIDE ?= 1
test: venv
	@MAKE="$(MAKE)" MAIN_SUITES_FIRST="$(MAIN_SUITES_FIRST)" MAIN_SUITES_SANDBOX="$(MAIN_SUITES_SANDBOX)" \
	  SIDE_SUITES="$(SIDE_SUITES)" BESIDE_SUITES_AFTER="$(BESIDE_SUITES_AFTER)" RELIABILITY_SANDBOX_DIR="$(RELIABILITY_SANDBOX_DIR)" RELIABILITY_LOG="$(RELIABILITY_LOG)" RELIABILITY_ALONGSIDE="$(RELIABILITY_ALONGSIDE)" \
	  tests/tools/make-test.sh

# Reference docs generated from the code (antsibull-docs); docs-check fails when they drift.
docs: venv
	tests/docs/build-docs.sh

docs-check: venv
	tests/docs/check-docs.sh
	tests/docs/check-changelog.sh
	tests/docs/check-ee.sh
	tests/docs/check-awx.sh
	tests/docs/check-generated.sh

# The built tarball installs into a clean path; its docs and playbooks load from there (no
# sandbox needed). make site-check runs the site from such an install.
install-check: venv
	tests/docs/check-install.sh

# ansible-test needs the collection under ansible_collections/<ns>/<name> and its dependencies
# beside it; it also downloads get-pip.py from a site this network cannot reach, so the
# project's stand-in is placed in its cache first (see tests/sanity/run-sanity.sh).
sanity: venv
	tests/sanity/run-sanity.sh

lint: venv
	$(BIN)/ansible-lint --profile production

unit: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=10 tests/unit tests/sandbox/unit

# INTEGRATION_ALL=0 leaves out the tests marked `alongside` (make test runs them in make alongside).
# INTEGRATION_SPLIT=1 leaves out what make integration-side runs (make test runs that on a sandbox of
# its own, beside this one): the files in INTEGRATION_SIDE and the integration targets.
INTEGRATION_ALL ?= 1
INTEGRATION_SPLIT ?= 0
# The fleet tests grow their sandbox to two EKS clusters, each with its own API server: the side
# sandbox, so that the main one stays the one-cluster sandbox the other tests expect. test_fleet.py
# converges the whole site.yml on both clusters at once (about 5 min on an idle 2-core host).
INTEGRATION_SIDE := tests/playbooks/test_observability.py tests/sandbox/live/test_fleet_control_planes.py \
  tests/playbooks/test_fleet.py
INTEGRATION_MARKS = $(if $(filter 0,$(INTEGRATION_ALL)),-m 'not alongside')
INTEGRATION_IGNORE = --ignore=tests/playbooks/site $(if $(filter 1,$(INTEGRATION_SPLIT)),$(addprefix --ignore=,$(INTEGRATION_SIDE)))
integration: venv
	$(call RESET_FOR,make integration (its tests converge each stack from the seeded sandbox))
	$(WITH_SANDBOX) tests/charts/lint-charts.sh
	$(WITH_SANDBOX) $(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 $(INTEGRATION_MARKS) tests/sandbox/live \
	  tests/playbooks $(INTEGRATION_IGNORE)
	$(if $(filter 1,$(INTEGRATION_SPLIT)),@echo "integration: the targets and $(INTEGRATION_SIDE) run in make integration-side",$(WITH_SANDBOX) tests/integration/run-targets.sh)

# The part of make integration that make test runs on a second sandbox (SANDBOX_DIR=.sandbox-side)
# while the main one runs the rest: the tests of INTEGRATION_SIDE not marked `alongside`, then the
# integration targets per module.
integration-side: venv
	$(call RESET_FOR,make integration-side (the observability converges and the module targets))
	$(WITH_SANDBOX) $(BIN)/python -m pytest -q -p no:cacheprovider --durations=5 -m 'not alongside' $(INTEGRATION_SIDE)
	$(WITH_SANDBOX) tests/integration/run-targets.sh

# The integration tests marked `alongside` alone, on the reliability suite's sandbox (reset first;
# make reliability resets it again and stops it). make test runs this beside the main suites.
alongside: venv
	$(RELIABILITY_SANDBOX) $(call RESET_FOR,make alongside (the reliability suite's sandbox, seeded))
	set -a; . "$(RELIABILITY_SANDBOX_DIR)/env"; set +a; export PATH="$(CURDIR)/$(BIN):$$PATH"; \
	  $(BIN)/python -m pytest -q -p no:cacheprovider --durations=10 -m alongside tests/sandbox/live tests/playbooks \
	  --ignore=tests/playbooks/site

# site.yml on the sandbox: prepare, converge, idempotence, verify (molecule/default). make test does
# not run it: site-check re-runs the demo's site from the tarball (what the scenario converges, with
# each run's writes counted) and runs the scenario's verify, which saves a whole-site converge.
molecule: venv
	$(call RESET_FOR,make molecule (its prepare step shows site.yml converging from empty))
	$(WITH_SANDBOX) $(BIN)/molecule test

# The whole reliability suite (faults, SIGKILL, outages, least privilege, secrets, bad inputs) on a
# sandbox of its own, since it stops components and counts every request: about 6-8 min on an
# idle machine; part of make test. reliability-quick (bad-input catalogue, safe defaults) runs on
# that sandbox too (its made-up keys need it), without a reset when it is up, for development.
reliability: venv
	$(RELIABILITY_SANDBOX) $(call RESET_FOR,make reliability (a sandbox of its own, fresh for each run))
	set -a; . "$(RELIABILITY_SANDBOX_DIR)/env"; set +a; export PATH="$(CURDIR)/$(BIN):$$PATH"; \
	  $(BIN)/python -m pytest -p no:cacheprovider -rA --durations=15 tests/reliability && rc=0 || rc=$$?; \
	  SANDBOX_DIR=$(RELIABILITY_SANDBOX_DIR) sandbox/sandboxctl down; exit $$rc

reliability-quick: venv
	$(RELIABILITY_SANDBOX) sandbox/sandboxctl up
	set -a; . "$(RELIABILITY_SANDBOX_DIR)/env"; set +a; export PATH="$(CURDIR)/$(BIN):$$PATH"; \
	  $(BIN)/python -m pytest -q -p no:cacheprovider -rA tests/reliability/test_bad_inputs.py tests/reliability/test_safe_defaults.py

# The README's two site commands as users run them, then the collection from its tarball on what they
# made: tests/docs/check-demo.sh --keep (make demo until it converges, once more with changed=0, the
# demo kept), then tests/playbooks/site: the collection built and installed from its tarball into an
# empty path (tests/docs/check-install.sh, as make install-check), and from there, on the demo's site,
# genai.stack.site (what the scenario converges) with no change and no write, molecule/default's
# verify, check mode with no change and the teardown previewed; then the README's teardown command
# as make demo printed it (it must write and leave nothing behind) and check mode on the cluster
# without the site. No reset: it starts from the sandbox as found, as demo-check does; make test runs
# this instead of demo-check, which converges the whole site from empty once instead of twice (about
# 10 of CI's minutes).
site-check: sandbox
	tests/docs/check-demo.sh --keep
	$(WITH_SANDBOX) $(BIN)/python -m pytest -q -p no:cacheprovider -rA tests/playbooks/site

# The README's first command as a newcomer runs it, on the sandbox as found (after .ci/run's own
# make demo, the demo is there): make demo until it converges, then once more, which must report
# changed=0 and say how to tear down; then that teardown command.
demo-check: sandbox
	tests/docs/check-demo.sh

# A smoke run of the benchmark harness so it cannot rot (the benchmarks themselves: make bench).
bench-smoke: venv
	$(call RESET_FOR,make bench-smoke)
	$(WITH_SANDBOX) $(BIN)/python -m pytest -q -p no:cacheprovider --durations=5 tests/bench

# The picture of the GPU scaling loop in docs/stacks/cluster_gpu.md, from a real run of the loop
# test on the sandbox (tests/playbooks/test_cluster_gpu_loop.py) with the clock at 15x for finer
# samples (about 5 min with the reset). The run's timeline is kept beside the picture, and docs-check redraws
# the picture from it (tests/docs/check-generated.sh).
LOOP_TIMELINE := tests/output/loop/timeline.jsonl
loop-picture: sandbox
	$(call RESET_FOR,make loop-picture (a fresh account, so the picture is the same run as in CI))
	rm -f $(LOOP_TIMELINE)
	$(WITH_SANDBOX) GENAI_LOOP_SPEED=15 GENAI_LOOP_TIMELINE=$(LOOP_TIMELINE) $(BIN)/python -m pytest -q -p no:cacheprovider \
	  tests/playbooks/test_cluster_gpu_loop.py
	cp $(LOOP_TIMELINE) docs/stacks/cluster_gpu-loop.timeline.jsonl
	$(BIN)/python sandbox/cloudwatch/timeline_svg.py docs/stacks/cluster_gpu-loop.timeline.jsonl docs/stacks/cluster_gpu-loop.svg

integration-%: sandbox
	$(WITH_SANDBOX) tests/integration/run-targets.sh $*

build: venv
	$(BIN)/ansible-galaxy collection build --force --output-path tests/output/dist .

# Starts and stops its own private 16-cluster sandbox; awscli and matplotlib go into a bench-only
# venv under ~/.cache/genai-stack (awscli brings its own botocore).
bench: venv
	$(BIN)/python bench/run.py

clean: sandbox-down
	rm -rf tests/output $(VENV)
