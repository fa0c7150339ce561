// PerfGroup: an event that cannot be opened is absent from every reading with an
// "unsupported: <errno name>" outcome — never a 0 — and it does not stop the events that can be
// opened from counting; the software page-fault counter really counts first-touch faults. On this
// project's VMs there is no PMU, so the hardware events exercise the unsupported path for real; a
// deliberately invalid event type exercises it on every machine.
#include "bench/perf/perf_group.h"

#include <gtest/gtest.h>
#include <linux/perf_event.h>
#include <sys/mman.h>

#include <cerrno>
#include <vector>

namespace vmfrag::bench {
namespace {

constexpr PerfEventSpec kNoSuchEvent{"no-such-event", 0x7ffffff0u, 0};
constexpr PerfEventSpec kMinorFaults{"minor-faults", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MIN};

const PerfOpenOutcome* outcome_of(const PerfGroup& group, const std::string& name) {
  for (const PerfOpenOutcome& o : group.outcomes())
    if (o.name == name) return &o;
  return nullptr;
}

// Write-touches `pages` fresh anonymous pages (each a first-touch fault).
void touch_fresh_pages(std::size_t pages) {
  const std::size_t bytes = pages * 4096;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  for (std::size_t i = 0; i < pages; ++i) static_cast<volatile char*>(p)[i * 4096] = 1;
  munmap(p, bytes);
}

TEST(PerfGroup, ErrnoNamesAreSymbolic) {
  EXPECT_EQ(errno_name(ENOENT), "ENOENT");
  EXPECT_EQ(errno_name(EACCES), "EACCES");
  EXPECT_EQ(errno_name(EOPNOTSUPP), "EOPNOTSUPP");
}

TEST(PerfGroup, AnUnopenableEventIsAbsentAndSaysWhy) {
  PerfGroup group(std::vector<PerfEventSpec>{kNoSuchEvent});
  const PerfOpenOutcome* o = outcome_of(group, "no-such-event");
  ASSERT_NE(o, nullptr);
  EXPECT_FALSE(o->opened);
  EXPECT_NE(o->error, 0);
  EXPECT_EQ(o->describe(), "unsupported: " + errno_name(o->error));
  group.start();
  touch_fresh_pages(8);
  const std::vector<PerfValue> values = group.stop();
  EXPECT_TRUE(values.empty());
  EXPECT_EQ(PerfGroup::find(values, "no-such-event"), std::nullopt);
}

TEST(PerfGroup, MinorFaultsCountFirstTouchBesideAnUnopenableEvent) {
  PerfGroup group(std::vector<PerfEventSpec>{kNoSuchEvent, kMinorFaults});
  const PerfOpenOutcome* faults = outcome_of(group, "minor-faults");
  ASSERT_NE(faults, nullptr);
  if (!faults->opened) GTEST_SKIP() << "perf_event_open refused software events here: " << faults->describe();
  group.start();
  touch_fresh_pages(64);
  const std::vector<PerfValue> values = group.stop();
  const std::optional<double> counted = PerfGroup::find(values, "minor-faults");
  ASSERT_TRUE(counted.has_value());
  EXPECT_GE(*counted, 64.0);
  EXPECT_LT(*counted, 64.0 * 4);  // the touches plus a little of the test's own work
  EXPECT_EQ(PerfGroup::find(values, "no-such-event"), std::nullopt);
  for (const PerfValue& v : values) EXPECT_GT(v.time_running, 0u);
}

TEST(PerfGroup, EveryStandardEventIsEitherCountedOrAbsentWithItsReason) {
  PerfGroup group(standard_perf_events());
  ASSERT_EQ(group.outcomes().size(), standard_perf_events().size());
  group.start();
  touch_fresh_pages(16);
  const std::vector<PerfValue> values = group.stop();
  for (const PerfOpenOutcome& o : group.outcomes()) {
    SCOPED_TRACE(o.name + ": " + o.describe());
    if (o.opened) {
      EXPECT_TRUE(o.describe() == "user+kernel" || o.describe().starts_with("user only"));
    } else {
      EXPECT_TRUE(o.describe().starts_with("unsupported: E")) << o.describe();
      EXPECT_EQ(PerfGroup::find(values, o.name), std::nullopt);  // absent, never 0
    }
  }
}

}  // namespace
}  // namespace vmfrag::bench
