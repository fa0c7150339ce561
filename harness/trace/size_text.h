// Text form of byte sizes and counts as they appear in vmtrace files and on the command line:
// decimal digits with an optional binary suffix K, M, G or T (powers of 1024). Parsing is strict
// (no sign, no spaces, no lowercase suffix, no "KB") so that a typo is an error rather than a
// silently different size; formatting picks the largest suffix that is exact, so the writer's
// output is short and parse_size(format_size(x)) == x for every x.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vmfrag {

// Why a piece of text is not a number; distinguishes typos from values that do not fit, because the
// two deserve different error messages.
enum class NumberTextStatus : std::uint8_t { kOk, kMalformed, kOverflow };

struct ParsedNumber {
  NumberTextStatus status = NumberTextStatus::kMalformed;
  std::uint64_t value = 0;  // meaningful only when status == kOk
};

// Parses `digits[K|M|G|T]`, the suffix multiplying by 1024^1..1024^4.
// Preconditions: none (any bytes are acceptable input).
// Guarantees: kOk iff the text is one or more ASCII digits followed by at most one suffix letter
// and digits * multiplier fits in uint64 (leading zeros are allowed); kOverflow when the text is
// well formed but the value does not fit; kMalformed otherwise (empty text, other characters).
// Cost: O(length of text), no allocation. Never throws.
[[nodiscard]] ParsedNumber parse_size_checked(std::string_view text);

// parse_size_checked() without the reason: the value, or nullopt when malformed or overflowing.
[[nodiscard]] std::optional<std::uint64_t> parse_size(std::string_view text);

// Parses a plain decimal count (ids, page counts): like parse_size_checked() but no suffix allowed.
[[nodiscard]] ParsedNumber parse_count_checked(std::string_view text);

// Formats bytes with the largest suffix that represents it exactly: 16384 -> "16K", 2097152 ->
// "2M", 5000 -> "5000", 0 -> "0". Guarantees parse_size(format_size(x)) == x for every x.
// Cost: O(1) plus the string allocation (small-string optimised in practice). Never fails.
[[nodiscard]] std::string format_size(std::uint64_t bytes);

}  // namespace vmfrag
