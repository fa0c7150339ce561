// One allocator instance kept between the hunts' runs (HuntSpace's VirtualSpace, PhysHuntSpace's
// Vmalloc): creating one costs a reservation or mapping, most of a short run under ASan.
//
// Guarantee: for_header(h, create) returns an instance made by create(h), either now or by an
// earlier call with an equal header; a new header replaces the kept instance. Whether a kept
// instance places exactly as a fresh one is the caller's business: each hunt leaves it pristine at
// the end of a run (everything freed) and checks that it is.
#pragma once

#include <memory>

#include "harness/trace/op.h"

namespace vmfrag {

template <class Instance>
class KeptInstance {
 public:
  // create: TraceHeader -> std::unique_ptr<Instance> (never null: it aborts when it cannot create).
  template <class Create>
  Instance& for_header(const TraceHeader& header, Create&& create) {
    if (instance_ == nullptr || !(header_ == header)) {
      instance_ = create(header);
      header_ = header;
    }
    return *instance_;
  }
  // Drops the kept instance (the next run creates a fresh one).
  void reset() { instance_.reset(); }

 private:
  std::unique_ptr<Instance> instance_;
  TraceHeader header_;
};

}  // namespace vmfrag
