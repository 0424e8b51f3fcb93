#!/usr/bin/env bash
# Run HERE (the CPU machine, repository root) right before each GPU check: fills .gpu/ (git-ignored
# through .git/info/exclude) with what the GPU machine lacks and cannot download, ~37 MB in all:
#   .gpu/wheels/    trainlab's runtime dependencies missing from that machine's image (pydantic,
#                   optuna, plotly, mnist1d and their own needs), as Python 3.12 x86-64 wheels, in
#                   the versions installed in this checkout's .venv
#   .gpu/datasets/  the CIFAR-10 JPEG tars from ../shared/datasets (../shared does not travel)
#   .gpu/commit     the commit being checked, "-dirty" when the tree has uncommitted changes (the copy
#                   sent there may hold a stale .git, so benchmarks/evidence.py takes this one; the working
#                   tree travels as it is)
# Then run benchmarks/gpu/check.sh there with the `device` tool (carry [".gpu"]); see the GPU section
# of benchmarks/README.md. Needs the package registry (pip download) and .venv (make .venv/.installed).
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=.gpu
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf "$KIT/wheels"
mkdir -p "$KIT/wheels" "$KIT/datasets"

# missing from the GPU image (/work/.library/device/KINDS.md lists what it has), pinned to this .venv's
# versions; typing_extensions travels too: pydantic 2.14 needs a newer one than the image may hold
PACKAGES="pydantic pydantic_core annotated-types typing-inspection typing_extensions optuna alembic SQLAlchemy
Mako colorlog greenlet plotly mnist1d"
pins=()
for name in $PACKAGES; do
    version=$(.venv/bin/python -m pip show "$name" 2>/dev/null | awk '/^Version:/ {print $2}')
    if [ -z "$version" ]; then
        echo "error: $name is not installed in .venv (run: make .venv/.installed)" >&2
        exit 2
    fi
    pins+=("$name==$version")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
    -d "$KIT/wheels" "${pins[@]}"

for part in train test; do
    cp -u "../shared/datasets/cifar10-jpg/$part.tar.gz" "$KIT/datasets/"
done
git describe --always --dirty --abbrev=40 > "$KIT/commit"
du -sh "$KIT"
echo "ready: call the device tool with carry [\".gpu\"], timeout_s 480, command 'bash benchmarks/gpu/check.sh'"
