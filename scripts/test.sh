#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The test command (README, .ci/run): installs what it needs, then runs every leg and prints a summary.
# Legs: format check, umbrella check, g++ Debug ASan+UBSan -Werror + ctest, clang++ Release -Werror +
# header self-check + ctest, the three CMake consumer builds, benchmark smoke, fuzz smoke.
# Environment: JOBS (default nproc), FUZZ_SECONDS (default 30 per target), ONLY="leg1 leg2" to select legs.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/deps.sh test || exit 1

jobs=${JOBS:-$(nproc)}
fuzz_seconds=${FUZZ_SECONDS:-30}
out=$root/build/ci
mkdir -p "$out"
passed=0 failed=0 failed_legs=()

leg() { # leg NAME COMMAND...
  local name=$1; shift
  if [[ -n ${ONLY:-} && " $ONLY " != *" $name "* ]]; then return 0; fi
  echo "=== leg: $name"
  local t0=$SECONDS
  if "$@" > "$out/$name.log" 2>&1; then
    passed=$((passed + 1)); echo "--- PASS $name ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1)); failed_legs+=("$name"); echo "--- FAIL $name ($((SECONDS - t0)) s); last lines of $out/$name.log:"
    tail -n 40 "$out/$name.log"
  fi
  grep -E '^(100% tests passed|[0-9]+% tests passed|.*tests failed out of)' "$out/$name.log" || true
}

sources() { git ls-files -co --exclude-standard -- 'include/*.hpp' 'tests/*.cpp' 'tests/*.hpp' 'bench/*.cpp' \
              'fuzz/*.cpp' 'examples/*.cpp' 'examples/*.hpp'; }

format_check() { sources | xargs clang-format-14 --dry-run --Werror; }

umbrella_check() { # every public header is included by <ipvs/ipvs.hpp>
  local missing=0
  for h in $(cd include && find ipvs -name '*.hpp' -not -path 'ipvs/detail/*' -not -name ipvs.hpp | sort); do
    grep -q "#include <$h>" include/ipvs/ipvs.hpp || { echo "not in ipvs.hpp: $h"; missing=1; }
  done
  return $missing
}

gcc_asan() {
  cmake -S . -B build/gcc-asan -G Ninja -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Debug -DIPVS_WERROR=ON \
        -DIPVS_SANITIZE=ON -DIPVS_BUILD_BENCHMARKS=OFF -DIPVS_BUILD_EXAMPLES=ON &&
  cmake --build build/gcc-asan -j "$jobs" &&
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build/gcc-asan -j "$jobs" --output-on-failure
}

clang_release() {
  cmake -S . -B build/clang-rel -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Release \
        -DIPVS_WERROR=ON -DIPVS_BUILD_BENCHMARKS=ON -DIPVS_BUILD_EXAMPLES=ON &&
  cmake --build build/clang-rel -j "$jobs" --target all all_verify_interface_header_sets &&
  ctest --test-dir build/clang-rel -j "$jobs" --output-on-failure
}

consumers() {
  local c=build/consumers; rm -rf "$c"; mkdir -p "$c"
  # add_subdirectory
  cmake -S tests/cmake/add_subdirectory -B $c/subdir -G Ninja -DIPVS_SOURCE_DIR="$root" &&
  cmake --build $c/subdir && $c/subdir/consumer &&
  # install + find_package
  cmake -S . -B $c/ipvs -G Ninja -DIPVS_BUILD_TESTS=OFF -DIPVS_BUILD_BENCHMARKS=OFF -DIPVS_BUILD_EXAMPLES=OFF \
        -DIPVS_INSTALL=ON -DCMAKE_INSTALL_PREFIX="$root/$c/prefix" &&
  cmake --install $c/ipvs &&
  test -f $c/prefix/share/cmake/ipvs/ipvs-config.cmake &&
  cmake -S tests/cmake/find_package -B $c/find -G Ninja -DCMAKE_PREFIX_PATH="$root/$c/prefix" &&
  cmake --build $c/find && $c/find/consumer &&
  # FetchContent from this local git repository at HEAD (what was committed)
  local snap; snap=$(git rev-parse HEAD) &&
  cmake -S tests/cmake/fetchcontent -B $c/fetch -G Ninja -DIPVS_SOURCE_DIR="$root" -DIPVS_GIT_TAG="$snap" \
        -DFETCHCONTENT_QUIET=OFF &&
  cmake --build $c/fetch && $c/fetch/consumer
}

bench_smoke() {
  cmake --build build/clang-rel -j "$jobs" || return 1
  local ok=0
  for b in build/clang-rel/bench/*_bench; do
    [[ -x $b ]] || continue
    echo "## $b"
    IPVS_BENCH_SMOKE=1 "$b" --benchmark_min_time=0.01 || ok=1
  done
  return $ok
}

fuzz_smoke() {
  cmake -S . -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DIPVS_BUILD_FUZZERS=ON -DIPVS_BUILD_TESTS=OFF -DIPVS_BUILD_BENCHMARKS=OFF -DIPVS_BUILD_EXAMPLES=OFF \
        -DIPVS_WERROR=ON && cmake --build build/fuzz -j "$jobs" || return 1
  local ok=0
  for f in build/fuzz/fuzz/*_fuzz; do
    local name; name=$(basename "$f" _fuzz)
    local work=build/fuzz/corpus-$name; mkdir -p "$work"
    local seeds=(); [[ -d fuzz/corpus/$name ]] && seeds=(fuzz/corpus/$name)
    echo "## $name for ${fuzz_seconds}s"
    "$f" -max_total_time="$fuzz_seconds" -print_final_stats=1 -timeout=10 "$work" "${seeds[@]}" 2>&1 | tail -n 8 || ok=1
  done
  return $ok
}

leg format format_check
leg umbrella umbrella_check
leg gcc-asan gcc_asan
leg clang-release clang_release
leg consumers consumers
leg bench-smoke bench_smoke
leg fuzz-smoke fuzz_smoke

# The closing line counts test cases (CTest, both compiler legs) and fails with any failed leg.
tp=0 tf=0
for log in "$out"/gcc-asan.log "$out"/clang-release.log; do
  [[ -f $log ]] || continue
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1)
  [[ -n $line ]] || continue
  f=$(sed -E 's/.*, ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<< "$line")
  n=$(sed -E 's/.*, ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<< "$line")
  tp=$((tp + n - f)) tf=$((tf + f))
done
echo
echo "legs: $passed ok, $failed failed (${failed_legs[*]:-none})"
tf=$((tf + failed))
echo "tests: $tp passed, $tf failed"
((failed == 0))
