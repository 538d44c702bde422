#!/usr/bin/env bash
# Build llama.cpp's C++ `llama-server` -- the peer `make bench-peer` measures openzoo against -- from the
# llama.cpp sources vendored in the sdist of the llama-cpp-python version openzoo pins, so both run the
# same ggml. Prints the binary's path on stdout (everything else goes to stderr).
#
# The build (about 8 minutes on 2 cores) is cached outside the repository, in
# ${XDG_CACHE_HOME:-~/.cache}/openzoo/llama-server-<version>/, and reused when present. Only the
# `llama-server` target is built, statically linked so that the binary runs without LD_LIBRARY_PATH; no
# source or build script of llama.cpp enters this repository. Nothing is fetched but the sdist (PyPI):
# HTTPS (curl, OpenSSL) is off and the web UI is not downloaded.
#
#     bench/build_llama_server.sh [python]      # python: the interpreter whose pip downloads the sdist
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${1:-$ROOT/.venv/bin/python}
VERSION=$(sed -n 's/^ *"llama-cpp-python==\([^"]*\)".*/\1/p' "$ROOT/pyproject.toml" | head -n 1)
if [ -z "$VERSION" ]; then
    echo "build_llama_server: no pinned llama-cpp-python version in pyproject.toml" >&2
    exit 1
fi
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/openzoo/llama-server-$VERSION
BIN=$CACHE/llama-server
if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
echo "build_llama_server: llama-server from llama-cpp-python $VERSION's sdist into $CACHE (~8 min on 2 cores)" >&2
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    "llama-cpp-python==$VERSION" -d "$WORK" >&2
tar -xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK"
SRC=$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF >&2
cmake --build "$WORK/build" --config Release --target llama-server -j "${JOBS:-2}" >&2
install -m 755 "$WORK/build/bin/llama-server" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"  # atomic: a half-written binary is never taken for a finished build
echo "$BIN"
