# The two commands that work on a fresh machine (as root):
#   make demo   installs what is missing, builds, and runs the lab demo
#   make test   installs what is missing and runs every test
.PHONY: demo test deps build console bench clean-labs

deps:
	bash scripts/install-deps.sh

build: deps
	cargo build --release

console: deps
	bash scripts/build-console.sh

demo: build console
	bash scripts/demo.sh

test: deps console
	bash scripts/test.sh

bench: build console
	bash bench/run.sh

clean-labs:
	bash scripts/clean-labs.sh
