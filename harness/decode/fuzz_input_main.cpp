// vmfrag-fuzz-input: turns fuzz inputs into vmtrace files and back, until `vmfrag decode` is wired
// into the CLI (harness/cli).
//
//   vmfrag-fuzz-input decode TARGET INPUT -o OUT.vmtrace   any bytes -> the trace the target runs
//   vmfrag-fuzz-input encode TARGET TRACE -o OUT [--clamp] a trace -> bytes that decode to it
//   vmfrag-fuzz-input minimize TARGET TRACE -o OUT         a finding -> the smallest trace that still
//                                                          fails with its kind at or below its severity
//
// TARGET is frag_hunt, phys_hunt or ops (their decode configs; trace_parser inputs are traces
// already); minimize takes frag_hunt (a, f, p) or phys_hunt (k, f, p) findings.
// --clamp first makes the trace expressible (clamp_to_config; for ops the header becomes
// region 4M, guard 1, lazy 8, phys 4M). Exit 0 ok, 2 bad usage or input (one line on stderr).
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "harness/decode/op_decoder.h"
#include "harness/hunt/frag_hunt.h"
#include "harness/hunt/phys_hunt.h"
#include "harness/minimize/minimizer.h"
#include "harness/trace/input_error.h"
#include "harness/trace/trace_reader.h"

namespace {

int usage(const std::string& why) {
  std::fprintf(stderr, "vmfrag-fuzz-input: error: %s\n", why.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string out_path;
  bool clamp = false;
  std::vector<std::string> pos;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-o" && i + 1 < args.size()) {
      out_path = args[++i];
    } else if (args[i] == "--clamp") {
      clamp = true;
    } else {
      pos.push_back(args[i]);
    }
  }
  if (pos.size() != 3 || out_path.empty() || (pos[0] != "decode" && pos[0] != "encode" && pos[0] != "minimize"))
    return usage("usage: vmfrag-fuzz-input decode|encode|minimize TARGET INPUT -o OUT [--clamp]");
  const std::optional<vmfrag::DecodeConfig> target_config = vmfrag::decode_config_for(pos[1]);
  if (!target_config) return usage("unknown target '" + pos[1] + "' (" + vmfrag::kDecodeTargetNames + ")");
  const vmfrag::DecodeConfig& config = *target_config;
  std::ifstream in(pos[2], std::ios::binary);
  if (!in) return usage(pos[2] + ": cannot open");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string output;
  if (pos[0] == "decode") {
    const vmfrag::DecodedInput decoded = vmfrag::decode_input(
        {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}, config);
    std::ostringstream text;
    vmfrag::write_decoded_trace(text, decoded, "decoded from " + pos[2] + " (" + pos[1] + ")");
    output = text.str();
  } else if (pos[0] == "minimize") {
    std::istringstream text(bytes);
    vmfrag::DecodedInput d;
    try {
      vmfrag::TraceReader reader(text, pos[2]);
      for (vmfrag::Op op; reader.next(op);) d.ops.push_back(op);
      d.header = reader.header();
    } catch (const vmfrag::InputError& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 2;
    }
    const std::optional<vmfrag::HuntRun> run = vmfrag::run_any_hunt(d);
    if (!run) return usage(pos[2] + ": minimize takes a, f and p ops or k, f and p ops only");
    if (!run->finding) return usage(pos[2] + ": no allocation failure to keep");
    const vmfrag::MinimizeResult r = vmfrag::minimize_trace(
        d.header, d.ops, vmfrag::failure_with_severity(run->finding->kind, run->finding->severity));
    const std::optional<vmfrag::HuntRun> after = vmfrag::run_any_hunt(vmfrag::DecodedInput{r.header, r.ops, {}});
    std::ostringstream out;
    vmfrag::write_decoded_trace(out, vmfrag::DecodedInput{r.header, r.ops, {}},
                                "minimised from " + pos[2] + " (" + std::to_string(r.original_ops) + " ops, " +
                                    std::to_string(r.replays) + " replays)\n" + vmfrag::finding_comment(*after->finding));
    output = out.str();
  } else {
    std::istringstream text(bytes);
    vmfrag::TraceHeader header;
    std::vector<vmfrag::Op> ops;
    try {
      vmfrag::TraceReader reader(text, pos[2]);
      for (vmfrag::Op op; reader.next(op);) ops.push_back(op);
      header = reader.header();
    } catch (const vmfrag::InputError& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 2;
    }
    if (clamp) {
      vmfrag::TraceHeader target = config.header;
      if (config.header_from_bytes) {
        target.region_bytes = 4ull << 20;
        target.guard_pages = 1;
        target.lazy_pages = 8;
        target.phys_bytes = 4ull << 20;
      }
      const vmfrag::DecodedInput c = vmfrag::clamp_to_config(target, ops, config);
      header = c.header;
      ops = c.ops;
    }
    const auto encoded = vmfrag::encode_input(header, ops, config);
    if (!encoded) return usage(pos[2] + ": not expressible as a " + pos[1] + " input (try --clamp)");
    output.assign(encoded->begin(), encoded->end());
  }
  const std::string tmp = out_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << output;
    if (!out.flush()) return usage(out_path + ": cannot write");
  }
  if (std::rename(tmp.c_str(), out_path.c_str()) != 0) return usage(out_path + ": cannot write");
  return 0;
}
