#!/usr/bin/env bash
# Builds jpki-cli 0.4.3 (an independent JPKI client, used by tests/reader.rs as a judge of the virtual
# card) once, into ~/.cache/jpki-face/jpki-cli; later runs find it there and return at once.
# Prints the binary's path.
set -euo pipefail
version=0.4.3
root=${JPKI_CLI_ROOT:-$HOME/.cache/jpki-face/jpki-cli}
bin=$root/bin/jpki-cli
if [ -x "$bin" ] && [ -f "$root/.version-$version" ]; then echo "$bin"; exit 0; fi
echo "ensure-jpki-cli: building jpki-cli $version (once) into $root" >&2
mkdir -p "$root"
# Its own target directory, so the build never waits on (or invalidates) the project's.
CARGO_TARGET_DIR="$root/target" cargo install jpki-cli --version "$version" --locked --root "$root" >&2
rm -rf "$root/target"
touch "$root/.version-$version"
echo "$bin"
