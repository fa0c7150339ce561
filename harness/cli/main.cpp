// vmfrag: the command-line front end of the harness (replay, gen, minimize, import-*, workloads).
// Exit codes: 0 ran (allocation failures are results), 2 bad input or usage, 3 divergence from the
// reference model or an invariant violation. Bad input prints `FILE:LINE: error: ...` to stderr and
// writes nothing: output files appear whole (written beside, then renamed) or not at all.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "harness/minimize/minimizer.h"
#include "harness/replay/replay.h"
#include "harness/trace/input_error.h"
#include "harness/trace/size_text.h"
#include "harness/trace/trace_reader.h"
#include "harness/trace/trace_writer.h"
#include "harness/workloads/malloclab_import.h"
#include "harness/workloads/vmallocinfo_import.h"
#include "harness/workloads/workload.h"

namespace vmfrag {
namespace {

constexpr int kExitOk = 0, kExitInput = 2, kExitDivergence = 3;

// An output file that appears only when commit() is called: written to a temporary name beside
// the target, renamed over it at the end. With an empty path it is standard output.
class AtomicOutput {
 public:
  explicit AtomicOutput(std::string path) : path_(std::move(path)) {
    if (path_.empty() || path_ == "-") return;
    tmp_ = path_ + ".tmp." + std::to_string(getpid());
    file_.open(tmp_, std::ios::out | std::ios::trunc | std::ios::binary);
    if (!file_) throw InputError(path_, 0, std::string("cannot write: ") + std::strerror(errno));
  }
  ~AtomicOutput() {
    if (!tmp_.empty() && !committed_) std::remove(tmp_.c_str());
  }
  std::ostream& stream() { return tmp_.empty() ? std::cout : file_; }
  void commit() {
    if (tmp_.empty()) {
      std::cout.flush();
      return;
    }
    file_.close();
    if (!file_ || std::rename(tmp_.c_str(), path_.c_str()) != 0)
      throw InputError(path_, 0, std::string("cannot write: ") + std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string path_, tmp_;
  std::ofstream file_;
  bool committed_ = false;
};

class TraceWriterSink final : public OpSink {
 public:
  explicit TraceWriterSink(std::ostream& out, std::string comment) : writer_(out), comment_(std::move(comment)) {}
  void begin(const TraceHeader& header) override {
    if (!comment_.empty()) writer_.write_comment(comment_);
    writer_.write_header(header);
  }
  void emit(const Op& op) override { writer_.write(op); }
  [[nodiscard]] std::uint64_t ops() const { return writer_.ops_written(); }

 private:
  TraceWriter writer_;
  std::string comment_;
};

class ReaderSource final : public OpSource {
 public:
  explicit ReaderSource(TraceReader& reader) : reader_(reader) {}
  const TraceHeader& header() const override { return reader_.header(); }
  bool next(Op& op) override { return reader_.next(op); }
  std::uint64_t line() const override { return reader_.line(); }
  const std::string& name() const override { return reader_.display_name(); }

 private:
  TraceReader& reader_;
};

std::uint64_t parse_size_arg(const std::string& option, const std::string& text) {
  auto v = parse_size(text);
  if (!v) throw InputError("<args>", 0, option + ": '" + text + "' is not a size (bytes, or K/M/G/T suffix)");
  return *v;
}

std::string human_summary(const ReplayResult& r) {
  std::ostringstream o;
  o << r.trace_name << ": " << r.ops << " ops, " << r.allocs << "/" << r.alloc_attempts << " allocations succeeded, "
    << r.frees << " frees, " << r.failures.size() << " failures";
  for (const auto& [kind, n] : r.failures_by_kind) o << " [" << kind << " " << n << "]";
  o << "\n  peak live " << r.peak_live_bytes << " bytes of " << r.header.region_bytes << "; final: free "
    << r.final_stats.free_bytes << ", largest free " << r.final_stats.largest_free_bytes << ", "
    << r.final_stats.free_extents << " extents, lazy " << r.final_stats.lazy_bytes
    << ", external fragmentation " << r.final_stats.external_fragmentation() << "\n";
  if (!r.failures.empty()) {
    const FailureRecord& f = r.failures.front();
    o << "  first failure: op " << f.op << " (line " << f.line << ") id " << f.id << " size " << f.size << ": "
      << failure_name(f.kind) << " with " << f.free_bytes << " bytes free, largest " << f.largest_free_bytes << "\n";
  }
  return o.str();
}

int cmd_replay(const std::string& path, bool json, bool differential, std::uint64_t check_every,
               const std::string& backing, const std::string& timeline, std::size_t maps) {
  std::optional<Backing> backing_override;
  if (backing == "none") backing_override = Backing::kNone;
  if (backing == "anon") backing_override = Backing::kAnon;
  if (backing == "memfd") backing_override = Backing::kMemfd;
  if (!backing.empty() && !backing_override)
    throw InputError("<args>", 0, "--backing " + backing + ": expected none, anon or memfd");
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) throw InputError(path, 0, std::string("cannot open trace: ") + std::strerror(errno));
    in = &file;
  }
  TraceReader reader(*in, path);
  ReaderSource source(reader);
  ReplayOptions options;
  options.differential = differential;
  options.check_every = check_every;
  options.maps_at_failures = maps;
  options.backing = backing_override;
  std::unique_ptr<AtomicOutput> timeline_out;
  if (!timeline.empty()) {
    timeline_out = std::make_unique<AtomicOutput>(timeline);
    std::ostream& tl = timeline_out->stream();
    options.on_op = [&tl](std::uint64_t i, const Op& op, const VirtualSpace& vs, bool ok, FailureKind f,
                          std::uint64_t off) { tl << timeline_line(i, op, vs, ok, f, off) << '\n'; };
  }
  const ReplayResult r = replay(source, options);
  if (timeline_out) timeline_out->commit();
  if (json) {
    std::cout << replay_result_json(r) << '\n';
  } else {
    std::cout << human_summary(r);
  }
  if (r.divergence) {
    const Divergence& d = *r.divergence;
    std::fprintf(stderr, "%s:%" PRIu64 ": divergence at op %" PRIu64 ": allocator: %s; reference: %s\n", path.c_str(),
                 d.line, d.op, d.allocator.c_str(), d.reference.c_str());
    return kExitDivergence;
  }
  if (!r.invariant_violation.empty()) {
    std::fprintf(stderr, "%s: invariant violation after op %" PRIu64 ": %s\n", path.c_str(), r.invariant_op,
                 r.invariant_violation.c_str());
    return kExitDivergence;
  }
  return kExitOk;
}

int cmd_gen(const std::string& name, std::uint64_t seed, std::uint64_t ops, const std::string& region,
            const std::string& profile, const std::string& out_path) {
  WorkloadParams params;
  params.seed = seed;
  params.ops = ops;
  params.region_bytes = region.empty() ? 0 : parse_size_arg("--region", region);
  params.profile_path = profile;
  AtomicOutput out(out_path);
  TraceWriterSink sink(out.stream(), "generated by: vmfrag gen " + name + " --seed " + std::to_string(seed) +
                                         (ops ? " --ops " + std::to_string(ops) : "") +
                                         (region.empty() ? "" : " --region " + region));
  (void)generate(name, params, sink);
  out.commit();
  return kExitOk;
}

int cmd_minimize(const std::string& path, const std::string& out_path) {
  TraceReader reader = TraceReader::open(path);
  std::vector<Op> ops;
  for (Op op; reader.next(op);) ops.push_back(op);
  const MinimizeResult m = minimize_trace(reader.header(), ops);
  if (m.kind == FailureKind::kNone) throw InputError(path, 0, "nothing to minimize: no allocation fails in this trace");
  AtomicOutput out(out_path);
  TraceWriter writer(out.stream());
  writer.write_comment("minimized by vmfrag minimize from " + path + ": " + std::to_string(m.original_ops) + " ops -> " +
                       std::to_string(m.ops.size()) + " ops in " + std::to_string(m.replays) + " replays");
  writer.write_comment("the last op fails with " + std::string(failure_name(m.kind)) +
                       ", the first failure's kind in the original");
  writer.write_header(m.header);
  for (const Op& op : m.ops) writer.write(op);
  out.commit();
  std::fprintf(stderr, "%s: %" PRIu64 " ops -> %zu ops, first failure %s\n", path.c_str(), m.original_ops, m.ops.size(),
               std::string(failure_name(m.kind)).c_str());
  return kExitOk;
}

template <class Import>
int cmd_import(const std::string& path, const std::string& out_path, const std::string& what, Import import) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, 0, std::string("cannot open: ") + std::strerror(errno));
  AtomicOutput out(out_path);
  TraceWriterSink sink(out.stream(), "imported by: vmfrag " + what + " " + path);
  import(in, sink);
  out.commit();
  return kExitOk;
}

