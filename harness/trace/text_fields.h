// Splitting a line of text input into whitespace-separated fields (space, tab, and the CR of a
// CRLF line end), shared by the importers.
#pragma once

#include <string_view>
#include <vector>

namespace vmfrag {

// The fields of `line`, in order, as views into it. O(length).
[[nodiscard]] inline std::vector<std::string_view> split_fields(std::string_view line) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && blank(line[i])) ++i;
    const std::size_t begin = i;
    while (i < line.size() && !blank(line[i])) ++i;
    if (i > begin) fields.push_back(line.substr(begin, i - begin));
  }
  return fields;
}

}  // namespace vmfrag
