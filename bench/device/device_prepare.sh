#!/usr/bin/env bash
# Run HERE, once, before the GPU call (needs PyPI, no GPU): puts into folders git ignores
#   bench/device/.whl/            wheels of bench/device/device_wheels.txt for the GPU machine's Python 3.12 (x86-64)
#   bench/device/.device_shared/  what bench/device/gpu_check.py reads from ../shared: the first 60 BSDS500 test
#                                 images and the TAEF2 weights (the GPU machine sees only the repository)
# Then call the device with carry ["bench/device/.whl", "bench/device/.device_shared"] and the command in bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${LATENTOPT_SHARED:-../shared}  # PYTHON: an interpreter with pip (default python3)
exclude=$(git rev-parse --git-path info/exclude)
for d in /bench/device/.whl/ /bench/device/.device_shared/; do grep -qxF "$d" "$exclude" || echo "$d" >>"$exclude"; done
whl=bench/device/.whl
mkdir -p $whl
grep -v '^#' bench/device/device_wheels.txt | grep . | while read -r pkg; do
  ls $whl | grep -qi "^$(echo "${pkg%%==*}" | tr '-' '_')-${pkg##*==}-" && continue
  "${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d $whl "$pkg"
done
dev_shared=bench/device/.device_shared
images=$dev_shared/data/BSR/BSDS500/data/images/test
mkdir -p "$images" $dev_shared/models/taef2
ls "$SHARED/data/BSR/BSDS500/data/images/test/"*.jpg | sort | head -60 | xargs -I{} cp {} "$images/"
cp "$SHARED"/models/taef2/*.pth $dev_shared/models/taef2/
du -sh $whl $dev_shared
