// RecordingOs: what suite 2 measures as "the bare system calls" must be exactly the calls a
// vmalloc+vfree pair makes. Records a pair in backing memfd and anon, checks the calls named in
// allocator/README.md (map, drop, protect, restore the reservation), replays them raw with the same
// results, and checks the allocator's state is still consistent after the replay.
#include "bench/os/recording_os.h"

#include <gtest/gtest.h>

#include <vector>

#include "allocator/vmalloc/vmalloc.h"

namespace vmfrag::bench {
namespace {

using Kind = RecordedOsCall::Kind;

std::vector<Kind> kinds(const std::vector<RecordedOsCall>& calls) {
  std::vector<Kind> out;
  for (const RecordedOsCall& c : calls) out.push_back(c.kind);
  return out;
}

std::unique_ptr<Vmalloc> make(RecordingOs& os, BackingMode backing) {
  VmallocConfig config;
  config.space.region_bytes = 64ull << 20;
  config.space.lazy_threshold_pages = 0;
  config.space.os = &os;
  config.phys_bytes = 16ull << 20;
  config.backing = backing;
  auto created = Vmalloc::create(config);
  EXPECT_TRUE(created.vm) << created.message;
  return std::move(created.vm);
}

TEST(RecordingOs, MemfdPairIsFourCallsAndReplaysIdentically) {
  RecordingOs os(linux_os());
  auto vm = make(os, BackingMode::kMemfd);
  ASSERT_TRUE(vm);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(vm->vmalloc(4096).ok());
  os.start_recording();
  const VmallocResult r = vm->vmalloc(16 * 4096);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(vm->vfree(r.addr), ReleaseStatus::kOk);
  const std::vector<RecordedOsCall> calls = os.stop_recording();
  EXPECT_EQ(kinds(calls), (std::vector<Kind>{Kind::kMapShared, Kind::kDropPages, Kind::kProtect, Kind::kReserveFixed}));
  for (const RecordedOsCall& c : calls) EXPECT_EQ(c.result, 0);
  EXPECT_EQ(replay_raw(calls), 0);
  EXPECT_EQ(replay_raw(calls), 0);
  EXPECT_EQ(vm->check(), "");
}

TEST(RecordingOs, AnonPairReplaysIdentically) {
  RecordingOs os(linux_os());
  auto vm = make(os, BackingMode::kAnon);
  ASSERT_TRUE(vm);
  os.start_recording();
  const VmallocResult r = vm->vmalloc(3 * 4096);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(vm->vfree(r.addr), ReleaseStatus::kOk);
  const std::vector<RecordedOsCall> calls = os.stop_recording();
  EXPECT_EQ(kinds(calls), (std::vector<Kind>{Kind::kProtect, Kind::kPopulateWrite, Kind::kDropPages, Kind::kProtect}));
  EXPECT_EQ(replay_raw(calls), 0);
  EXPECT_EQ(vm->check(), "");
}

TEST(RecordingOs, AReservationCannotBeReplayedAndCountsAsADifference) {
  RecordingOs os(linux_os());
  os.start_recording();
  void* base = nullptr;
  ASSERT_EQ(os.reserve(1 << 20, 4096, &base), 0);
  const std::vector<RecordedOsCall> calls = os.stop_recording();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(replay_raw(calls), 1);
  EXPECT_EQ(os.release(base, 1 << 20), 0);
}

}  // namespace
}  // namespace vmfrag::bench
