// The one error type for malformed input (traces, vmallocinfo snapshots, malloc-lab files, CLI
// arguments). what() is exactly `FILE:LINE: error: MESSAGE`, FILE as the user gave it; the CLI prints
// it and exits 2.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <utility>
#include <string>

namespace vmfrag {

class InputError : public std::runtime_error {
 public:
  InputError(std::string file, std::uint64_t line, const std::string& message)
      : std::runtime_error(file + ":" + std::to_string(line) + ": error: " + message),
        file_(std::move(file)), line_(line), message_(message) {}
  [[nodiscard]] const std::string& file() const { return file_; }
  [[nodiscard]] std::uint64_t line() const { return line_; }
  [[nodiscard]] const std::string& message() const { return message_; }

 private:
  std::string file_;
  std::uint64_t line_;
  std::string message_;
};

}  // namespace vmfrag
