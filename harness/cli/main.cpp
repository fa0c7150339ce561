// vmfrag: the command-line front end of the harness (replay, gen, minimize, import-*, workloads).
// Exit codes: 0 ran (allocation failures are results), 2 bad input, bad usage or an unwritable
// output, 3 divergence from the reference model or an invariant violation, 1 an internal error.
// Bad input prints one line `FILE:LINE: error: ...` (`FILE: error: ...` for the whole file,
// `vmfrag: error: ...` for the command line) to stderr and loses nothing: outputs go through
// OutputFile (harness/files/output_file.h), which never replaces an input or a special file and
// leaves no temporary behind. Every numeric option is checked against the range its --help states.
#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <span>
#include <new>
#include <nlohmann/json.hpp>
#include <sstream>

#include "allocator/os/fault_injection.h"
#include "allocator/phys/page_fault_injection.h"
#include "allocator/vspace/virtual_space.h"
#include "harness/decode/op_decoder.h"
#include "harness/files/input_file.h"
#include "harness/files/output_file.h"
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

// A whole number within [lo, hi], as an option's value; the range is the one its --help states.
std::uint64_t parse_number_arg(const std::string& option, const std::string& text, std::uint64_t lo,
                               std::uint64_t hi) {
  const ParsedNumber n = parse_count_checked(text);
  if (n.status != NumberTextStatus::kOk || n.value < lo || n.value > hi)
    throw InputError("<args>", 0, option + ": '" + text + "' is not a whole number from " + std::to_string(lo) +
                                      " to " + std::to_string(hi));
  return n.value;
}

// A size (bytes, or K/M/G/T) that is a page multiple within [lo, hi].
std::uint64_t parse_region_arg(const std::string& option, const std::string& text, std::uint64_t lo,
                               std::uint64_t hi) {
  const std::optional<std::uint64_t> v = parse_size(text);
  if (!v || *v % kPageSize != 0 || *v < lo || *v > hi)
    throw InputError("<args>", 0, option + ": '" + text + "' is not a multiple of 4096 bytes from " + format_size(lo) +
                                      " to " + format_size(hi) + " (bytes, or a K/M/G/T suffix)");
  return *v;
}

InputRef input_ref(const InputFile& file) { return {file.path() == "-" ? "<stdin>" : file.path(), file.identity()}; }

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
  if (r.thread_cache) {
    const ThreadCacheStats& c = *r.thread_cache;
    o << "  thread cache: " << c.hits << " hits, " << c.misses << " misses, " << c.drains << " drains; "
      << c.cached_areas << " areas (" << c.cached_pages << " pages) cached at the end\n";
  }
  return o.str();
}

