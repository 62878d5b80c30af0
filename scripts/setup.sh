#!/usr/bin/env bash
# The one set-up script, run by `make test` (full) and `make demo` (--demo) before anything
# is compiled. Idempotent; when everything is already there it only checks (no apt-get update,
# no pip install) and takes a second or two.
#
#   scripts/setup.sh          everything the test suites need:
#     1. prerequisites the README names: cargo, python3 with pip, Go >= 1.22 (on PATH or in
#        /usr/local/go/bin). Missing: stops at once and says what to install.
#     2. system packages (below). On Debian/Ubuntu the missing ones are installed with
#        `apt-get update && apt-get install -y --no-install-recommends ...`, as root directly,
#        else through `sudo -n` when sudo needs no password. Otherwise (no root, no such sudo,
#        or another distribution) stops at once, exit 1, printing the command to run or the
#        packages needed by name and purpose.
#     3. ONNX Runtime's shared library into .ort/lib (scripts/setup-ort.sh, from PyPI via pip).
#     4. .venv/ at the repository root with bench/requirements.txt and tools/requirements.txt
#        (numpy/scipy/onnxruntime for tests/integration/parity.rs; torch, timm, onnx and pytest for
#        tests/python). Re-installed only when those files change (hash in .venv/.requirements.sha256).
#        Before that install, and before `make test` builds, the free disk space is checked: a
#        first run needs about 8 GiB for .venv (torch's CUDA wheels) and 6 GiB for target/; short
#        of that it stops at once, naming the folder and what it found, rather than failing
#        half-way through an install.
#   scripts/setup.sh --demo   only what `make demo` needs: cargo, a C linker, python3 with pip,
#                             ONNX Runtime. No system packages, no .venv, no torch.
#
# For tests of this script: NEXVITAD_OS_RELEASE=FILE reads FILE instead of /etc/os-release.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

mode=full
case "${1:-}" in
  "") ;;
  --demo) mode=demo ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  *) echo "usage: $0 [--demo]" >&2; exit 2 ;;
esac

say() { echo "[setup] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

# need_space DIR GIB WHAT: stop unless the file system holding DIR has GIB GiB free. Where df
# cannot say (an unusual file system), the check is skipped rather than guessed.
need_space() {
  local dir=$1 gib=$2 what=$3 avail_kb
  avail_kb=$(df -Pk "$dir" 2>/dev/null | awk 'NR == 2 { print $4 }') || return 0
  [[ $avail_kb =~ ^[0-9]+$ ]] || return 0
  if (( avail_kb < gib * 1024 * 1024 )); then
    die "$what needs about $gib GiB of free disk space; the file system holding $dir has $(( avail_kb / 1024 / 1024 )) GiB ($(( avail_kb / 1024 )) MiB) free. Free some space (old build folders, 'cargo clean' in other checkouts) and rerun."
  fi
}

# ---- 1. prerequisites ------------------------------------------------------------------------
python="${PYTHON:-python3}"
command -v cargo >/dev/null \
  || die "cargo not found: install Rust with rustup (https://rustup.rs), open a new shell, rerun."
command -v "$python" >/dev/null \
  || die "$python not found: install Python 3 with pip (Debian/Ubuntu: sudo apt-get install -y python3 python3-pip python3-venv)."
"$python" -m pip --version >/dev/null 2>&1 \
  || die "$python has no pip: install it (Debian/Ubuntu: sudo apt-get install -y python3-pip)."

if [ "$mode" = demo ]; then
  # cargo links with the system C compiler; the full mode installs it with g++.
  command -v cc >/dev/null \
    || die "no C compiler (cc), which cargo needs to link: install gcc (Debian/Ubuntu: sudo apt-get install -y gcc)."
  bash scripts/setup-ort.sh
  say "ready for make demo"
  exit 0
fi

# Go: the first `go` on PATH, then /usr/local/go/bin (the Makefile looks in the same order).
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null \
  || die "Go not found (on PATH or in /usr/local/go/bin): install Go >= 1.22 (https://go.dev/doc/install)."
gover="$(go env GOVERSION 2>/dev/null || true)"   # e.g. go1.22.3
if ! [[ $gover =~ ^go([0-9]+)\.([0-9]+) ]] \
   || (( BASH_REMATCH[1] < 1 || (BASH_REMATCH[1] == 1 && BASH_REMATCH[2] < 22) )); then
  die "$(command -v go) is ${gover:-of unknown version}; Go >= 1.22 is needed (https://go.dev/doc/install)."
fi

# ---- 2. system packages ----------------------------------------------------------------------
# Debian package ~ Fedora ~ Arch ~ probe (where dpkg is not the package manager) ~ purpose
packages=(
  "g++~gcc-c++~gcc~command -v g++~a C/C++ compiler, for the C tests, the C++ binding and cgo"
  "cmake~cmake~cmake~command -v cmake~CMake, for find_package(nexvitad) and the C++ binding's tests"
  "pkgconf~pkgconf-pkg-config~pkgconf~command -v pkg-config~pkg-config, to build against nexvitad.pc (C tests, Go binding)"
  "valgrind~valgrind~valgrind~command -v valgrind~valgrind, the C tests' memory check"
  "libgtest-dev~gtest-devel~gtest~pkg-config --exists gtest || test -f /usr/include/gtest/gtest.h~GoogleTest, the C++ binding's tests"
  "libopencv-dev~opencv-devel~opencv~pkg-config --exists opencv4 || test -f /usr/include/opencv4/opencv2/core.hpp~OpenCV headers and libraries, the C++ binding's cv::Mat overloads"
  "libssl-dev~openssl-devel~openssl~pkg-config --exists openssl || test -f /usr/include/openssl/ssl.h~OpenSSL headers and libraries, the C++ binding's tests"
  "mono-mcs~mono-devel~mono~command -v mcs~the mono C# compiler (mcs), the C# binding"
  "mono-runtime~mono-core~mono~command -v mono~the mono runtime, to run the C# binding's tests"
)
# `python3 -m venv` needs ensurepip, which Debian ships in a separate package.
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  packages+=("python3-venv~python3~python~false~Python's venv module with ensurepip, for .venv")
fi

os_release="${NEXVITAD_OS_RELEASE:-/etc/os-release}"
os_id="" os_like="" os_name=""
if [ -r "$os_release" ]; then
  # shellcheck source=/dev/null
  { read -r os_id; read -r os_like; read -r os_name; } < <(. "$os_release"
    printf '%s\n' "${ID:-}" "${ID_LIKE:-}" "${PRETTY_NAME:-${NAME:-}}")
fi
debian_like=0
case " $os_id $os_like " in
  *" debian "*|*" ubuntu "*) command -v apt-get >/dev/null && command -v dpkg-query >/dev/null && debian_like=1 ;;
