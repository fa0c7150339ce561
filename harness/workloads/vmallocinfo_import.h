// /proc/vmallocinfo snapshots: parsing, size profiles, and replay as a trace.
//
// Line forms (mm/vmalloc.c, vmalloc_info_show() and show_purge_info()):
//   0x<start>-0x<end> <size> [<caller>] [pages=N] [phys=0x..] [ioremap] [vmalloc] [vmap] [user]
//                            [dma-coherent] [vpages] [N<node>=<pages>...]      a vm_struct area
//   0x<start>-0x<end> <size> vm_map_ram                                        a VMAP_RAM area
//   0x<start>-0x<end> <size> unpurged vm_area                                  lazily freed, not yet purged
// <size> of a vm_struct line is vm->size, which includes the guard page unless VM_NO_GUARD; the
// usable size is get_vm_area_size() = size - PAGE_SIZE. Areas made by pcpu_get_vm_areas() have no
// guard (their vmap_area is exactly the requested size) and vm_map_ram() areas have none either.
// Unpurged lines print va_end - va_start, which includes the guard of the vm_struct they held.
// Caller symbols may be followed by a "[module]" token. Unknown bare words after the caller are
// accepted and ignored (future flags); malformed addresses or sizes are errors.
// Addresses printed with %pK are hashed unless kptr_restrict allows raw pointers; the parser
// reports whether they look real (end - start == size for every line).
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <map>
#include <string>
#include <string_view>

#include "harness/trace/input_error.h"
#include "harness/trace/op.h"
#include "harness/workloads/workload.h"

namespace vmfrag {

enum class VmallocinfoKind : std::uint8_t { kVmalloc, kVmap, kIoremap, kVmMapRam, kUnpurged, kOther };

[[nodiscard]] std::string_view vmallocinfo_kind_name(VmallocinfoKind kind);

struct VmallocinfoArea {
  std::uint64_t line = 0;         // 1-based line number in the snapshot
  std::uint64_t start = 0, end = 0;  // as printed (possibly hashed)
  std::uint64_t span_bytes = 0;   // the printed size: the address-space footprint
  std::uint64_t usable_bytes = 0; // span minus the guard page where the area has one
  bool has_guard = false;
  VmallocinfoKind kind = VmallocinfoKind::kOther;
  std::string caller;             // symbol without offset ("kernel_clone"), "" if none
};

// Calls visit(area) for every non-blank line, in file order. Throws InputError(file, line, ...) on
// a malformed line. O(bytes) time, O(longest line) memory.
void parse_vmallocinfo(std::istream& in, const std::string& file,
                       const std::function<void(const VmallocinfoArea&)>& visit);

struct VmallocinfoProfile {
  // kind -> usable bytes -> number of areas.
  std::map<VmallocinfoKind, std::map<std::uint64_t, std::uint64_t>> usable_histogram;
  std::uint64_t live_areas = 0;       // every kind except unpurged
  std::uint64_t live_span_bytes = 0;
  std::uint64_t unpurged_areas = 0;
  std::uint64_t unpurged_span_bytes = 0;
  bool addresses_real = true;         // false when %pK hashed them (or the file is empty)
};

// Throws InputError like parse_vmallocinfo. O(bytes + areas log areas).
[[nodiscard]] VmallocinfoProfile load_vmallocinfo_profile(std::istream& in, const std::string& file);

struct VmallocinfoImportOptions {
  std::uint64_t region_bytes = 0;  // 0 = derived (below); else a multiple of 4096 >= the needed span
};

// Snapshot replay: a trace that rebuilds the snapshot's layout under first fit with guard 1.
// Every area is allocated with size max(span - 4096, 4096), so its footprint with the guard is its
// span (the one exception, a 1-page guardless area, takes 2 pages). With real addresses the areas
// are sorted by address and gaps are filled by filler areas freed at the end (a 1-page gap, which
// no guarded area can fill, is folded into the area before it); with hashed addresses the areas are
// packed in file order. The fillers are then freed and purged (`p`): gaps are free space. Unpurged
// areas are allocated in place and then freed, so replay holds them as lazily freed areas exactly
// like the snapshot: `lazy` is the format's 8192 or, when the snapshot holds more unpurged pages
// (guards included), that number, so that no free purges what the kernel had not. Region: the span (real addresses) or the sum of
// footprints (hashed), rounded up to 1 MiB, unless options.region_bytes is set.
// Holds the snapshot's areas in memory (a few thousand lines). Throws InputError(file, line, ...).
TraceHeader import_vmallocinfo(std::istream& in, const std::string& file, OpSink& sink,
                               const VmallocinfoImportOptions& options = {});

}  // namespace vmfrag
