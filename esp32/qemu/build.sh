#!/bin/bash
# esp32/qemu/build.sh: build everything needed to run the secure_ota example on an emulated
# ESP32-C3 (Espressif's QEMU) on a Debian bookworm machine with no Espressif toolchain and no
# internet, from bare git snapshots of public repositories (see esp32/README.md, "ESP-IDF build
# and QEMU").
#
#   esp32/qemu/build.sh [STEP ...]      steps: prereq qemu toolchain newlib stdcxx idf venv registry
#                                             (default: all of them, in that order)
#
# Environment:
#   ESP_MIRROR  folder holding the snapshots as <owner>+<name>/repo (bare git), default /work/.mirror
#   ESP_LAB     cache folder (outside the repository), default /work/esp32-lab
#   ESP_JOBS    parallel build jobs, default 2
#
# Every step leaves a stamp in $ESP_LAB/stamps named after the step and a key of its inputs (source
# commit, options, the hash of our QEMU patch); a step whose stamp exists is skipped, so a second
# run only rebuilds what changed. Logs go to $ESP_LAB/logs/<step>.log.
#
# What stands in for what (nothing here is Espressif's released toolchain):
#   riscv32-esp-elf-gcc   Debian's riscv64-unknown-elf-gcc 12.2 behind wrapper scripts (rv32imc, ilp32)
#   newlib                espressif/newlib-esp32 esp-4.3.0_20240322, built here
#   libstdc++             Debian's gcc-12-source, built here for the target
#   mbedtls               upstream Mbed TLS at the version IDF pins (espressif/mbedtls is not fetchable)
#   component registry    a local file:// registry holding esp_encrypted_img (registry.py)
#   QEMU                  antmak/qemu (an Espressif developer's fork carrying the ESP32-C3 machine;
#                         espressif/qemu is over the snapshot size limit) + our qemu-*.patch beside
#                         this script (XTS-AES plaintext window, translated code vs the cache model)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
M=${ESP_MIRROR:-/work/.mirror}
LAB=${ESP_LAB:-/work/esp32-lab}
JOBS=${ESP_JOBS:-2}
case "$LAB" in "$REPO"|"$REPO"/*) echo "ESP_LAB must be outside the repository" >&2; exit 2 ;; esac
mkdir -p "$LAB"/{src,build,stamps,logs}

# pinned inputs
IDF_TAG=${ESP_IDF_TAG:-v5.2.6}
QEMU_REPO=antmak+qemu QEMU_REF=24ca0e14971718250a6fb28a8756f0e7427f4f83   # ci/add-idf-tools-updater, QEMU 8.2.0
NEWLIB_REF=esp-4.3.0_20240322
ENCIMG_VERSION=2.7.1 ENCIMG_REF=a2e2cb4                                  # idf-extra-components
SECCERT_VERSION=2.9.3                                                     # esp_secure_cert_mgr (IDF >= 5.3 only)

log() { printf '[build.sh %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { echo "build.sh: $*" >&2; exit 1; }
snap() { # owner+name -> bare repository path
  local d=$M/$1/repo
  [ -d "$d" ] || die "snapshot $1 missing: expected $d (fetch github:${1/+//})"
  echo "$d"
}
export_tree() { # owner+name ref dest  (git archive of a snapshot into dest, fresh)
  local r; r=$(snap "$1")
  rm -rf "$3"; mkdir -p "$3"
  git -C "$r" archive "$2" | tar -x -C "$3"
}
# run STEP KEY FUNCTION: skip when the stamp for KEY exists
stamped() {
  local step=$1 key=$2 fn=$3 stamp
  stamp=$LAB/stamps/$step.$(printf '%s' "$key" | sha256sum | cut -c1-16)
  if [ -e "$stamp" ]; then log "$step: cached ($stamp)"; return 0; fi
  log "$step: building (log: $LAB/logs/$step.log)"
  local t0=$SECONDS pid
  # a background subshell, so that `set -e` holds inside the step (it is off in an `if` condition)
  ( set -e; "$fn" ) > "$LAB/logs/$step.log" 2>&1 &
  pid=$!
  if ! wait $pid; then
    tail -25 "$LAB/logs/$step.log" >&2; die "$step failed (see $LAB/logs/$step.log)"
  fi
  rm -f "$LAB/stamps/$step".*; printf '%s\n' "$key" > "$stamp"
  log "$step: done in $((SECONDS - t0)) s"
}

# ---- prerequisites -------------------------------------------------------------------------
APT_PACKAGES="gcc-riscv64-unknown-elf binutils-riscv64-unknown-elf libnewlib-dev autoconf automake
  texinfo gcc-12-source libglib2.0-dev libpixman-1-dev libgcrypt20-dev libslirp-dev libfdt-dev flex
  bison pkg-config python3-venv zlib1g-dev socat cmake ninja-build xz-utils"
step_prereq() {
  local missing=""
  for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  [ -z "$missing" ] || die "missing Debian packages:$missing (apt-get install$missing)"
  for s in espressif+esp-idf espressif+newlib-esp32 espressif+idf-extra-components $QEMU_REPO \
           qemu+keycodemapdb ucb-bar+berkeley-softfloat-3 ucb-bar+berkeley-testfloat-3 \
           Mbed-TLS+mbedtls Mbed-TLS+mbedtls-framework; do snap "$s" >/dev/null; done
  log "prereq: Debian packages and snapshots present"
}

# ---- Espressif QEMU (riscv32-softmmu with the esp32c3 machine) -------------------------------
QEMU_SRC=$LAB/src/qemu QEMU_BUILD=$LAB/build/qemu
QEMU_BIN=$QEMU_BUILD/qemu-system-riscv32
qemu_patches() { ls "$HERE"/qemu-*.patch 2>/dev/null || true; }
do_qemu() {
  export_tree $QEMU_REPO $QEMU_REF "$QEMU_SRC"
  # a git archive lacks the meson subprojects configure needs; their own snapshots stand in
  export_tree qemu+keycodemapdb f5772a62ec52591ff6870b7e8ef32482371f22c6 "$QEMU_SRC/subprojects/keycodemapdb"
  export_tree ucb-bar+berkeley-softfloat-3 b64af41c3276f97f0e181920400ee056b9c88037 "$QEMU_SRC/subprojects/berkeley-softfloat-3"
  export_tree ucb-bar+berkeley-testfloat-3 06b20075dd3c1a5d0dd007a93643282832221612 "$QEMU_SRC/subprojects/berkeley-testfloat-3"
  cp -rp "$QEMU_SRC"/subprojects/packagefiles/berkeley-softfloat-3/* "$QEMU_SRC/subprojects/berkeley-softfloat-3/"
  cp -rp "$QEMU_SRC"/subprojects/packagefiles/berkeley-testfloat-3/* "$QEMU_SRC/subprojects/berkeley-testfloat-3/"
  # our patches; the files they (or a previous set of patches) touched get a fresh mtime so that an
  # incremental ninja recompiles them (the exported tree carries the commit's mtimes)
  local p f
  for p in $(qemu_patches); do echo "applying $p"; patch -d "$QEMU_SRC" -p1 < "$p"; done
  mkdir -p "$QEMU_BUILD"
  { cat "$QEMU_BUILD/.patched-files" 2>/dev/null || true
    for p in $(qemu_patches); do sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$p"; done; } | sort -u > "$QEMU_BUILD/.patched-files.new"
  while read -r f; do [ -e "$QEMU_SRC/$f" ] && touch "$QEMU_SRC/$f"; done < "$QEMU_BUILD/.patched-files.new"
  cd "$QEMU_BUILD"
  if [ "$(cat .configured 2>/dev/null)" != "$QEMU_REF" ]; then
    find . -mindepth 1 -maxdepth 1 ! -name '.patched-files*' -exec rm -rf {} +
    "$QEMU_SRC/configure" --python=/usr/bin/python3 --target-list=riscv32-softmmu \
      --without-default-features --enable-gcrypt --enable-slirp --enable-fdt=system \
      --disable-download --disable-docs --with-pkgversion=secure-fota-lab
    echo "$QEMU_REF" > .configured
  fi
  nice -n 10 ninja -j"$JOBS" qemu-system-riscv32
  mv .patched-files.new .patched-files
  ./qemu-system-riscv32 -machine help | grep -q '^esp32c3'
}
step_qemu() {
  local patches="" p
  for p in $(qemu_patches); do patches="$patches $(sha256sum < "$p" | cut -c1-16)"; done
  stamped qemu "$QEMU_REF$patches" do_qemu
}

# ---- toolchain wrappers: Debian's riscv64-unknown-elf as riscv32-esp-elf ----------------------
TC=$LAB/toolchain
do_toolchain() {
  mkdir -p "$TC/bin" "$TC/riscv32-esp-elf"
  # -march/-mabi first so a caller's own -march wins; newlib's headers after gcc's (-idirafter: with
  # -isystem newlib's stdatomic.h would shadow gcc's); Debian's rv32im/ilp32 multilib for crt/libgcc
  # (for ..._zicsr_zifencei the driver would pick an rv64 multilib)
  cat > "$TC/bin/riscv32-esp-elf-gcc" <<EOF
#!/bin/sh
# generated by secure-fota esp32/qemu/build.sh
T=$TC/riscv32-esp-elf
ML=/usr/lib/gcc/riscv64-unknown-elf/12.2.0/rv32im/ilp32
case "\$(basename "\$0")" in
  *g++|*c++) D=riscv64-unknown-elf-g++; X="-isystem \$T/include/c++/12.2.0 -isystem \$T/include/c++/12.2.0/riscv32-esp-elf" ;;
  *cpp) D=riscv64-unknown-elf-cpp; X="" ;;
  *) D=riscv64-unknown-elf-gcc; X="" ;;
esac
exec \$D -march=rv32imc_zicsr_zifencei -mabi=ilp32 \$X -idirafter "\$T/include" -B"\$T/lib/" -B"\$ML/" -L"\$T/lib" -L"\$ML" "\$@"
EOF
  chmod +x "$TC/bin/riscv32-esp-elf-gcc"
  for n in g++ c++ cpp cc; do ln -sf riscv32-esp-elf-gcc "$TC/bin/riscv32-esp-elf-$n"; done
  for t in addr2line ar as c++filt elfedit gcc-ar gcc-nm gcc-ranlib gcov gprof ld ld.bfd nm objcopy \
           objdump ranlib readelf size strings strip; do
    ln -sf "/usr/bin/riscv64-unknown-elf-$t" "$TC/bin/riscv32-esp-elf-$t"
  done
  "$TC/bin/riscv32-esp-elf-gcc" --version | head -1
}
step_toolchain() { stamped toolchain "wrappers-2" do_toolchain; }

# ---- newlib (Espressif's fork) for rv32imc/ilp32 -------------------------------------------
do_newlib() {
  local S=$LAB/src/newlib-esp32 B=$LAB/build/newlib r
  r=$(snap espressif+newlib-esp32)
  rm -rf "$S"; mkdir -p "$S"
  # the snapshot lacks newlib/Makefile.in (over the snapshot's file size limit): regenerate it
  git -C "$r" archive $NEWLIB_REF -- . ':!newlib/Makefile.in' | tar -x -C "$S"
  cd "$S"; sed -i 's/\[2\.69\]/[2.71]/' config/override.m4      # Debian: autoconf 2.71
  cd newlib
  sed -i '/^MATHOBJS_IN_LIBC = /,/copysign.o$/ s/libm_a-/a-/g' Makefile.am   # automake 1.16 object names
  aclocal -I . -I .. -I ../config && autoconf && automake
  rm -rf "$B"; mkdir -p "$B"; cd "$B"
  export PATH=$TC/bin:$PATH
  # crosstool-NG's options for Espressif's toolchain; reent-binary-compat is essential: ESP-IDF builds
  # with _REENT_BACKWARD_BINARY_COMPAT, and a newlib without it has another struct _reent layout
  "$S/configure" --target=riscv32-esp-elf --prefix="$TC" --disable-multilib --with-newlib --disable-nls \
    --enable-newlib-nano-malloc --enable-newlib-retargetable-locking --enable-newlib-iconv \
    --disable-newlib-supplied-syscalls --enable-newlib-reent-small --enable-newlib-io-c99-formats \
    --enable-newlib-io-long-long --enable-newlib-io-float --enable-newlib-io-pos-args \
    --disable-newlib-wide-orient --enable-newlib-reent-binary-compat \
    CFLAGS_FOR_TARGET="-Os -g -ffunction-sections -fdata-sections" MAKEINFO=true
  nice -n 10 make -j"$JOBS" MAKEINFO=true all-target-newlib all-target-libgloss
  make MAKEINFO=true install-target-newlib install-target-libgloss
  grep -q '_WANT_REENT_BACKWARD_BINARY_COMPAT 1' "$TC/riscv32-esp-elf/include/newlib.h"
}
step_newlib() { step_toolchain; stamped newlib "$NEWLIB_REF-binary-compat" do_newlib; }

# ---- libstdc++ (nvs_flash and cxx are C++) ---------------------------------------------------
do_stdcxx() {
  local S=$LAB/src/gcc-12.2.0 B=$LAB/build/libstdcxx
  rm -rf "$S"; cd "$LAB/src"
  local x; x=""
  for d in gcc/testsuite libstdc++-v3/testsuite libgo gcc/ada libphobos gcc/d libgfortran gcc/go \
           gcc/fortran libsanitizer gcc/m2; do
    x="$x --exclude=gcc-12.2.0/$d"
  done
  # shellcheck disable=SC2086
  tar -xJf /usr/src/gcc-12/gcc-12.2.0-dfsg.tar.xz $x
  tar -xJf /usr/src/gcc-12/gcc-12.2.0-dfsg.tar.xz gcc-12.2.0/libstdc++-v3/testsuite/Makefile.in \
    gcc-12.2.0/libstdc++-v3/testsuite/Makefile.am
  rm -rf "$B"; mkdir -p "$B"; cd "$B"
  export PATH=$TC/bin:$PATH
  "$S/libstdc++-v3/configure" --host=riscv32-esp-elf --build=x86_64-pc-linux-gnu \
    --prefix="$TC/riscv32-esp-elf" --with-newlib --disable-multilib --disable-shared \
    --disable-libstdcxx-pch --disable-nls --disable-libstdcxx-verbose --disable-libstdcxx-backtrace \
    CC=riscv32-esp-elf-gcc CXX=riscv32-esp-elf-g++ AR=riscv32-esp-elf-ar RANLIB=riscv32-esp-elf-ranlib \
    NM=riscv32-esp-elf-nm LDFLAGS=--specs=nosys.specs \
    CFLAGS="-Os -g -ffunction-sections -fdata-sections" CXXFLAGS="-Os -g -ffunction-sections -fdata-sections"
  nice -n 10 make -j"$JOBS"
  make install
}
step_stdcxx() { step_newlib; stamped stdcxx "gcc-12.2.0-1" do_stdcxx; }

# ---- ESP-IDF at $IDF_TAG with the submodules the snapshots hold -------------------------------
idf_dir() { echo "$LAB/idf-$1"; }
do_idf() {
  local T=$IDF_TAG D r; D=$(idf_dir "$T"); r=$(snap espressif+esp-idf)
  rm -rf "$D"; git clone -q --no-checkout --shared "$r" "$D"
  git -C "$D" -c advice.detachedHead=false checkout -q "$T" || true   # a few > 4 MiB example blobs are absent
  echo "ESP-IDF $T = $(git -C "$D" rev-parse HEAD)"
  sub() { # path snapshot [fallback ref when IDF's exact commit is not in the snapshot]
    local p=$1 s c; s=$(snap "$2"); c=$(git -C "$D" ls-tree HEAD "$p" | awk '{print $3}')
    [ -n "$c" ] || { echo "  $p: not a submodule in $T"; return 0; }
    if git -C "$s" cat-file -e "$c^{commit}" 2>/dev/null; then echo "  $p: $c"
    else echo "  $p: $c missing, using ${3:-HEAD} = $(git -C "$s" rev-parse "${3:-HEAD}")"; c=${3:-HEAD}; fi
    rm -rf "${D:?}/$p"; mkdir -p "$D/$p"; git -C "$s" archive "$c" | tar -x -C "$D/$p"
  }
  sub components/json/cJSON DaveGamble+cJSON
  sub components/lwip/lwip espressif+esp-lwip f79221431fa9042b3572d271d687de66da7560c4
  sub components/heap/tlsf espressif+tlsf
  sub components/bootloader/subproject/components/micro-ecc/micro-ecc kmackay+micro-ecc
  sub components/esp_phy/lib espressif+esp-phy-lib
  sub components/esp_coex/lib espressif+esp-coex-lib
  sub components/mqtt/esp-mqtt espressif+esp-mqtt
  sub components/cmock/CMock ThrowTheSwitch+CMock
  sub components/unity/unity ThrowTheSwitch+Unity
  sub components/spiffs/spiffs pellepl+spiffs
  sub components/protobuf-c/protobuf-c protobuf-c+protobuf-c
  # Mbed TLS: IDF pins espressif/mbedtls (not in its snapshot): the upstream release of the same version
  local U V F P=$D/components/mbedtls/mbedtls
  U=$(snap Mbed-TLS+mbedtls)
  V=$(git -C "$D" log --format=%s -- components/mbedtls/mbedtls | grep -o -E '(version|to|v)[ ]?[0-9]+\.[0-9]+\.[0-9]+' | head -1 | grep -o -E '[0-9]+\.[0-9]+\.[0-9]+' || true)
  [ -n "$V" ] || { echo "cannot tell the Mbed TLS version of $T"; return 1; }
  rm -rf "$P"; mkdir -p "$P"; git -C "$U" archive "v$V" -- . ':!tests' | tar -x -C "$P" || true
  F=$(git -C "$U" ls-tree "v$V" framework | awk '{print $3}')
  if [ -n "$F" ]; then
    rm -rf "$P/framework"; mkdir -p "$P/framework"
    git -C "$(snap Mbed-TLS+mbedtls-framework)" archive "$F" | tar -x -C "$P/framework"
  fi
  # as espressif/mbedtls does: no -std=c99 (IDF's rv_utils.h uses `asm`), no fatal warnings
  sed -i 's/^set(CMAKE_C_STANDARD 99)$/# &  (secure-fota build.sh)/' "$P/CMakeLists.txt"
  sed -i 's/^option(MBEDTLS_FATAL_WARNINGS "Compiler warnings treated as errors" ON)/option(MBEDTLS_FATAL_WARNINGS "Compiler warnings treated as errors" OFF)/' "$P/CMakeLists.txt"
  echo "  components/mbedtls/mbedtls: upstream Mbed TLS v$V"
  # install.sh would download the Python constraints file from Espressif: an empty one (no pins)
  local v; v=$(sed -n 's/^set(IDF_VERSION_MAJOR \([0-9]*\))/\1/p;s/^set(IDF_VERSION_MINOR \([0-9]*\))/\1/p' "$D/tools/cmake/version.cmake" | paste -sd.)
  mkdir -p "$LAB/idf-tools"; echo '# empty: stands in for the file install.sh downloads' > "$LAB/idf-tools/espidf.constraints.v$v.txt"
}
step_idf() { stamped "idf-$IDF_TAG" "$IDF_TAG-3" do_idf; }

# ---- Python environment for ESP-IDF (PyPI) ---------------------------------------------------
venv_for() { case "$1" in v5.2*|v5.3*|v5.4*) echo "$LAB/venv52" ;; *) echo "$LAB/venv55" ;; esac; }
do_venv() {
  local V; V=$(venv_for "$IDF_TAG")
  rm -rf "$V"; python3 -m venv "$V"
  "$V/bin/pip" install -q --upgrade pip
  git -C "$(snap espressif+esp-idf)" show "$IDF_TAG:tools/requirements/requirements.core.txt" | grep -v '^#' | grep . > "$V.requirements.txt"
  # ESP-IDF 5.2 predates esp-idf-kconfig 2, esptool 5, esp-idf-size 2 and component manager 3
  case "$IDF_TAG" in v5.[234]*) printf "%s\n" "esp-idf-kconfig<2" "esptool<5" "esp-idf-size<2" "idf-component-manager<3" >> "$V.requirements.txt" ;; esac
  "$V/bin/pip" install -q "setuptools<71" -r "$V.requirements.txt"
  "$V/bin/pip" freeze
}
step_venv() { stamped "venv-$IDF_TAG" "$(venv_for "$IDF_TAG")-1" do_venv; }

# ---- a local component registry holding esp_encrypted_img (the real one is unreachable) --------
do_registry() {
  local V; V=$(venv_for "$IDF_TAG")
  "$V/bin/python" "$HERE/registry.py" --out "$LAB/registry" \
    --component "esp_encrypted_img=$(snap espressif+idf-extra-components):$ENCIMG_REF:esp_encrypted_img:$ENCIMG_VERSION" \
    --component "esp_secure_cert_mgr=$(snap espressif+esp_secure_cert_mgr):HEAD::$SECCERT_VERSION"
}
step_registry() { stamped "registry-$IDF_TAG" "$ENCIMG_REF-$SECCERT_VERSION-$(sha256sum < "$HERE/registry.py" | cut -c1-16)" do_registry; }

# the environment the other scripts (idf_check.py, e2e.py, probe.sh) source
write_env() {
  local D V; D=$(idf_dir "$IDF_TAG"); V=$(venv_for "$IDF_TAG")
  cat > "$LAB/env-$IDF_TAG.sh" <<EOF
# generated by esp32/qemu/build.sh: ESP-IDF $IDF_TAG with the stand-in toolchain
export IDF_PATH=$D
export IDF_TOOLS_PATH=$LAB/idf-tools
export IDF_PYTHON_ENV_PATH=$V
export PATH=$TC/bin:$V/bin:$D/tools:\$PATH
export IDF_SKIP_CHECK_SUBMODULES=1
export IDF_COMPONENT_MANAGER=1
export IDF_COMPONENT_STORAGE_URL=file://$LAB/registry
export IDF_COMPONENT_LOCAL_STORAGE_URL=file://$LAB/registry
export IDF_COMPONENT_CACHE_PATH=$LAB/cm-cache
export ESP_QEMU=$QEMU_BIN
export ESP_QEMU_BIOS=$QEMU_SRC/pc-bios
EOF
  log "environment: $LAB/env-$IDF_TAG.sh"
}

steps=("$@"); [ ${#steps[@]} -gt 0 ] || steps=(prereq qemu toolchain newlib stdcxx idf venv registry)
for s in "${steps[@]}"; do
  case "$s" in
    prereq|qemu|toolchain|newlib|stdcxx|idf|venv|registry) "step_$s" ;;
    env) ;;
    *) die "unknown step $s" ;;
  esac
done
write_env
