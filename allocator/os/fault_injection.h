// Fault injection at the OS boundary: every call the allocator makes to the OS can be observed
// (RecordingOs) or made to fail (FailingOs), deterministically, so a test or `vmfrag replay
// --fail-os` can walk every point where the allocator meets the OS and check that each failure is
// reported with the right kind and leaves every structure intact.
//
// An injection point is one call, named by its kind and its 0-based index among the calls of that
// kind since the interceptor was made ("map_shared:3" is the fourth map_shared). protect() and
// reserve_fixed() count as two kinds each, because their two uses differ in contract: protect-rw
// (making an area accessible) may fail, protect-none (unmapping whole VMAs) is documented never to
// fail; reserve_fixed (replacing a purged range in place) may fail, reserve_hole (re-reserving a
// range just unmapped, MAP_FIXED_NOREPLACE) fails only if something else took the range, which
// leaves the region broken and aborts.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "allocator/os/os.h"

namespace vmfrag {

enum class OsCall : std::uint8_t {
  kReserve,
  kRelease,
  kMemfdCreate,
  kCloseFd,
  kMapShared,
  kUnmap,
  kProtectReadWrite,
  kProtectNone,
  kDropPages,
  kPopulateWrite,
  kReserveFixed,
  kReserveHole,
  kMaxMapCount,
  kAdviseHugepage,
  kAnonHugeBytes,
  kCount
};

// "reserve", "map_shared", "protect-rw", ... (the names --fail-os takes). Never null.
[[nodiscard]] const char* os_call_name(OsCall call);
[[nodiscard]] std::optional<OsCall> os_call_from_name(std::string_view name);

// Calls whose failure the allocator reports (as os-error, map-limit, or by falling back): every
// kind but release, close_fd, protect-none, drop_pages and reserve_hole, which its unmap, purge and
// teardown paths rely on never failing (they abort through VMF_CHECK if the OS breaks that promise).
[[nodiscard]] bool os_call_is_fallible(OsCall call);

// One call as an interceptor saw it: its kind, its index among calls of that kind, its arguments
// (those the kind has; the rest keep their defaults) and what it returned (the injected errno when
// it was failed).
struct OsCallRecord {
  OsCall call = OsCall::kCount;
  std::uint64_t index = 0;
  void* addr = nullptr;       // the range's start (none for reserve, which is given no address)
  std::size_t bytes = 0;
  int fd = -1;                // map_shared
  std::uint64_t offset = 0;   // map_shared: file offset
  bool fixed = false;         // map_shared
  bool populate = false;      // map_shared
  int result = 0;
};

// Forwards every call to `inner`, first asking on_call() whether to fail it instead, and then
// showing the finished call to on_result(). While paused, calls are forwarded without either and
// not counted: observation between the steps under test (check(), which maps aliases) then
// neither fails nor shifts the injection points, and a paused interceptor costs one atomic load
// per call (benchmarks time the allocator through a paused recorder).
class InterceptingOs : public OsInterface {
 public:
  explicit InterceptingOs(OsInterface& inner) : inner_(inner) {}
  void set_paused(bool paused) { paused_.store(paused, std::memory_order_relaxed); }
  int reserve(std::size_t bytes, std::size_t align, void** base) override;
  int release(void* base, std::size_t bytes) override;
  int memfd_create(const char* name, std::size_t bytes, int* fd) override;
  int close_fd(int fd) override;
  int map_shared(void* addr, std::size_t bytes, int fd, std::uint64_t offset, bool fixed, bool populate,
                 void** out) override;
  int unmap(void* addr, std::size_t bytes) override;
  int protect(void* addr, std::size_t bytes, Protection protection) override;
  int drop_pages(void* addr, std::size_t bytes) override;
  int populate_write(void* addr, std::size_t bytes) override;
  int reserve_fixed(void* addr, std::size_t bytes, bool replace) override;
  int max_map_count(std::uint64_t* out) override;
  int advise_hugepage(void* addr, std::size_t bytes) override;
  int anon_huge_bytes(void* addr, std::size_t bytes, std::uint64_t* out) override;

