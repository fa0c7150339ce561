// libFuzzer target: the vmtrace reader on arbitrary bytes. Oracles: no crash, no sanitizer report,
// no exception other than InputError; and every input the reader accepts round-trips through the
// writer: reading what the writer wrote gives back the same header and ops.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "allocator/core/assert.h"
#include "harness/trace/input_error.h"
#include "harness/trace/trace_reader.h"
#include "harness/trace/trace_writer.h"

namespace {

bool read_all(const std::string& text, vmfrag::TraceHeader& header, std::vector<vmfrag::Op>& ops) {
  std::istringstream in(text);
  try {
    vmfrag::TraceReader reader(in, "fuzz.vmtrace");
    for (vmfrag::Op op; reader.next(op);) ops.push_back(op);
    header = reader.header();
    return true;
  } catch (const vmfrag::InputError&) {
    return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vmfrag::TraceHeader header;
  std::vector<vmfrag::Op> ops;
  if (!read_all(std::string(reinterpret_cast<const char*>(data), size), header, ops)) return 0;
  std::ostringstream out;
  vmfrag::TraceWriter writer(out);
  writer.write_header(header);
  for (const vmfrag::Op& op : ops) writer.write(op);
  vmfrag::TraceHeader header2;
  std::vector<vmfrag::Op> ops2;
  VMF_CHECK(read_all(out.str(), header2, ops2), "the writer's output does not read back");
  VMF_CHECK(header2 == header && ops2 == ops, "round trip changed the trace (%zu ops -> %zu)", ops.size(), ops2.size());
  return 0;
}
