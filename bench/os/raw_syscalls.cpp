#include "bench/os/raw_syscalls.h"

#include <sys/mman.h>

#include <cerrno>

namespace vmfrag::bench {

bool raw_replayable(OsCall call) {
  switch (call) {
    case OsCall::kMapShared:
    case OsCall::kUnmap:
    case OsCall::kProtectReadWrite:
    case OsCall::kProtectNone:
    case OsCall::kDropPages:
    case OsCall::kPopulateWrite:
    case OsCall::kReserveFixed:
    case OsCall::kReserveHole:
      return true;
    default:
      return false;
  }
}

std::string raw_syscall_name(OsCall call) {
  switch (call) {
    case OsCall::kMapShared: return "mmap(MAP_SHARED|MAP_FIXED)";
    case OsCall::kUnmap: return "munmap";
    case OsCall::kProtectReadWrite: return "mprotect(PROT_READ|PROT_WRITE)";
    case OsCall::kProtectNone: return "mprotect(PROT_NONE)";
    case OsCall::kDropPages: return "madvise(MADV_DONTNEED)";
    case OsCall::kPopulateWrite: return "madvise(MADV_POPULATE_WRITE)";
    case OsCall::kReserveFixed: return "mmap(PROT_NONE, MAP_FIXED)";
    case OsCall::kReserveHole: return "mmap(PROT_NONE, MAP_FIXED_NOREPLACE)";
    default: return os_call_name(call);
  }
}

namespace {
int errno_of(bool ok) { return ok ? 0 : errno; }

int reserve_anonymous(void* addr, std::size_t bytes, int fixed_flag) {
  return errno_of(mmap(addr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | fixed_flag, -1, 0) !=
                  MAP_FAILED);
}
}  // namespace

int replay_raw(const std::vector<OsCallRecord>& calls) {
  int differences = 0;
  for (const OsCallRecord& c : calls) {
    int r = -1;
    switch (c.call) {
      case OsCall::kMapShared: {
        const int flags = MAP_SHARED | (c.fixed ? MAP_FIXED : 0) | (c.populate ? MAP_POPULATE : 0);
        r = errno_of(mmap(c.addr, c.bytes, PROT_READ | PROT_WRITE, flags, c.fd, static_cast<off_t>(c.offset)) !=
                     MAP_FAILED);
        break;
      }
      case OsCall::kUnmap: r = errno_of(munmap(c.addr, c.bytes) == 0); break;
      case OsCall::kProtectReadWrite: r = errno_of(mprotect(c.addr, c.bytes, PROT_READ | PROT_WRITE) == 0); break;
      case OsCall::kProtectNone: r = errno_of(mprotect(c.addr, c.bytes, PROT_NONE) == 0); break;
      case OsCall::kDropPages: r = errno_of(madvise(c.addr, c.bytes, MADV_DONTNEED) == 0); break;
      case OsCall::kPopulateWrite: r = errno_of(madvise(c.addr, c.bytes, MADV_POPULATE_WRITE) == 0); break;
      case OsCall::kReserveFixed: r = reserve_anonymous(c.addr, c.bytes, MAP_FIXED); break;
      case OsCall::kReserveHole: r = reserve_anonymous(c.addr, c.bytes, MAP_FIXED_NOREPLACE); break;
      default: break;  // not replayable: counts as a difference
    }
    if (r != c.result) ++differences;
  }
  return differences;
}

}  // namespace vmfrag::bench
