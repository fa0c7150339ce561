// PerfGroup: a small perf_event_open(2) wrapper for the benchmarks (not part of the allocator's
// OsInterface, which is its fault-injection seam).
//
// What it guarantees:
//  * Grouped counting: events of one kind (software, hardware) are opened as one group under a
//    leader and read together with PERF_FORMAT_GROUP, so their counts cover the same interval.
//  * Multiplexing is corrected: each read carries time_enabled and time_running, and every value
//    is scaled by enabled / running. A group that never ran (running == 0) yields no value at all.
//  * Kernel work is counted where the system allows it: every event is first opened with
//    exclude_kernel = 0; if that is refused (EACCES/EPERM, perf_event_paranoid >= 2 without
//    CAP_PERFMON) it is reopened user-only and says so (`counts_kernel() == false`).
//  * An event that cannot be opened (ENOENT/EOPNOTSUPP without a PMU, EACCES, ...) is absent from
//    every reading, with `unsupported: <errno name>` as its outcome. It is never reported as 0.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace vmfrag::bench {

// One countable event: perf_event_attr type and config, and the name it is reported under.
struct PerfEventSpec {
  const char* name;
  std::uint32_t type;
  std::uint64_t config;
};

// The events every benchmark asks for: page-faults (minor, major), dTLB load and store misses,
// iTLB misses, cycles, instructions.
[[nodiscard]] std::span<const PerfEventSpec> standard_perf_events();

// What happened when an event was opened.
struct PerfOpenOutcome {
  std::string name;
  bool opened = false;
  bool counts_kernel = false;  // meaningful when opened
  int error = 0;               // errno of the failed open (the user-only retry's, if one was made)
  // "user+kernel", "user only (kernel refused: EACCES)" or "unsupported: ENOENT".
  [[nodiscard]] std::string describe() const;
};

// One scaled count from a reading.
struct PerfValue {
  std::string name;
  double scaled = 0;          // raw * time_enabled / time_running
  std::uint64_t raw = 0;
  std::uint64_t time_enabled = 0;
  std::uint64_t time_running = 0;
};

class PerfGroup {
 public:
  // Opens every spec for the calling thread on any CPU. Never fails as a whole: events that cannot
  // be opened are recorded in outcomes() and left out. Software and hardware events form separate
  // groups so that a PMU-less machine still counts the software ones together.
  explicit PerfGroup(std::span<const PerfEventSpec> specs);
  ~PerfGroup();
  PerfGroup(const PerfGroup&) = delete;
  PerfGroup& operator=(const PerfGroup&) = delete;

  // Resets and enables every group. Cost: two ioctls per group.
  void start();
  // Disables every group and reads it. Returns only events that opened and ran (time_running > 0);
  // the others are absent. Cost: one ioctl and one read per group.
  [[nodiscard]] std::vector<PerfValue> stop();

  [[nodiscard]] const std::vector<PerfOpenOutcome>& outcomes() const { return outcomes_; }
  // The value of `name` in `values`, or nullopt when it is absent.
  [[nodiscard]] static std::optional<double> find(const std::vector<PerfValue>& values, const std::string& name);

 private:
  struct Member {
    std::string name;
    int fd = -1;
    std::uint64_t id = 0;  // PERF_EVENT_IOC_ID
  };
  struct Group {
    int leader_fd = -1;
    std::vector<Member> members;  // leader first
  };
  void open_into(Group& group, const PerfEventSpec& spec);

  std::vector<Group> groups_;
  std::vector<PerfOpenOutcome> outcomes_;
};

// The errno's symbolic name ("ENOENT"), or its number as text when it has none.
[[nodiscard]] std::string errno_name(int error);

}  // namespace vmfrag::bench
