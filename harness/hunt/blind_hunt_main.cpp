// vmfrag-blind-hunt: the evaluation's blind arm. Scores seeded random traces (blind_trace) in the
// hunt's config until a CPU-time budget is spent, printing the same `vmfrag-hunt: best ...` lines
// as fuzz_frag_hunt, then one summary line:
//   vmfrag-blind-hunt: traces N ops N best S cpu C
//   vmfrag-blind-hunt --seed S --cpu-seconds T [--ops 1500] [--free-percent 45] [--max-traces N]
// Trace i uses seed S * 1000003 + i, so a trial is reproducible from S.
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "harness/hunt/frag_hunt.h"

int main(int argc, char** argv) {
  unsigned long long seed = 1, ops = 1500, max_traces = 0;
  double cpu_seconds = 1;
  unsigned free_percent = 45;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--seed") seed = std::strtoull(v, nullptr, 10);
    else if (k == "--cpu-seconds") cpu_seconds = std::strtod(v, nullptr);
    else if (k == "--ops") ops = std::strtoull(v, nullptr, 10);
    else if (k == "--free-percent") free_percent = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
    else if (k == "--max-traces") max_traces = std::strtoull(v, nullptr, 10);
    else {
      std::fprintf(stderr, "vmfrag-blind-hunt: error: unknown option '%s'\n", k.c_str());
      return 2;
    }
  }
  if (argc % 2 != 1 || free_percent > 100 || ops == 0) {
    std::fprintf(stderr, "vmfrag-blind-hunt: error: usage: --seed S --cpu-seconds T [--ops N] [--free-percent P] [--max-traces N]\n");
    return 2;
  }
  vmfrag::HuntProgress progress;
  vmfrag::HuntSpace space;
  unsigned long long traces = 0, total_ops = 0;
  while (static_cast<double>(std::clock()) / CLOCKS_PER_SEC < cpu_seconds && (max_traces == 0 || traces < max_traces)) {
    const vmfrag::HuntRun run =
        vmfrag::run_hunt(vmfrag::blind_trace(seed * 1000003ull + traces, ops, free_percent), {}, &space);
    progress.note(run);
    ++traces;
    total_ops += run.ops;
  }
  std::fprintf(stderr, "vmfrag-blind-hunt: traces %llu ops %llu best %.6f cpu %.3f\n", traces, total_ops,
               progress.best().value_or(-1), static_cast<double>(std::clock()) / CLOCKS_PER_SEC);
  return 0;
}
