// Which file a path or descriptor names, as the kernel sees it (device and inode): the test for
// "this output is that input", whatever links, relative paths or /dev/fd aliases lead to it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace vmfrag {

struct FileIdentity {
  dev_t device = 0;
  ino_t inode = 0;
  friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};

// The file `path` resolves to (symlinks followed), or nullopt when it does not exist or cannot be
// examined. Cost: one stat(2). Never throws.
[[nodiscard]] std::optional<FileIdentity> identity_of_path(const std::string& path);

// The file open on descriptor `fd`, or nullopt when fstat(2) fails. Never throws.
[[nodiscard]] std::optional<FileIdentity> identity_of_fd(int fd);

}  // namespace vmfrag
