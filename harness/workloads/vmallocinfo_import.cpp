// /proc/vmallocinfo parsing, profiles, snapshot replay, and the vmallocinfo_profile workload.
#include "harness/trace/text_fields.h"
#include "harness/workloads/vmallocinfo_import.h"

#include <algorithm>
#include <charconv>
#include <sstream>
#include <vector>

#include "harness/files/input_file.h"
#include "harness/trace/trace_reader.h"
#include "harness/workloads/emitter.h"
#include "harness/workloads/prng.h"

namespace vmfrag {
namespace {

constexpr std::uint64_t kPage = kPageSize;
constexpr std::uint64_t kMiB = 1024 * 1024;

std::uint64_t round_up(std::uint64_t x, std::uint64_t to) { return (x + to - 1) / to * to; }

bool parse_u64(std::string_view text, int base, std::uint64_t& out) {
  if (text.empty()) return false;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out, base);
  return ec == std::errc() && ptr == end;
}

bool is_flag(std::string_view w) {
  return w == "ioremap" || w == "vmalloc" || w == "vmap" || w == "user" || w == "dma-coherent" ||
         w == "vpages";
}

VmallocinfoArea parse_line(std::string_view text, const std::string& file, std::uint64_t line) {
  const auto fail = [&](const std::string& message) -> InputError { return InputError(file, line, message); };
  const auto words = split_fields(text);
  if (words.size() < 3) throw fail("expected '0x<start>-0x<end> <size> <description>'");
  VmallocinfoArea area;
  area.line = line;
  const std::string_view range = words[0];
  const std::size_t dash = range.find('-');
  if (dash == std::string_view::npos || range.substr(0, 2) != "0x" || range.substr(dash + 1, 2) != "0x" ||
      !parse_u64(range.substr(2, dash - 2), 16, area.start) || !parse_u64(range.substr(dash + 3), 16, area.end))
    throw fail("bad address range '" + std::string(range) + "'");
  if (!parse_u64(words[1], 10, area.span_bytes)) throw fail("bad size '" + std::string(words[1]) + "'");
  if (area.span_bytes == 0 || area.span_bytes % kPage != 0)
    throw fail("size " + std::string(words[1]) + " is not a positive multiple of 4096");
  if (words.size() == 3 && words[2] == "vm_map_ram") {
    area.kind = VmallocinfoKind::kVmMapRam;
    area.has_guard = false;
  } else if (words.size() == 4 && words[2] == "unpurged" && words[3] == "vm_area") {
    area.kind = VmallocinfoKind::kUnpurged;
    area.has_guard = true;
  } else {
    bool ioremap = false, vmalloc = false, vmap = false;
    for (std::size_t i = 2; i < words.size(); ++i) {
      const std::string_view w = words[i];
      const std::size_t eq = w.find('=');
      if (eq != std::string_view::npos) {
        const std::string_view key = w.substr(0, eq), value = w.substr(eq + 1);
        std::uint64_t number = 0;
        const bool numeric = key == "phys" ? (value.substr(0, 2) == "0x" && parse_u64(value.substr(2), 16, number))
                                           : parse_u64(value, 10, number);
        const bool known = key == "pages" || key == "phys" ||
                           (key.size() > 1 && key[0] == 'N' && parse_u64(key.substr(1), 10, number));
        if (!known || !numeric) throw fail("bad field '" + std::string(w) + "'");
      } else if (is_flag(w)) {
        ioremap |= w == "ioremap";
        vmalloc |= w == "vmalloc";
        vmap |= w == "vmap";
      } else if (w.front() == '[' && w.back() == ']') {
        // the module owning the caller symbol
      } else if (i == 2) {
        area.caller = std::string(w.substr(0, w.find('+')));
      }  // else: a flag this parser does not know (newer kernel); ignored
    }
    area.kind = ioremap ? VmallocinfoKind::kIoremap
                : vmalloc ? VmallocinfoKind::kVmalloc
                : vmap    ? VmallocinfoKind::kVmap
                          : VmallocinfoKind::kOther;
    // pcpu_get_vm_areas() builds vmap_areas of exactly the requested size: no guard page.
    area.has_guard = area.caller != "pcpu_get_vm_areas";
  }
  area.usable_bytes = area.has_guard && area.span_bytes > kPage ? area.span_bytes - kPage : area.span_bytes;
  return area;
}

// The allocation size whose footprint under guard 1 is `span` (see import_vmallocinfo).
std::uint64_t replay_size(std::uint64_t span) { return std::max(span > kPage ? span - kPage : span, kPage); }

}  // namespace

