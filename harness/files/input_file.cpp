#include "harness/files/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "harness/trace/input_error.h"

namespace vmfrag {
namespace {

int open_for_reading(const std::string& path, const std::string& what, bool& owned) {
  const std::string prefix = what.empty() ? "cannot open: " : "cannot open " + what + ": ";
  owned = path != "-";
  const int fd = owned ? ::open(path.c_str(), O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
  if (fd < 0) throw InputError(path, 0, prefix + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    if (owned) ::close(fd);
    throw InputError(path, 0, prefix + std::strerror(EISDIR));
  }
  return fd;
}

}  // namespace

InputFile::InputFile(std::string path, const std::string& what)
    : path_(std::move(path)), fd_(open_for_reading(path_, what, owned_)), buf_(fd_, path_), stream_(&buf_) {
  stream_.exceptions(std::ios::badbit);
}

InputFile::~InputFile() {
  if (owned_) ::close(fd_);
}

}  // namespace vmfrag
