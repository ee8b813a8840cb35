# The two commands a newcomer needs are `make demo` and `make test`; both
# set up what they need (a pinned moto server in .venv) on first use. While
# working, `make check` runs every test in a fraction of `make test`'s time.

VENV      := .venv
PYTHON    ?= python3
STAMP     := $(VENV)/.installed
CARGO     ?= cargo

.PHONY: all demo dev check test venv nextest fmt fmt-check lint cargo-test infra-check package hang-check bench coldstart clean-venv

all: test

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $(STAMP)

## venv: the project virtualenv with moto, the AWS CLI, checkov and cargo-lambda
venv: $(STAMP)

## demo: start a local AWS endpoint, run the story, exit 0. outboxctl is
## built on its own, so it is the SRE binary as shipped, not one with the
## local stack's features unified in.
demo: venv
	$(CARGO) build --quiet -p outboxctl
	$(CARGO) run --quiet -p local-stack -- demo

## dev: keep the local stack up on 127.0.0.1:9000 until Ctrl-C; `make dev
## DEV_ARGS=--strict` puts the strict AWS layer in front of moto
dev: venv
	$(CARGO) run --quiet -p local-stack -- dev $(DEV_ARGS)

## check: the inner loop: fmt, clippy -D warnings, every unit, property and
## integration test (on one moto server it starts and stops) and doc tests
check: fmt-check lint cargo-test

## test: every check CI runs: `make check`, checkov and the Lambda packages
test: check infra-check package

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The version .config/nextest.toml requires, so the two cannot disagree.
NEXTEST_VERSION := $(shell sed -n 's/^nextest-version = { required = "\(.*\)" }$$/\1/p' .config/nextest.toml)

## nextest: cargo-nextest, installed (locked) if this machine has none
nextest:
	@$(CARGO) nextest --version >/dev/null 2>&1 || { \
	  echo "cargo-nextest is missing: installing $(NEXTEST_VERSION) (cargo install --locked cargo-nextest@$(NEXTEST_VERSION))"; \
	  $(CARGO) install --locked cargo-nextest@$(NEXTEST_VERSION); }

## cargo-test: the doc tests, which nextest does not run, then every test
## under nextest (.config/nextest.toml bounds each one), sharing one moto
## server from .venv; nextest's summary is the run's last word
cargo-test: venv nextest
	$(CARGO) test --workspace --doc
	tests/with-moto.sh $(CARGO) nextest run --workspace

## infra-check: checkov offline over infra/terraform, zero failed checks
infra-check: venv
	bash infra/checkov.sh

LAMBDAS := auth-exchange outbox-relay user-profile

## package: the arm64 Lambda zips Terraform deploys, target/lambda/<fn>/bootstrap.zip.
## One build per package: built together, cargo would unify the features
## of all three (and of anything else selected) into each.
package: venv
	rustup target add aarch64-unknown-linux-gnu
	for fn in $(LAMBDAS); do \
	  PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --release --arm64 --output-format zip -p $$fn || exit 1; \
	done
	$(PYTHON) infra/check-packages.py --self-test
	$(PYTHON) infra/check-packages.py

BENCH_ARGS := -- --warm-up-time 1 --measurement-time 3

## bench: criterion benchmarks of the hot paths (figures go in the README),
## each package on its own so no other package's features unify in
bench:
	$(CARGO) bench -p auth-exchange --bench verify $(BENCH_ARGS)
	$(CARGO) bench -p outbox-relay --bench relay $(BENCH_ARGS)
	$(CARGO) bench -p user-profile --bench profile $(BENCH_ARGS)

## coldstart: time to ready and peak RSS of each release binary against a local
## Runtime API, each built on its own as `make package` builds it
coldstart:
	for fn in $(LAMBDAS); do $(CARGO) build --release -p $$fn || exit 1; done
	$(PYTHON) bench/coldstart.py target/release 20

clean-venv:
	rm -rf $(VENV)

## hang-check: prove .config/nextest.toml ends a hanging test (about 2 min)
hang-check: nextest
	bash tests/hang-check.sh
