#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build of vmfrag's fuzz targets. Honours the builder's variables:
#   CC CXX CFLAGS CXXFLAGS   compilers and sanitizer flags (meson reads them at configure time)
#   LIB_FUZZING_ENGINE       how targets link the engine (passed as -Dfuzzer_ldflags)
#   SRC OUT                  the source root ($SRC/vmfrag) and where targets and their files go
#   WORK                     scratch space for the build directory (default $OUT/.build)
# Produces in $OUT, per target: the binary, <target>_seed_corpus.zip (corpus/<name>/ and
# corpus/regressions/<name>/), <target>.dict and <target>.options.
ROOT="${SRC}/vmfrag"
[ -d "$ROOT" ] || ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${WORK:-$OUT/.build}/vmfrag-fuzz"
TARGETS="fuzz_trace_parser:trace_parser fuzz_frag_hunt:frag_hunt fuzz_phys_hunt:phys_hunt fuzz_ops:ops"

if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" "$ROOT" -Dfuzzing=true -Dtests=false -Dplanted_bug_test=false \
    -Dfuzzer_ldflags="$LIB_FUZZING_ENGINE" -Dbuildtype=plain -Db_lundef=false -Dwerror=true >/dev/null
fi
ninja -C "$BUILD" $(for t in $TARGETS; do echo "fuzz/${t%%:*}"; done)

for t in $TARGETS; do
  target="${t%%:*}"
  name="${t##*:}"
  cp "$BUILD/fuzz/$target" "$OUT/$target"
  cp "$ROOT/corpus/$name.dict" "$OUT/$target.dict"
  # Entries are named seed-<file> and regression-<file>.
  python3 - "$OUT/${target}_seed_corpus.zip" "seed=$ROOT/corpus/$name" "regression=$ROOT/corpus/regressions/$name" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for arg in sys.argv[2:]:
        label, d = arg.split("=", 1)
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                z.write(os.path.join(d, f), label + "-" + f)
PY
  case "$name" in
    frag_hunt|phys_hunt) max_len=1536 ;;
    ops) max_len=1024 ;;
    *) max_len=4096 ;;
  esac
  printf '[libfuzzer]\ndict = %s.dict\nmax_len = %s\n' "$target" "$max_len" > "$OUT/$target.options"
done
