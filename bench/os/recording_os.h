// RecordingOs: an OsInterface that forwards every call to the real one and, while recording is
// on, appends the call and its arguments to a list. Suite 2 records the system calls one
// vmalloc+vfree pair issues and replays them bare (replay_raw) to price the allocator's own work
// against the kernel's.
//
// Guarantees: forwarding is exact (arguments and results are passed through unchanged); a
// recorded call keeps the result the real call returned; recording off costs one branch per call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "allocator/os/os.h"

namespace vmfrag::bench {

struct RecordedOsCall {
  enum class Kind : std::uint8_t { kMapShared, kUnmap, kProtect, kDropPages, kPopulateWrite, kReserveFixed, kOther };
  Kind kind = Kind::kOther;
  void* addr = nullptr;
  std::size_t bytes = 0;
  int fd = -1;                   // kMapShared
  std::uint64_t offset = 0;      // kMapShared
  bool fixed = false;            // kMapShared
  bool populate = false;         // kMapShared
  bool flag = false;             // kProtect: read-write; kReserveFixed: replace
  int result = 0;                // what the real call returned
};
[[nodiscard]] std::string recorded_call_name(RecordedOsCall::Kind kind);

class RecordingOs final : public ForwardingOs {
 public:
  explicit RecordingOs(OsInterface& inner) : ForwardingOs(inner) {}

  void start_recording() {
    calls_.clear();
    recording_ = true;
  }
  std::vector<RecordedOsCall> stop_recording() {
    recording_ = false;
    return std::move(calls_);
  }

  int map_shared(void* addr, std::size_t bytes, int fd, std::uint64_t offset, bool fixed, bool populate,
                 void** out) override;
  int unmap(void* addr, std::size_t bytes) override;
  int protect(void* addr, std::size_t bytes, Protection protection) override;
  int drop_pages(void* addr, std::size_t bytes) override;
  int populate_write(void* addr, std::size_t bytes) override;
  int reserve_fixed(void* addr, std::size_t bytes, bool replace) override;
  int reserve(std::size_t bytes, std::size_t align, void** base) override;
  int release(void* base, std::size_t bytes) override;
  int memfd_create(const char* name, std::size_t bytes, int* fd) override;
  int advise_hugepage(void* addr, std::size_t bytes) override;

 private:
  void note(const RecordedOsCall& call) {
    if (recording_) calls_.push_back(call);
  }
  bool recording_ = false;
  std::vector<RecordedOsCall> calls_;
};

// Issues each recorded call again as the bare system call the Linux OsInterface makes for it
// (mmap, munmap, mprotect, madvise), with the same arguments, in order. Returns the number of
// calls whose result differs from the recorded one (0 when the replay did exactly the same).
// kOther calls (reservations, memfd creation) are not replayable: recording one is the caller's
// error, and it is counted as a difference.
int replay_raw(const std::vector<RecordedOsCall>& calls);

}  // namespace vmfrag::bench