std::string_view vmallocinfo_kind_name(VmallocinfoKind kind) {
  switch (kind) {
    case VmallocinfoKind::kVmalloc: return "vmalloc";
    case VmallocinfoKind::kVmap: return "vmap";
    case VmallocinfoKind::kIoremap: return "ioremap";
    case VmallocinfoKind::kVmMapRam: return "vm_map_ram";
    case VmallocinfoKind::kUnpurged: return "unpurged";
    case VmallocinfoKind::kOther: return "other";
  }
  return "other";
}

void parse_vmallocinfo(std::istream& in, const std::string& file,
                       const std::function<void(const VmallocinfoArea&)>& visit) {
  std::string text;
  std::uint64_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (split_fields(text).empty()) continue;
    visit(parse_line(text, file, line));
  }
  if (in.bad()) throw InputError(file, line, "read error");
}

VmallocinfoProfile load_vmallocinfo_profile(std::istream& in, const std::string& file) {
  VmallocinfoProfile profile;
  bool any = false;
  parse_vmallocinfo(in, file, [&](const VmallocinfoArea& a) {
    any = true;
    ++profile.usable_histogram[a.kind][a.usable_bytes];
    if (a.end < a.start || a.end - a.start != a.span_bytes) profile.addresses_real = false;
    if (a.kind == VmallocinfoKind::kUnpurged) {
      ++profile.unpurged_areas;
      profile.unpurged_span_bytes += a.span_bytes;
    } else {
      ++profile.live_areas;
      profile.live_span_bytes += a.span_bytes;
    }
  });
  if (!any) profile.addresses_real = false;
  return profile;
}

TraceHeader import_vmallocinfo(std::istream& in, const std::string& file, OpSink& sink,
                               const VmallocinfoImportOptions& options) {
  std::vector<VmallocinfoArea> areas;
  bool real = true;
  parse_vmallocinfo(in, file, [&](const VmallocinfoArea& a) {
    if (a.end < a.start || a.end - a.start != a.span_bytes || a.start % kPage != 0) real = false;
    areas.push_back(a);
  });
  if (areas.empty()) throw InputError(file, 0, "no areas in the snapshot");
  if (real) {
    std::stable_sort(areas.begin(), areas.end(),
                     [](const VmallocinfoArea& x, const VmallocinfoArea& y) { return x.start < y.start; });
    for (std::size_t i = 1; i < areas.size(); ++i)
      if (areas[i].start < areas[i - 1].end) real = false;  // overlapping: not usable as addresses
    if (!real)
      std::stable_sort(areas.begin(), areas.end(),
                       [](const VmallocinfoArea& x, const VmallocinfoArea& y) { return x.line < y.line; });
  }
  if (!real) {  // pack: live areas in file order, then the unpurged ones
    std::stable_partition(areas.begin(), areas.end(),
                          [](const VmallocinfoArea& a) { return a.kind != VmallocinfoKind::kUnpurged; });
  }
  // Footprints and the gap (filler) before each area.
  std::vector<std::uint64_t> size(areas.size()), filler_before(areas.size(), 0);
  std::uint64_t needed = 0;
  for (std::size_t i = 0; i < areas.size(); ++i) {
    size[i] = replay_size(areas[i].span_bytes);
    if (real && i + 1 < areas.size()) {
      const std::uint64_t gap = areas[i + 1].start - areas[i].end;
      if (gap == kPage) size[i] += kPage;          // folded into this area
      else if (gap > kPage) filler_before[i + 1] = gap;
    }
  }
  if (real) {
    needed = areas.back().end - areas.front().start;
  } else {
    for (std::uint64_t s : size) needed += s + kPage;
  }
  TraceHeader header;
  header.region_bytes = round_up(needed, kMiB);
  if (options.region_bytes != 0) {
    if (options.region_bytes < needed)
      throw InputError("<args>", 0, "--region " + std::to_string(options.region_bytes) +
                                        " is smaller than the snapshot's span " + std::to_string(needed));
    header.region_bytes = options.region_bytes;
  }
  if (const std::string e = header_error(header); !e.empty())
    throw InputError(file, 0, "the snapshot needs a region of " + std::to_string(header.region_bytes) + " bytes: " + e);
  // The replay must hold every unpurged area lazily, as the kernel did: a purge happens only when
  // the lazily held pages exceed the threshold, so a threshold of at least their footprint keeps
  // them all (the snapshot's kernel may have had more CPUs, hence a higher lazy_max_pages()).
  std::uint64_t unpurged_pages = 0;
  for (std::size_t i = 0; i < areas.size(); ++i)
    if (areas[i].kind == VmallocinfoKind::kUnpurged) unpurged_pages += size[i] / kPage + 1;
  header.lazy_pages = std::max(header.lazy_pages, unpurged_pages);
  workload_detail::Emitter e(sink, header);
  std::vector<std::uint64_t> fillers, unpurged;
  for (std::size_t i = 0; i < areas.size(); ++i) {
    if (filler_before[i] != 0) fillers.push_back(e.alloc(filler_before[i] - kPage));
    const std::uint64_t id = e.alloc(size[i]);
    if (areas[i].kind == VmallocinfoKind::kUnpurged) unpurged.push_back(id);
  }
  // Gaps are free space in the snapshot, not lazily held: free the fillers and purge them at once.
  for (std::uint64_t id : fillers) e.free(id);
  if (!fillers.empty()) e.purge();
  for (std::uint64_t id : unpurged) e.free(id);
  return header;
}

