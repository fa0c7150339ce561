// The five benchmark suites register themselves from bench_main.cpp, after it has read the preset
// (--vmfrag_quick: small sizes, used by `scripts/vmfrag bench --quick` and `meson benchmark`).
//
// Fixtures: set-up (filling a space with a million areas, laying out a 1 GiB pointer chain) is
// kept out of the timed loops and shared between the repetitions of a benchmark through one slot
// (FixtureSlot): a benchmark asks for the fixture by key and gets the one built for the previous
// repetition when the key matches. One slot for the whole binary, so at most one large fixture
// (and its mappings: vm.max_map_count is 65530 here) exists at a time.
#pragma once

#include <memory>
#include <string>

namespace vmfrag::bench {

struct Preset {
  bool quick = false;
};

void register_address_space_benchmarks(const Preset& preset);  // suite 1
void register_mapped_benchmarks(const Preset& preset);         // suite 2
void register_page_fault_benchmarks(const Preset& preset);     // suite 3
void register_tlb_benchmarks(const Preset& preset);            // suite 4
void register_test_vmalloc_benchmarks(const Preset& preset);   // suite 5
void register_thread_scaling_benchmarks(const Preset& preset); // issue #15: throughput vs threads
void register_check_benchmarks(const Preset& preset);          // issue 12: check() per CheckDepth

struct Fixture {
  virtual ~Fixture() = default;
};

struct FixtureSlot {
  std::string key;
  std::unique_ptr<Fixture> fixture;
};
// The one slot of the binary (not one per fixture type: a template's static would be).
FixtureSlot& the_fixture_slot();

// The fixture for `key`, built by make() unless the slot already holds it (the old one is
// destroyed first, so two large fixtures never coexist). Keys name the fixture's type and
// parameters, so a key match means the slot holds a T.
template <typename T, typename Make>
T& fixture_slot(const std::string& key, Make make) {
  FixtureSlot& slot = the_fixture_slot();
  if (slot.key != key || slot.fixture == nullptr) {
    slot.fixture.reset();
    slot.key.clear();
    slot.fixture = make();
    slot.key = key;
  }
  return static_cast<T&>(*slot.fixture);
}

}  // namespace vmfrag::bench
