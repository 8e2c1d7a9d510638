#!/usr/bin/env bash
# Re-creates the committed seed corpus, fuzz/corpus/<target>/, from ../corpus (golden messages and the
# real captures). Deterministic; run it after the corpus or the input formats in src/format.rs change.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf corpus
cargo run --quiet --release --example seed
du -sh corpus
