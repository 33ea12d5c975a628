#!/bin/sh
# Builds the worker's venv at $1 from the locks, as the image's builder stage does (Dockerfile); the test
# tests/deploy/test_image_venv.py runs this same script, since no Docker engine runs where the tests do.
#
# - Every package comes from requirements/runtime.txt with its hashes (pip refuses anything else), then the
#   streamer wheel without dependencies: the lock alone decides what is installed.
# - The wheel is built by a throwaway venv holding the locked build backend (requirements/build.txt),
#   without build isolation, so no unpinned build dependency is fetched.
# - The venv is made without pip or setuptools and the build venv's pip installs into it (`pip --python`):
#   nothing in the image can install packages at run time.
# Run from the build context's root (the Dockerfile's WORKDIR /src). Needs PyPI or a pip cache (the image sets
# PIP_NO_CACHE_DIR: no cache in its layers).
set -eu
venv=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python -m venv "$work/build"
pip="$work/build/bin/python -m pip --disable-pip-version-check"
$pip install --quiet --require-hashes -r requirements/build.txt
$pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$work/wheels" .

python -m venv --without-pip "$venv"
$pip --python "$venv/bin/python" install --quiet --require-hashes -r requirements/runtime.txt
$pip --python "$venv/bin/python" install --quiet --no-deps "$work"/wheels/streamer-*.whl
