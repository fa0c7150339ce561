#include "bench/perf/perf_group.h"

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace vmfrag::bench {
namespace {

constexpr std::uint64_t cache_event(std::uint64_t cache, std::uint64_t op, std::uint64_t result) {
  return cache | (op << 8) | (result << 16);
}

constexpr std::array kStandardEvents = {
    PerfEventSpec{"minor-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MIN},
    PerfEventSpec{"major-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MAJ},
    PerfEventSpec{"dTLB-load-misses", PERF_TYPE_HW_CACHE,
                  cache_event(PERF_COUNT_HW_CACHE_DTLB, PERF_COUNT_HW_CACHE_OP_READ, PERF_COUNT_HW_CACHE_RESULT_MISS)},
    PerfEventSpec{"dTLB-store-misses", PERF_TYPE_HW_CACHE,
                  cache_event(PERF_COUNT_HW_CACHE_DTLB, PERF_COUNT_HW_CACHE_OP_WRITE, PERF_COUNT_HW_CACHE_RESULT_MISS)},
    PerfEventSpec{"iTLB-load-misses", PERF_TYPE_HW_CACHE,
                  cache_event(PERF_COUNT_HW_CACHE_ITLB, PERF_COUNT_HW_CACHE_OP_READ, PERF_COUNT_HW_CACHE_RESULT_MISS)},
    PerfEventSpec{"cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES},
    PerfEventSpec{"instructions", PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS},
};

int perf_event_open(perf_event_attr* attr, int group_fd) {
  return static_cast<int>(syscall(SYS_perf_event_open, attr, /*pid=*/0, /*cpu=*/-1, group_fd, PERF_FLAG_FD_CLOEXEC));
}

// Opens one event; returns the fd or -errno.
int open_event(const PerfEventSpec& spec, int group_fd, bool exclude_kernel) {
  perf_event_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.size = sizeof attr;
  attr.type = spec.type;
  attr.config = spec.config;
  attr.disabled = group_fd == -1 ? 1 : 0;  // members follow their leader's enable state
  attr.exclude_kernel = exclude_kernel ? 1 : 0;
  attr.exclude_hv = 1;
  attr.read_format = PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING |
                     PERF_FORMAT_ID;
  const int fd = perf_event_open(&attr, group_fd);
  return fd >= 0 ? fd : -errno;
}

}  // namespace

std::span<const PerfEventSpec> standard_perf_events() { return kStandardEvents; }

std::string errno_name(int error) {
  const char* name = strerrorname_np(error);
  return name != nullptr ? std::string(name) : std::to_string(error);
}

std::string PerfOpenOutcome::describe() const {
  if (!opened) return "unsupported: " + errno_name(error);
  if (counts_kernel) return "user+kernel";
  return "user only (kernel refused: " + errno_name(error) + ")";
}

PerfGroup::PerfGroup(std::span<const PerfEventSpec> specs) {
  groups_.resize(2);  // [0] software, [1] everything else (the PMU's)
  for (const PerfEventSpec& spec : specs) open_into(groups_[spec.type == PERF_TYPE_SOFTWARE ? 0 : 1], spec);
}

void PerfGroup::open_into(Group& group, const PerfEventSpec& spec) {
  PerfOpenOutcome outcome{spec.name};
  int fd = open_event(spec, group.leader_fd, /*exclude_kernel=*/false);
  outcome.counts_kernel = fd >= 0;
  if (fd == -EACCES || fd == -EPERM) {
    outcome.error = -fd;
    fd = open_event(spec, group.leader_fd, /*exclude_kernel=*/true);
  }
  if (fd < 0) {
    outcome.error = -fd;
    outcomes_.push_back(outcome);
    return;
  }
  Member member{spec.name, fd, 0};
  if (ioctl(fd, PERF_EVENT_IOC_ID, &member.id) != 0) {
    outcome.error = errno;
    close(fd);
    outcomes_.push_back(outcome);
    return;
  }
  outcome.opened = true;
  if (group.leader_fd == -1) group.leader_fd = fd;
  group.members.push_back(member);
  outcomes_.push_back(outcome);
}

PerfGroup::~PerfGroup() {
  for (Group& g : groups_) {
    for (Member& m : g.members) close(m.fd);
  }
}

void PerfGroup::start() {
  for (Group& g : groups_) {
    if (g.leader_fd == -1) continue;
    (void)ioctl(g.leader_fd, PERF_EVENT_IOC_RESET, PERF_IOC_FLAG_GROUP);
    (void)ioctl(g.leader_fd, PERF_EVENT_IOC_ENABLE, PERF_IOC_FLAG_GROUP);
  }
}

std::vector<PerfValue> PerfGroup::stop() {
  std::vector<PerfValue> values;
  for (Group& g : groups_) {
    if (g.leader_fd == -1) continue;
    (void)ioctl(g.leader_fd, PERF_EVENT_IOC_DISABLE, PERF_IOC_FLAG_GROUP);
    // struct read_format { nr; time_enabled; time_running; { value; id; } values[nr]; }
    std::vector<std::uint64_t> buf(3 + 2 * g.members.size());
    const ssize_t got = read(g.leader_fd, buf.data(), buf.size() * sizeof(std::uint64_t));
    if (got < static_cast<ssize_t>(3 * sizeof(std::uint64_t))) continue;
    const std::uint64_t nr = buf[0], enabled = buf[1], running = buf[2];
    if (running == 0) continue;  // never scheduled: no value, rather than a made-up 0
    for (std::uint64_t i = 0; i < nr && 3 + 2 * i + 1 < buf.size(); ++i) {
      const std::uint64_t raw = buf[3 + 2 * i], id = buf[3 + 2 * i + 1];
      for (const Member& m : g.members) {
        if (m.id != id) continue;
        const double scaled = static_cast<double>(raw) * static_cast<double>(enabled) / static_cast<double>(running);
        values.push_back(PerfValue{m.name, scaled, raw, enabled, running});
      }
    }
  }
  return values;
}

std::optional<double> PerfGroup::find(const std::vector<PerfValue>& values, const std::string& name) {
  for (const PerfValue& v : values) {
    if (v.name == name) return v.scaled;
  }
  return std::nullopt;
}

}  // namespace vmfrag::bench