int cmd_workloads(bool json) {
  if (json) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const WorkloadInfo& w : workloads())
      list.push_back({{"name", w.name},
                      {"summary", w.summary},
                      {"default_ops", w.default_ops},
                      {"default_region", w.default_region},
                      {"needs_physical", w.needs_physical},
                      {"randomised", w.randomised},
                      {"uses_profile", w.uses_profile}});
    std::cout << list.dump(2) << '\n';
  } else {
    for (const WorkloadInfo& w : workloads())
      std::cout << w.name << (w.needs_physical ? " (needs the physical layer)" : "") << "\n    " << w.summary << "\n";
  }
  return kExitOk;
}

int run(int argc, char** argv) {
  CLI::App app{"vmfrag: replay, generate and minimise vmalloc fragmentation traces"};
  app.require_subcommand(1);

  std::string trace, out_path, backing, timeline, region, profile, workload;
  bool json = false, differential = false;
  std::uint64_t check_every = 0, seed = 0, ops = 0;
  std::size_t maps = 16;

  auto* replay_cmd = app.add_subcommand("replay", "replay a vmtrace on the allocator");
  replay_cmd->add_option("TRACE", trace, "trace file, or - for standard input")->required();
  replay_cmd->add_flag("--json", json, "print the result as one JSON object");
  replay_cmd->add_flag("--differential", differential, "run the reference model beside; exit 3 at a divergence");
  replay_cmd->add_option("--check-every", check_every, "run check() every N ops (0 = never)");
  replay_cmd->add_option("--backing", backing, "override the trace's backing: none, anon or memfd");
  replay_cmd->add_option("--timeline", timeline, "write per-op metrics as JSON Lines to FILE");
  replay_cmd->add_option("--maps", maps, "record the address-space map at the first N failures (default 16)");

  auto* gen_cmd = app.add_subcommand("gen", "write a seeded workload as a vmtrace");
  gen_cmd->add_option("WORKLOAD", workload, "workload name (see 'vmfrag workloads')")->required();
  gen_cmd->add_option("--seed", seed, "seed")->required();
  gen_cmd->add_option("--ops", ops, "target number of ops (0 = the workload's default)");
  gen_cmd->add_option("--region", region, "region size (bytes or K/M/G/T); default: the workload's");
  gen_cmd->add_option("--profile", profile, "vmallocinfo snapshot for profile-driven workloads");
  gen_cmd->add_option("-o,--output", out_path, "output file (default standard output)");

  auto* min_cmd = app.add_subcommand("minimize", "shrink a trace keeping its first failure's kind");
  min_cmd->add_option("TRACE", trace, "trace file")->required();
  min_cmd->add_option("-o,--output", out_path, "output file")->required();

  auto* vi_cmd = app.add_subcommand("import-vmallocinfo", "a /proc/vmallocinfo snapshot as a trace");
  vi_cmd->add_option("FILE", trace, "snapshot file")->required();
  vi_cmd->add_option("--region", region, "region size (default: the snapshot's span)");
  vi_cmd->add_option("-o,--output", out_path, "output file (default standard output)");

  auto* ml_cmd = app.add_subcommand("import-malloclab", "a CS:APP malloc-lab .rep trace as a vmtrace");
  ml_cmd->add_option("FILE", trace, "malloc-lab trace")->required();
  ml_cmd->add_option("--region", region, "region size (default: from the suggested heap size)");
  ml_cmd->add_option("-o,--output", out_path, "output file (default standard output)");

  auto* wl_cmd = app.add_subcommand("workloads", "list the workloads gen knows");
  wl_cmd->add_flag("--json", json, "as JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitInput;
  }

  try {
    if (*replay_cmd) return cmd_replay(trace, json, differential, check_every, backing, timeline, maps);
    if (*gen_cmd) return cmd_gen(workload, seed, ops, region, profile, out_path);
    if (*min_cmd) return cmd_minimize(trace, out_path);
    if (*vi_cmd) {
      VmallocinfoImportOptions o;
      o.region_bytes = region.empty() ? 0 : parse_size_arg("--region", region);
      return cmd_import(trace, out_path, "import-vmallocinfo",
                        [&](std::istream& in, OpSink& sink) { (void)import_vmallocinfo(in, trace, sink, o); });
    }
    if (*ml_cmd) {
      MalloclabImportOptions o;
      o.region_bytes = region.empty() ? 0 : parse_size_arg("--region", region);
      return cmd_import(trace, out_path, "import-malloclab",
                        [&](std::istream& in, OpSink& sink) { (void)import_malloclab(in, trace, sink, o); });
    }
    if (*wl_cmd) return cmd_workloads(json);
  } catch (const InputError& e) {
    // Line 0 means the whole file (cannot open it) or, for "<args>", the command line.
    if (e.file() == "<args>")
      std::fprintf(stderr, "vmfrag: error: %s\n", e.message().c_str());
    else if (e.line() == 0)
      std::fprintf(stderr, "%s: error: %s\n", e.file().c_str(), e.message().c_str());
    else
      std::fprintf(stderr, "%s\n", e.what());
    return kExitInput;
  }
  return kExitInput;
}

}  // namespace
}  // namespace vmfrag

int main(int argc, char** argv) { return vmfrag::run(argc, argv); }