esac

missing=()          # Debian names
missing_lines=()    # purpose and names, for the message on other distributions
for entry in "${packages[@]}"; do
  IFS='~' read -r pkg fedora arch probe purpose <<<"$entry"
  if [ $debian_like = 1 ]; then
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] && continue
  else
    bash -c "$probe" >/dev/null 2>&1 && continue
  fi
  missing+=("$pkg")
  missing_lines+=("  - $purpose (Debian/Ubuntu: $pkg; Fedora: $fedora; Arch: $arch)")
done

if [ ${#missing[@]} -eq 0 ]; then
  say "system packages: all present"
elif [ $debian_like = 0 ]; then
  {
    echo "[setup] ERROR: missing system packages, and this is not Debian/Ubuntu (${os_name:-unknown system}, ID=${os_id:-?}${os_like:+, ID_LIKE=$os_like}),"
    echo "[setup] so nothing was installed. Install these with your distribution's package manager, then rerun:"
    printf '%s\n' "${missing_lines[@]}"
  } >&2
  exit 1
else
  apt_cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    {
      echo "[setup] ERROR: missing system packages: ${missing[*]}"
      echo "[setup] Not root, and sudo is not usable without a password, so nothing was installed. Run:"
      echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
      echo "[setup] then rerun this command."
    } >&2
    exit 1
  fi
  say "installing system packages: ${missing[*]}${sudo[*]:+ (through sudo -n)}"
  if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
         && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    die "installing the system packages failed (see above). The command was: ${sudo[*]:+${sudo[*]} }$apt_cmd"
  fi
fi

# ---- 3. ONNX Runtime ---------------------------------------------------------------------------
bash scripts/setup-ort.sh

# ---- 4. the Python environment .venv -----------------------------------------------------------
reqs=(bench/requirements.txt tools/requirements.txt)
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "${reqs[@]}" | sha256sum | cut -d' ' -f1)"
if [ ! -e "$venv" ]; then
  say "creating the Python environment .venv"
  "$python" -m venv "$venv"
elif ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
  die ".venv exists but .venv/bin/python does not run (made by another Python, or by another user?): remove .venv (rm -rf .venv) and rerun."
fi
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  say "Python environment .venv up to date (${reqs[*]})"
else
  # pip unpacks the wheels under TMPDIR before moving them into .venv: both must have room.
  need_space "$venv" 8 "installing ${reqs[*]} into .venv (torch and its CUDA wheels)"
  need_space "${TMPDIR:-/tmp}" 4 "unpacking the Python wheels in ${TMPDIR:-/tmp} (set TMPDIR to use another folder)"
  say "installing ${reqs[*]} into .venv (torch and its CUDA wheels: a few GB on first run)"
  rm -f "$stamp"
  req_args=()
  for r in "${reqs[@]}"; do req_args+=(-r "$r"); done
  # --no-cache-dir: a second copy of the same wheels in ~/.cache/pip would only take disk.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir "${req_args[@]}"
  echo "$want" >"$stamp"
fi
# The builds of `make test` (debug and release, the sanitizer build, the bindings) fill target/
# and build/ with about 6 GiB on a fresh clone; less is needed once they exist.
if [ -d "$root/target/debug" ]; then build_gib=2; else build_gib=6; fi
need_space "$root" "$build_gib" "building and testing (target/ and build/)"
say "ready for make test"
