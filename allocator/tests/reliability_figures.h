// Counting for the reliability figures (issue #15): tests that try many cases in one TEST record
// how many they tried and how many passed as gtest properties (RecordProperty), which
// `--gtest_output=json:FILE` writes beside the test; scripts/vmfrag_jobs/reliability.py collects
// them into reliability.json. A case passed when it added no failed assertion.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>

namespace vmfrag {

// Failed assertions recorded so far in the running test.
inline std::size_t failed_assertions() {
  const ::testing::TestResult* result = ::testing::UnitTest::GetInstance()->current_test_info()->result();
  std::size_t failed = 0;
  for (int i = 0; i < result->total_part_count(); ++i) failed += result->GetTestPartResult(i).failed() ? 1 : 0;
  return failed;
}

// Tallies cases: begin() before a case, end() after it.
class CaseTally {
 public:
  void begin() {
    ++tried_;
    failed_before_ = failed_assertions();
  }
  void end() { passed_ += failed_assertions() == failed_before_ ? 1 : 0; }
  [[nodiscard]] std::size_t tried() const { return tried_; }
  [[nodiscard]] std::size_t passed() const { return passed_; }
  // Records "tried" and "passed" (and the caller's own properties beside them).
  void record() const {
    ::testing::Test::RecordProperty("tried", static_cast<int>(tried_));
    ::testing::Test::RecordProperty("passed", static_cast<int>(passed_));
  }

 private:
  std::size_t tried_ = 0, passed_ = 0, failed_before_ = 0;
};

}  // namespace vmfrag