int cmd_replay(const std::string& path, bool json, bool differential, std::uint64_t check_every,
               const std::string& backing, const std::string& timeline, std::uint64_t timeline_every, std::size_t maps,
               const std::string& fail_os, const std::string& fail_phys, bool thread_cache) {
  if (thread_cache && differential)
    throw InputError("<args>", 0, "--thread-cache cannot be combined with --differential: the reference model places "
                     "by exact lowest fit");
  std::unique_ptr<FailingOs> failing_os;
  if (!fail_os.empty()) {
    std::string why;
    const std::optional<FailingOs::Which> which = parse_fail_os_spec(fail_os, &why);
    if (!which) throw InputError("<args>", 0, "--fail-os: " + why);
    if (differential)
      throw InputError("<args>", 0, "--fail-os cannot be combined with --differential: the reference model has no OS");
    failing_os = std::make_unique<FailingOs>(linux_os(), *which);
  }
  std::unique_ptr<FailingPageAllocs> failing_pages;
  if (!fail_phys.empty()) {
    std::string why;
    const std::optional<FailPhysSpec> spec = parse_fail_phys_spec(fail_phys, &why);
    if (!spec) throw InputError("<args>", 0, "--fail-phys: " + why);
    if (differential)
      throw InputError("<args>", 0, "--fail-phys cannot be combined with --differential: the reference model's page "
                       "allocator does not fail on request");
    failing_pages = std::make_unique<FailingPageAllocs>(spec->which, spec->kind);
  }
  std::optional<Backing> backing_override;
  if (backing == "none") backing_override = Backing::kNone;
  if (backing == "anon") backing_override = Backing::kAnon;
  if (backing == "memfd") backing_override = Backing::kMemfd;
  if (!backing.empty() && !backing_override)
    throw InputError("<args>", 0, "--backing " + backing + ": expected none, anon or memfd");
  InputFile file(path, "trace");
  std::unique_ptr<OutputFile> timeline_out;
  if (!timeline.empty()) timeline_out = std::make_unique<OutputFile>(timeline, std::vector{input_ref(file)});
  TraceReader reader(file.stream(), path);
  ReaderSource source(reader);
  ReplayOptions options;
  options.differential = differential;
  options.check_every = check_every;
  options.maps_at_failures = maps;
  options.backing = backing_override;
  options.os = failing_os.get();
  options.page_faults = failing_pages.get();
  if (thread_cache) options.thread_cache = ThreadCacheConfig{};
  // A sampled timeline (--timeline-every N > 1) keeps every N-th op, every op that failed and the
  // last op (held back until the next one shows it was not the last), after a header line that says
  // so; N = 1 writes every op and no header, as before.
  std::string held_back;
  if (timeline_out) {
    std::ostream& tl = timeline_out->stream();
    if (timeline_every > 1)
      tl << R"({"format":"vmfrag-timeline","version":1,"every":)" << timeline_every << "}\n";
    options.on_op = [&tl, &held_back, timeline_every](std::uint64_t i, const Op& op, const VirtualSpace& vs, bool ok,
                                                      FailureKind f, std::uint64_t off) {
      if (ok && i % timeline_every != 0) {
        held_back = timeline_line(i, op, vs, ok, f, off);
        return;
      }
      held_back.clear();
      tl << timeline_line(i, op, vs, ok, f, off) << '\n';
    };
  }
  const ReplayResult r = replay(source, options);
  if (timeline_out) {
    if (!held_back.empty()) timeline_out->stream() << held_back << '\n';
    timeline_out->commit();
  }
  // Said on stderr either way: an injection that never happened must not pass unnoticed.
  auto say_injected = [](const char* flag, const std::string& spec, bool rate, std::uint64_t injected) {
    if (rate)
      std::fprintf(stderr, "vmfrag: %s %s: %" PRIu64 " failure%s injected\n", flag, spec.c_str(), injected,
                   injected == 1 ? "" : "s");
    else
      std::fprintf(stderr, "vmfrag: %s %s: %s\n", flag, spec.c_str(),
                   injected != 0 ? "failure injected" : "that call was never made: nothing injected");
  };
  if (failing_os) say_injected("--fail-os", fail_os, fail_os.rfind("rate:", 0) == 0, failing_os->failures_injected());
  if (failing_pages)
    say_injected("--fail-phys", fail_phys, fail_phys.rfind("rate:", 0) == 0, failing_pages->failures_injected());
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

int cmd_gen(const std::string& name, std::uint64_t seed, std::uint64_t ops, std::uint64_t region_bytes,
            const std::string& profile, const std::string& out_path) {
  const WorkloadInfo* info = find_workload(name);
  if (info == nullptr) throw InputError("<args>", 0, "unknown workload '" + name + "' (see 'vmfrag workloads')");
  if (!profile.empty() && !info->uses_profile)
    throw InputError("<args>", 0, "--profile: workload '" + name + "' does not read a profile");
  WorkloadParams params;
  params.seed = seed;
  params.ops = ops;
  params.region_bytes = region_bytes;
  params.profile_path = profile;
  std::vector<InputRef> inputs;
  if (info->uses_profile) {
    const std::string p = profile.empty() ? std::string(kDefaultProfilePath) : profile;
    inputs.push_back({p, identity_of_path(p)});
  }
  OutputFile out(out_path, inputs);
  TraceWriterSink sink(out.stream(), "generated by: vmfrag gen " + name + " --seed " + std::to_string(seed) +
                                         (ops ? " --ops " + std::to_string(ops) : "") +
                                         (region_bytes ? " --region " + format_size(region_bytes) : ""));
  (void)generate(name, params, sink);
  out.commit();
  return kExitOk;
}

int cmd_minimize(const std::string& path, const std::string& out_path) {
  InputFile file(path, "trace");
  TraceReader reader(file.stream(), path);
  OutputFile out(out_path, {input_ref(file)});  // refused here, before the work, if it is the input
  std::vector<Op> ops;
  for (Op op; reader.next(op);) ops.push_back(op);
  const MinimizeResult m = minimize_trace(reader.header(), ops);
  if (m.kind == FailureKind::kNone) throw InputError(path, 0, "nothing to minimize: no allocation fails in this trace");
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
  InputFile in(path);
  OutputFile out(out_path, {input_ref(in)});
  TraceWriterSink sink(out.stream(), "imported by: vmfrag " + what + " " + path);
  import(in.stream(), sink);
  out.commit();
  return kExitOk;
}

// decode: a fuzz input (any bytes) as the vmtrace the target replays, so every crash, finding or
// corpus entry can be read, replayed and minimised like any trace.
int cmd_decode(const std::string& path, const std::string& target, const std::string& out_path) {
  const std::optional<DecodeConfig> config = decode_config_for(target);
  if (!config) throw InputError("<args>", 0, "--target " + target + ": expected " + kDecodeTargetNames);
  InputFile in(path, "fuzz input");
  OutputFile out(out_path, {input_ref(in)});
  std::string bytes((std::istreambuf_iterator<char>(in.stream())), std::istreambuf_iterator<char>());
  const DecodedInput decoded = decode_input(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()), *config);
  (void)write_decoded_trace(out.stream(), decoded, "decoded by vmfrag decode from " + path + " (" + target + ")");
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

// CLI11's own parse errors, in the same one-line form as ours.
std::string cli11_failure_message(const CLI::App* app, const CLI::Error& e) {
  std::string command = "vmfrag";
  for (const CLI::App* sub : app->get_subcommands()) command += " " + sub->get_name();
  return "vmfrag: error: " + std::string(e.what()) + " (see '" + command + " --help')\n";
}

constexpr std::uint64_t kMaxOps = 1'000'000'000;       // 1e9 ops: a ~20 GB trace
constexpr std::uint64_t kMaxCheckEvery = 1'000'000'000'000;
constexpr std::uint64_t kMaxMaps = 1000;               // each map is O(free extents) in the JSON
constexpr std::uint64_t kMinWorkloadRegion = 1ull << 20;

int run(int argc, char** argv) {
  CLI::App app{"vmfrag: replay, generate and minimise vmalloc fragmentation traces", "vmfrag"};
  app.require_subcommand(1);
  app.failure_message(cli11_failure_message);

  std::string trace, out_path, backing, timeline, region, profile, workload, fail_os, fail_phys;
  std::string check_every_text = "0", seed_text, ops_text, maps_text = "16", timeline_every_text = "1";
  bool json = false, differential = false, thread_cache = false;

  auto* replay_cmd = app.add_subcommand("replay", "replay a vmtrace on the allocator");
  replay_cmd->add_option("TRACE", trace, "trace file, or - for standard input")->required();
  replay_cmd->add_flag("--json", json, "print the result as one JSON object");
  replay_cmd->add_flag("--differential", differential, "run the reference model beside; exit 3 at a divergence");
  replay_cmd->add_option("--check-every", check_every_text, "run check() every N ops, N from 0 (never) to 10^12")
      ->type_name("N");
  replay_cmd->add_option("--backing", backing, "override the trace's backing: none, anon or memfd");
  replay_cmd->add_option("--timeline", timeline, "write per-op metrics as JSON Lines to FILE")->type_name("FILE");
  replay_cmd->add_option("--timeline-every", timeline_every_text,
                         "keep every N-th op in the timeline, plus every failed op and the last, N from 1 (every op, "
                         "the default) to 10^12; N > 1 starts the file with a header line saying N")->type_name("N");
  replay_cmd->add_option("--fail-os", fail_os, "fail OS calls: KIND:N[:ERRNO], the N-th (from 0) call of KIND "
                                              "(reserve, map_shared, protect-rw, reserve_fixed, ...), or rate:P/Q:SEED[:ERRNO], "
                                              "each fallible call with probability P/Q drawn from SEED; ERRNO EIO (default), "
                                              "ENOMEM, EAGAIN, EPERM or EACCES")->type_name("SPEC");
  replay_cmd->add_option("--fail-phys", fail_phys, "fail page allocations: KIND:N[:FAILURE], the N-th (from 0) "
                                                  "allocation of KIND (block: kmalloc, pages: vmalloc/vmap pages), or "
                                                  "rate:P/Q:SEED[:FAILURE]; FAILURE no-physical-memory (default) or "
                                                  "physical-fragmentation")->type_name("SPEC");
  replay_cmd->add_flag("--thread-cache", thread_cache,
                       "replay a (page-aligned, up to 64 pages) and k (up to order 3) through an opt-in per-thread "
                       "cache of freed areas and blocks (allocator/README.md): what the kernel's per-CPU pooling does "
                       "to placement and fragmentation; not with --differential");
  replay_cmd->add_option("--maps", maps_text, "record the address-space map at the first N failures, N from 0 to 1000 "
                                              "(default 16)")->type_name("N");

  auto* gen_cmd = app.add_subcommand("gen", "write a seeded workload as a vmtrace");
  gen_cmd->add_option("WORKLOAD", workload, "workload name (see 'vmfrag workloads')")->required();
  gen_cmd->add_option("--seed", seed_text, "seed, from 0 to 18446744073709551615")->required()->type_name("S");
  gen_cmd->add_option("--ops", ops_text, "number of ops, from 1 to 1000000000 (default: the workload's); the trace "
                                         "has at most N + max(64, N/50)")->type_name("N");
  gen_cmd->add_option("--region", region, "region size, a multiple of 4096 from 1M to 16T (bytes or K/M/G/T); "
                                          "default: the workload's")->type_name("SIZE");
  gen_cmd->add_option("--profile", profile, "vmallocinfo snapshot for profile-driven workloads (default: the "
                                            "sample in the source tree)")->type_name("FILE");
  gen_cmd->add_option("-o,--output", out_path, "output file (default standard output)")->type_name("FILE");

  auto* min_cmd = app.add_subcommand("minimize", "shrink a trace keeping its first failure's kind");
  min_cmd->add_option("TRACE", trace, "trace file, or - for standard input")->required();
  min_cmd->add_option("-o,--output", out_path, "output file")->required()->type_name("FILE");

  auto* vi_cmd = app.add_subcommand("import-vmallocinfo", "a /proc/vmallocinfo snapshot as a trace");
  vi_cmd->add_option("FILE", trace, "snapshot file, or - for standard input")->required();
  vi_cmd->add_option("--region", region, "region size, a multiple of 4096 from 64K to 16T, at least the snapshot's "
                                         "span (default: the span rounded up to 1M)")->type_name("SIZE");
  vi_cmd->add_option("-o,--output", out_path, "output file (default standard output)")->type_name("FILE");

  auto* ml_cmd = app.add_subcommand("import-malloclab", "a CS:APP malloc-lab .rep trace as a vmtrace");
  ml_cmd->add_option("FILE", trace, "malloc-lab trace, or - for standard input")->required();
  ml_cmd->add_option("--region", region, "region size, a multiple of 4096 from 64K to 16T (default: from the "
                                         "suggested heap size, at least 64K)")->type_name("SIZE");
  ml_cmd->add_option("-o,--output", out_path, "output file (default standard output)")->type_name("FILE");

  std::string decode_target = "frag_hunt";
  auto* dec_cmd = app.add_subcommand("decode", "a fuzz input (any bytes) as the vmtrace its target replays");
  dec_cmd->add_option("INPUT", trace, "fuzz input: a corpus entry, crash or finding, or - for standard input")
      ->required();
  dec_cmd->add_option("--target", decode_target, "whose decoder: frag_hunt (default), phys_hunt or ops");
  dec_cmd->add_option("-o,--output", out_path, "output file (default standard output)")->type_name("FILE");

  auto* wl_cmd = app.add_subcommand("workloads", "list the workloads gen knows");
  wl_cmd->add_flag("--json", json, "as JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitInput;
  }

  try {
    int code = kExitInput;
    if (*replay_cmd) {
      code = cmd_replay(trace, json, differential, parse_number_arg("--check-every", check_every_text, 0, kMaxCheckEvery),
                        backing, timeline, parse_number_arg("--timeline-every", timeline_every_text, 1, kMaxCheckEvery),
                        parse_number_arg("--maps", maps_text, 0, kMaxMaps), fail_os, fail_phys, thread_cache);
    } else if (*gen_cmd) {
      const std::uint64_t seed = parse_number_arg("--seed", seed_text, 0, UINT64_MAX);
      const std::uint64_t ops = ops_text.empty() ? 0 : parse_number_arg("--ops", ops_text, 1, kMaxOps);
      const std::uint64_t region_bytes =
          region.empty() ? 0 : parse_region_arg("--region", region, kMinWorkloadRegion, kMaxRegionBytes);
      code = cmd_gen(workload, seed, ops, region_bytes, profile, out_path);
    } else if (*min_cmd) {
      code = cmd_minimize(trace, out_path);
    } else if (*vi_cmd) {
      VmallocinfoImportOptions o;
      o.region_bytes = region.empty() ? 0 : parse_region_arg("--region", region, kMinRegionBytes, kMaxRegionBytes);
      code = cmd_import(trace, out_path, "import-vmallocinfo",
                        [&](std::istream& in, OpSink& sink) { (void)import_vmallocinfo(in, trace, sink, o); });
    } else if (*ml_cmd) {
      MalloclabImportOptions o;
      o.region_bytes = region.empty() ? 0 : parse_region_arg("--region", region, kMinRegionBytes, kMaxRegionBytes);
      code = cmd_import(trace, out_path, "import-malloclab",
                        [&](std::istream& in, OpSink& sink) { (void)import_malloclab(in, trace, sink, o); });
    } else if (*dec_cmd) {
      code = cmd_decode(trace, decode_target, out_path);
    } else if (*wl_cmd) {
      code = cmd_workloads(json);
    }
    std::cout.flush();
    if (!std::cout) throw InputError("<stdout>", 0, "cannot write standard output");
    return code;
  } catch (const InputError& e) {
    // Line 0 means the whole file (cannot open or read it) or, for "<args>", the command line.
    if (e.file() == "<args>")
      std::fprintf(stderr, "vmfrag: error: %s\n", e.message().c_str());
    else if (e.line() == 0)
      std::fprintf(stderr, "%s: error: %s\n", e.file().c_str(), e.message().c_str());
    else
      std::fprintf(stderr, "%s\n", e.what());
    return kExitInput;
  }
}

}  // namespace
}  // namespace vmfrag

// The last resort: no exception leaves main. An InputError never gets here (run() turns it into
// exit 2); anything else is a bug or the machine (out of memory), reported in one line, exit 1.
int main(int argc, char** argv) {
  try {
    return vmfrag::run(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fputs("vmfrag: error: out of memory\n", stderr);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vmfrag: internal error: %s\n", e.what());
  } catch (...) {
    std::fputs("vmfrag: internal error: unknown exception\n", stderr);
  }
  return 1;
}
