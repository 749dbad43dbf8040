#!/usr/bin/env bash
# Trains the embedded model from scratch and writes model/weights/: the corpus is the doc
# comments of the Go standard library (see corpus/main.go and model/weights/NOTICE). Needs
# Debian's python3-torch and an optimised BLAS, which this script installs. Not part of CI:
# about 12 minutes on 2 cores. STEPS (default 2500) sets the training length.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch
fi
# Debian's torch uses the libblas alternative; the reference BLAS is about 9x slower.
dpkg -s libopenblas0-pthread >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q libopenblas0-pthread
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go run ./model/train/corpus > "$work/corpus.txt"
STEPS=${STEPS:-2500} /usr/bin/python3 model/train/train.py "$work/corpus.txt" "$work/out"
cp "$work/out/model.bin" "$work/out/tokenizer.bin" "$work/out/reference.txt" model/weights/
sha256sum model/weights/model.bin model/weights/tokenizer.bin
echo "Now set model.EmbeddedHash (model/weights.go) to the first 16 hex digits of model.bin's SHA-256."