namespace workload_detail {

// vmallocinfo_profile: sizes drawn from a snapshot, churned around the snapshot's live set.
TraceHeader gen_vmallocinfo_profile(const WorkloadParams& params, std::uint64_t default_ops, OpSink& sink) {
  const std::string path = params.profile_path.empty() ? std::string(kDefaultProfilePath) : params.profile_path;
  InputFile file(path, "the vmallocinfo profile");
  std::istream& in = file.stream();
  std::vector<std::uint64_t> sizes;  // one entry per area: sampling an index weights by count
  std::uint64_t live = 0, span = 0;
  parse_vmallocinfo(in, path, [&](const VmallocinfoArea& a) {
    sizes.push_back(round_up(a.usable_bytes, kPage));
    span += a.span_bytes;
    if (a.kind != VmallocinfoKind::kUnpurged) ++live;
  });
  if (sizes.empty()) throw InputError(path, 0, "the profile has no areas");
  live = std::max<std::uint64_t>(live, 1);
  TraceHeader header;
  header.region_bytes = std::max<std::uint64_t>(round_up(4 * span, kMiB), 16 * kMiB);
  if (params.region_bytes != 0) header.region_bytes = params.region_bytes;
  if (const std::string e = header_error(header); !e.empty()) throw_bad_args(e);
  const std::uint64_t ops = params.ops != 0 ? params.ops : default_ops;
  Prng rng(params.seed);
  Emitter e(sink, header);
  std::vector<std::uint64_t> ids;
  auto alloc = [&] { ids.push_back(e.alloc(sizes[rng.below(sizes.size())])); };
  auto free_one = [&] {
    const std::uint64_t i = rng.below(ids.size());
    e.free(ids[i]);
    ids[i] = ids.back();
    ids.pop_back();
  };
  for (std::uint64_t i = 0; i < live && e.emitted() < ops; ++i) alloc();  // boot: reach the live set
  while (e.emitted() < ops) {
    const std::uint64_t n = ids.size();
    if (n == 0 || n * 10 < live * 9) alloc();
    else if (n * 10 > live * 11) free_one();
    else if (rng.chance(1, 2)) alloc();
    else free_one();
  }
  return header;
}

}  // namespace workload_detail
}  // namespace vmfrag
