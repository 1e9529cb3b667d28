#!/bin/bash
# Fetches and unpacks Debian's crun source package (bookworm: 1.8.1) into CACHE and builds
# its static test init; prints the source directory. Like the guest kit's kernel, the
# suite is fetched at test time and never copied into doppel.
set -eu
cache=$1
mkdir -p "$cache"
cd "$cache"
if [ ! -d crun/tests ]; then
  if ! ls crun_*.dsc >/dev/null 2>&1; then
    if ! apt-get source --download-only crun >apt-source.log 2>&1; then
      echo "SKIP: apt-get source crun failed (deb-src for bookworm configured?); see $cache/apt-source.log" >&2
      exit 77
    fi
  fi
  rm -rf crun.tmp
  dpkg-source -x crun_*.dsc crun.tmp >/dev/null 2>&1
  mv crun.tmp crun
fi
if [ ! -x init ]; then
  mkdir -p init-build
  : > init-build/config.h
  gcc -static -I init-build crun/tests/init.c -o init.tmp
  mv init.tmp init
fi
echo "$cache/crun"
