#include "bench/os/recording_os.h"

#include <sys/mman.h>

#include <cerrno>

namespace vmfrag::bench {

using Kind = RecordedOsCall::Kind;

std::string recorded_call_name(Kind kind) {
  switch (kind) {
    case Kind::kMapShared: return "mmap(MAP_SHARED|MAP_FIXED)";
    case Kind::kUnmap: return "munmap";
    case Kind::kProtect: return "mprotect";
    case Kind::kDropPages: return "madvise(MADV_DONTNEED)";
    case Kind::kPopulateWrite: return "madvise(MADV_POPULATE_WRITE)";
    case Kind::kReserveFixed: return "mmap(PROT_NONE, MAP_FIXED)";
    case Kind::kOther: return "other";
  }
  return "other";
}

int RecordingOs::map_shared(void* addr, std::size_t bytes, int fd, std::uint64_t offset, bool fixed, bool populate,
                            void** out) {
  const int r = ForwardingOs::map_shared(addr, bytes, fd, offset, fixed, populate, out);
  note({Kind::kMapShared, addr, bytes, fd, offset, fixed, populate, false, r});
  return r;
}
int RecordingOs::unmap(void* addr, std::size_t bytes) {
  const int r = ForwardingOs::unmap(addr, bytes);
  note({Kind::kUnmap, addr, bytes, -1, 0, false, false, false, r});
  return r;
}
int RecordingOs::protect(void* addr, std::size_t bytes, Protection protection) {
  const int r = ForwardingOs::protect(addr, bytes, protection);
  note({Kind::kProtect, addr, bytes, -1, 0, false, false, protection == Protection::kReadWrite, r});
  return r;
}
int RecordingOs::drop_pages(void* addr, std::size_t bytes) {
  const int r = ForwardingOs::drop_pages(addr, bytes);
  note({Kind::kDropPages, addr, bytes, -1, 0, false, false, false, r});
  return r;
}
int RecordingOs::populate_write(void* addr, std::size_t bytes) {
  const int r = ForwardingOs::populate_write(addr, bytes);
  note({Kind::kPopulateWrite, addr, bytes, -1, 0, false, false, false, r});
  return r;
}
int RecordingOs::reserve_fixed(void* addr, std::size_t bytes, bool replace) {
  const int r = ForwardingOs::reserve_fixed(addr, bytes, replace);
  note({Kind::kReserveFixed, addr, bytes, -1, 0, false, false, replace, r});
  return r;
}
int RecordingOs::reserve(std::size_t bytes, std::size_t align, void** base) {
  const int r = ForwardingOs::reserve(bytes, align, base);
  note({Kind::kOther, nullptr, bytes, -1, 0, false, false, false, r});
  return r;
}
int RecordingOs::release(void* base, std::size_t bytes) {
  const int r = ForwardingOs::release(base, bytes);
  note({Kind::kOther, base, bytes, -1, 0, false, false, false, r});
  return r;
}
int RecordingOs::memfd_create(const char* name, std::size_t bytes, int* fd) {
  const int r = ForwardingOs::memfd_create(name, bytes, fd);
  note({Kind::kOther, nullptr, bytes, -1, 0, false, false, false, r});
  return r;
}
int RecordingOs::advise_hugepage(void* addr, std::size_t bytes) {
  const int r = ForwardingOs::advise_hugepage(addr, bytes);
  note({Kind::kOther, addr, bytes, -1, 0, false, false, false, r});
  return r;
}

namespace {
int errno_of(bool ok) { return ok ? 0 : errno; }
}  // namespace

int replay_raw(const std::vector<RecordedOsCall>& calls) {
  int differences = 0;
  for (const RecordedOsCall& c : calls) {
    int r = 0;
    switch (c.kind) {
      case Kind::kMapShared: {
        const int flags = MAP_SHARED | (c.fixed ? MAP_FIXED : 0) | (c.populate ? MAP_POPULATE : 0);
        r = errno_of(mmap(c.addr, c.bytes, PROT_READ | PROT_WRITE, flags, c.fd, static_cast<off_t>(c.offset)) !=
                     MAP_FAILED);
        break;
      }
      case Kind::kUnmap: r = errno_of(munmap(c.addr, c.bytes) == 0); break;
      case Kind::kProtect: r = errno_of(mprotect(c.addr, c.bytes, c.flag ? PROT_READ | PROT_WRITE : PROT_NONE) == 0); break;
      case Kind::kDropPages: r = errno_of(madvise(c.addr, c.bytes, MADV_DONTNEED) == 0); break;
      case Kind::kPopulateWrite: r = errno_of(madvise(c.addr, c.bytes, MADV_POPULATE_WRITE) == 0); break;
      case Kind::kReserveFixed: {
        const int fixed = c.flag ? MAP_FIXED : MAP_FIXED_NOREPLACE;
        r = errno_of(mmap(c.addr, c.bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | fixed, -1, 0) !=
                     MAP_FAILED);
        break;
      }
      case Kind::kOther: r = -1; break;
    }
    if (r != c.result) ++differences;
  }
  return differences;
}

}  // namespace vmfrag::bench
