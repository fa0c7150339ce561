// Bare system calls for suite 2: the calls a vmalloc+vfree pair made, as allocator/os's
// RecordingOs recorded them (kind, arguments, result), issued again as the plain mmap, munmap,
// mprotect and madvise calls the Linux OsInterface makes for them, with the same arguments, in
// order. Timing that against the pair itself prices the allocator's own work against the kernel's.
//
// Guarantees: each replayable call is issued exactly as linux_os() issues it (same flags, same
// protection); nothing else runs between the calls.
#pragma once

#include <string>
#include <vector>

#include "allocator/os/fault_injection.h"

namespace vmfrag::bench {

// The calls `op` makes through `os`, with the recorder running only for it: calls recorded earlier
// are dropped, and it is paused again afterwards.
template <typename Op>
std::vector<OsCallRecord> record_calls(RecordingOs& os, Op op) {
  (void)os.take_calls();
  os.set_paused(false);
  op();
  os.set_paused(true);
  return os.take_calls();
}

// Whether replay_raw can issue this kind again: the mapping calls, not reservations, memfd
// creation or queries.
[[nodiscard]] bool raw_replayable(OsCall call);

// The bare call a record stands for, e.g. "mmap(MAP_SHARED|MAP_FIXED)", "madvise(MADV_DONTNEED)";
// os_call_name() for a kind that is not replayable.
[[nodiscard]] std::string raw_syscall_name(OsCall call);

// Issues each recorded call again. Returns the number of calls whose result differs from the
// recorded one (0 when the replay did exactly the same). A call that is not replayable is the
// caller's error, and counts as a difference.
int replay_raw(const std::vector<OsCallRecord>& calls);

}  // namespace vmfrag::bench
