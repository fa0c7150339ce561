// replay_raw: what suite 2 measures as "the bare system calls" must be exactly the calls a
// vmalloc+vfree pair makes. Records a pair in backing memfd and anon through allocator/os's
// RecordingOs, checks the calls named in allocator/README.md (map, drop, protect, restore the
// reservation), replays them raw with the same results, and checks the allocator's state is still
// consistent after the replay.
#include "bench/os/raw_syscalls.h"

#include <gtest/gtest.h>

#include <vector>

#include "allocator/vmalloc/vmalloc.h"

namespace vmfrag::bench {
namespace {

std::vector<OsCall> kinds(const std::vector<OsCallRecord>& calls) {
  std::vector<OsCall> out;
  for (const OsCallRecord& c : calls) out.push_back(c.call);
  return out;
}

// The calls of one vmalloc+vfree pair of `bytes`, recorded with the recorder running only then.
std::vector<OsCallRecord> record_pair(RecordingOs& os, Vmalloc& vm, std::uint64_t bytes) {
  return record_calls(os, [&] {
    const VmallocResult r = vm.vmalloc(bytes);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(vm.vfree(r.addr), ReleaseStatus::kOk);
  });
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

TEST(RawSyscalls, MemfdPairIsFourCallsAndReplaysIdentically) {
  RecordingOs os(linux_os());
  auto vm = make(os, BackingMode::kMemfd);
  ASSERT_TRUE(vm);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(vm->vmalloc(4096).ok());
  const std::vector<OsCallRecord> calls = record_pair(os, *vm, 16 * 4096);
  EXPECT_EQ(kinds(calls), (std::vector<OsCall>{OsCall::kMapShared, OsCall::kDropPages, OsCall::kProtectNone,
                                               OsCall::kReserveFixed}));
  for (const OsCallRecord& c : calls) EXPECT_EQ(c.result, 0);
  EXPECT_EQ(calls[0].bytes, 16u * 4096);
  EXPECT_TRUE(calls[0].fixed);
  EXPECT_EQ(replay_raw(calls), 0);
  EXPECT_EQ(replay_raw(calls), 0);
  EXPECT_EQ(vm->check(), "");
}

TEST(RawSyscalls, AnonPairReplaysIdentically) {
  RecordingOs os(linux_os());
  auto vm = make(os, BackingMode::kAnon);
  ASSERT_TRUE(vm);
  const std::vector<OsCallRecord> calls = record_pair(os, *vm, 3 * 4096);
  EXPECT_EQ(kinds(calls), (std::vector<OsCall>{OsCall::kProtectReadWrite, OsCall::kPopulateWrite, OsCall::kDropPages,
                                               OsCall::kProtectNone}));
  EXPECT_EQ(replay_raw(calls), 0);
  EXPECT_EQ(vm->check(), "");
}

TEST(RawSyscalls, AReservationCannotBeReplayedAndCountsAsADifference) {
  RecordingOs os(linux_os());
  void* base = nullptr;
  ASSERT_EQ(os.reserve(1 << 20, 4096, &base), 0);
  const std::vector<OsCallRecord> calls = os.take_calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_FALSE(raw_replayable(calls[0].call));
  EXPECT_EQ(replay_raw(calls), 1);
  EXPECT_EQ(os.release(base, 1 << 20), 0);
}

// A paused recorder records nothing and counts nothing: the timed loops run through one.
TEST(RawSyscalls, APausedRecorderRecordsNothing) {
  RecordingOs os(linux_os());
  auto vm = make(os, BackingMode::kMemfd);
  ASSERT_TRUE(vm);
  os.set_paused(true);
  (void)os.take_calls();
  const VmallocResult r = vm->vmalloc(2 * 4096);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(vm->vfree(r.addr), ReleaseStatus::kOk);
  EXPECT_TRUE(os.calls().empty());
  const std::vector<OsCallRecord> calls = record_pair(os, *vm, 2 * 4096);
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[0].index, 1u) << "the paused pair's map_shared was counted";
}

}  // namespace
}  // namespace vmfrag::bench