 protected:
  // Called before each call with its kind and its index among calls of that kind; a non-zero
  // errno fails the call with it (nothing is forwarded). Must be thread-safe if the allocator is
  // shared between threads.
  virtual int on_call(OsCall call, std::uint64_t index) = 0;
  // Called after each call (forwarded or failed) with its record. Same thread-safety rule.
  virtual void on_result(const OsCallRecord& record) { (void)record; }

 private:
  // Runs one call: counts it, asks on_call, forwards it with `forward` unless failed, reports it.
  template <typename Forward>
  int intercept(OsCallRecord record, Forward forward);
  OsInterface& inner_;
  std::mutex mutex_;
  std::array<std::uint64_t, static_cast<std::size_t>(OsCall::kCount)> counts_{};
  std::atomic<bool> paused_{false};
};

// Records every call (not paused), in order, and forwards it: the injection points a sequence
// meets (fault_injection_test), and the exact system calls an operation makes, with their
// arguments and results (bench/ replays them bare to price the allocator's own work).
class RecordingOs final : public InterceptingOs {
 public:
  explicit RecordingOs(OsInterface& inner) : InterceptingOs(inner) {}
  [[nodiscard]] std::vector<OsCallRecord> calls() const;
  // The calls recorded so far, and forgets them.
  [[nodiscard]] std::vector<OsCallRecord> take_calls();

 protected:
  int on_call(OsCall call, std::uint64_t index) override;
  void on_result(const OsCallRecord& record) override;

 private:
  mutable std::mutex mutex_;
  std::vector<OsCallRecord> calls_;
};

// Fails chosen calls, deterministically:
//  * nth: the call of kind `call` whose index is `index` fails with `error` (once);
//  * rate: each fallible call fails with probability numerator/denominator, drawn from a
//    SplitMix64 stream seeded with `seed` (the same seed and call sequence fail the same calls).
// Counts what it failed.
class FailingOs final : public InterceptingOs {
 public:
  struct Nth {
    OsCall call;
    std::uint64_t index;
    int error;
  };
  struct Rate {
    std::uint64_t numerator, denominator;  // 0 < numerator <= denominator
    std::uint64_t seed;
    int error;
  };
  using Which = std::variant<Nth, Rate>;
  FailingOs(OsInterface& inner, Nth nth) : InterceptingOs(inner), nth_(nth) {}
  FailingOs(OsInterface& inner, Rate rate) : InterceptingOs(inner), rate_(rate), state_(rate.seed) {}
  FailingOs(OsInterface& inner, const Which& which);
  [[nodiscard]] std::uint64_t failures_injected() const;

 protected:
  int on_call(OsCall call, std::uint64_t index) override;

 private:
  std::optional<Nth> nth_;
  std::optional<Rate> rate_;
  mutable std::mutex mutex_;
  std::uint64_t state_ = 0;
  std::uint64_t injected_ = 0;
};

// The grammar both seams' replay flags share (--fail-os here, --fail-phys in
// allocator/phys/page_fault_injection.h): colon-separated fields, either "KIND:N[:HOW]" (the N-th,
// 0-based, call of KIND) or "rate:P/Q:SEED[:HOW]" (each call fails with probability P/Q, drawn
// from SplitMix64 seeded with SEED). HOW is the seam's own: an errno here, a failure kind there.
struct FaultSpecFields {
  bool rate = false;
  std::string_view kind;                  // KIND (not for a rate)
  std::uint64_t index = 0;                // N
  std::uint64_t numerator = 0, denominator = 0, seed = 0;  // P, Q, SEED
  std::string_view how;                   // empty when not given
};
// Splits and checks everything but KIND and HOW (how_name names HOW in messages); nullopt and
// *why naming the problem otherwise.
[[nodiscard]] std::optional<FaultSpecFields> parse_fault_spec_fields(std::string_view spec, std::string_view how_name,
                                                                     std::string* why);

// Parses --fail-os: "KIND:N[:ERRNO]" or "rate:P/Q:SEED[:ERRNO]", ERRNO one of EIO (the default),
// ENOMEM, EAGAIN, EPERM, EACCES; e.g. "map_shared:3:ENOMEM", "rate:1/50:7". Returns nullopt and
// sets *why for anything else.
[[nodiscard]] std::optional<FailingOs::Which> parse_fail_os_spec(std::string_view spec, std::string* why);

}  // namespace vmfrag
