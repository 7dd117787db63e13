# fanout's everyday commands. `just --list` shows them.

# Run every test (unit and integration).
test:
    cargo test

# Format check and clippy with warnings denied.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# What CI runs.
ci:
    bash .ci/run

# Benchmarks against the peers (xargs, fd -x, GNU parallel, rust-parallel); see bench/README.md.
bench:
    bash bench/run.sh

# Run fanout for real on the bundled dataset.
demo:
    cargo build --release
    ./target/release/fanout -k -e parquet fixtures/dataset -- sh -c 'printf "%s: %s bytes\n" "$1" "$(wc -c < "$1")"' _ {}
    ./target/release/fanout -n -e parquet fixtures/dataset -- cp {} /tmp/{/}

# clippy for both Apple targets (macOS is checked, not run: `rustup target add aarch64-apple-darwin x86_64-apple-darwin` first);
# the default build's ring compiles C for the target with zig's C compiler (.ci/macos-remote.sh).
lint-macos:
    cargo clippy --target aarch64-apple-darwin --all-targets --no-default-features -- -D warnings
    cargo clippy --target x86_64-apple-darwin --all-targets --no-default-features -- -D warnings
    bash .ci/macos-remote.sh

# Records that need no process, and stopping with inputs queued (bench/records/run.sh NEW [OLD]).
bench-records *ARGS:
    bash bench/records/run.sh {{ARGS}}

# Two fanout binaries on the same workloads, in one run (bench/compare/run.sh OLD [NEW]).
bench-compare OLD *NEW:
    bash bench/compare/run.sh {{OLD}} {{NEW}}

# `fanout report` of a 100,000-job run: page size, report time, load in headless Chromium.
bench-report *ARGS:
    bash bench/report/run.sh {{ARGS}}

# The README's screenshot of a report (docs/report.png), from a run over the fixtures.
report-screenshot:
    bash bench/report/screenshot.sh

# A static Linux binary (musl, no shared library) for servers without a Rust toolchain:
# target/ARCH-unknown-linux-musl/release/fanout, to copy anywhere on PATH. ring (the TLS of
# remote datasets) compiles C with musl-gcc (Debian: apt-get install musl-tools).
static:
    rustup target add {{arch()}}-unknown-linux-musl
    CC_{{arch()}}_unknown_linux_musl=musl-gcc cargo build --release --locked --target {{arch()}}-unknown-linux-musl
    @echo target/{{arch()}}-unknown-linux-musl/release/fanout

# The Python wheel that carries the binary (maturin, as `pip install .` builds it) in target/wheels/.
wheel:
    python3 -m pip wheel --no-deps --wheel-dir target/wheels .

# The wheel and the static binary, checked as CI does (installed in a fresh venv, a real run).
package-check:
    bash .ci/package.sh
