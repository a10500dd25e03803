#!/bin/bash
# Builds faxgate's Debian package into target/debian/:
#
#   bash scripts/package.sh                  a release build, then the package
#   bash scripts/package.sh --profile dev --no-build --fast
#                                            the binary already in target/debug,
#                                            lighter compression (the package
#                                            test uses this)
#
# It writes the man pages and shell completions with the binary itself
# (`faxgate manpages`, `faxgate completions`) into target/assets/, then runs
# `cargo deb` (installed with `cargo install cargo-deb` when missing), which
# strips the binary and finds the shared libraries it depends on.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=1
fast=()
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --fast) fast=(--fast); shift ;;
        *) echo "usage: $0 [--profile PROFILE] [--no-build] [--fast]" >&2; exit 2 ;;
    esac
done
dir=$profile
[ "$profile" = dev ] && dir=debug

# dpkg-shlibdeps (dpkg-dev) works out the package's dependencies.
command -v dpkg-shlibdeps >/dev/null || {
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq --no-install-recommends dpkg-dev
}
command -v cargo-deb >/dev/null || cargo deb --version >/dev/null 2>&1 || cargo install cargo-deb --locked

if [ "$build" = 1 ]; then
    cargo build --profile "$profile" --bin faxgate
fi
bin=target/$dir/faxgate
[ -x "$bin" ] || { echo "no binary at $bin (build it, or drop --no-build)" >&2; exit 1; }

rm -rf target/assets
mkdir -p target/assets/man target/assets/completions
"$bin" manpages --out target/assets/man >/dev/null
gzip -9n target/assets/man/*.1
"$bin" completions bash > target/assets/completions/faxgate.bash
"$bin" completions zsh > target/assets/completions/_faxgate
"$bin" completions fish > target/assets/completions/faxgate.fish

cargo deb --no-build --profile "$profile" --strip "${fast[@]}" --output target/debian/
ls -1 target/debian/*.deb
