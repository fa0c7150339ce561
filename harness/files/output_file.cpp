#include "harness/files/output_file.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "harness/trace/input_error.h"

namespace vmfrag {
namespace {

/* Named temporaries still on disk, for the signal handler. A fixed table of plain char arrays: the
 * handler may only call async-signal-safe functions (unlink, signal, raise), so it cannot touch a
 * std::string or take a lock. A slot's path is written before `used` is set (release) and the
 * handler reads `used` (acquire) before the path. */
struct TempSlot {
  std::atomic<bool> used{false};
  char path[PATH_MAX]{};
};
std::array<TempSlot, 8> g_temp_slots;

extern "C" void remove_temps_and_reraise(int sig) {
  for (TempSlot& s : g_temp_slots)
    if (s.used.load(std::memory_order_acquire)) ::unlink(s.path);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void install_signal_cleanup() {
  static std::once_flag once;
  std::call_once(once, [] {
    // The signals that end a process by default and that a run can meet while writing: Ctrl-C,
    // kill and timeout(1), a closed terminal, a closed pipe, the file-size limit, abort() (a failed
    // VMF_CHECK, a sanitizer report). SIGSEGV/SIGBUS stay with the sanitizers, which report them.
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGXFSZ, SIGABRT}) {
      struct sigaction sa {};
      sa.sa_handler = remove_temps_and_reraise;
      sigemptyset(&sa.sa_mask);
      ::sigaction(sig, &sa, nullptr);
    }
  });
}

TempSlot* register_temp(const std::string& path) {
  install_signal_cleanup();
  if (path.size() >= PATH_MAX) return nullptr;
  for (TempSlot& s : g_temp_slots) {
    if (s.used.load(std::memory_order_relaxed)) continue;
    std::memcpy(s.path, path.c_str(), path.size() + 1);
    s.used.store(true, std::memory_order_release);
    return &s;
  }
  return nullptr;  // more than 8 outputs at once: still removed on every path but a signal
}

void unregister_temp(const std::string& path) {
  for (TempSlot& s : g_temp_slots)
    if (s.used.load(std::memory_order_acquire) && path == s.path) s.used.store(false, std::memory_order_release);
}

std::string dir_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The mode a newly created file gets (0666 less the umask). umask(2) can only be read by setting it.
mode_t default_file_mode() {
  const mode_t mask = ::umask(022);
  ::umask(mask);
  return 0666 & ~mask;
}

[[noreturn]] void fail(const std::string& path, const std::string& what, int err) {
  throw InputError(path.empty() || path == "-" ? "<stdout>" : path, 0, what + ": " + std::strerror(err));
}

}  // namespace

OutputFile::OutputFile(std::string path, const std::vector<InputRef>& inputs) : path_(std::move(path)) {
  const bool stdout_target = path_.empty() || path_ == "-";
  const std::optional<FileIdentity> same = stdout_target ? identity_of_fd(STDOUT_FILENO) : identity_of_path(path_);
  if (same) {
    struct stat st {};
    const bool regular = stdout_target ? (::fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode)) : true;
    for (const InputRef& in : inputs)
      if (regular && in.identity && *in.identity == *same)
        throw InputError(stdout_target ? "<stdout>" : path_, 0,
                         "is the same file as the input " + in.name + "; refusing to overwrite it");
  }

  if (stdout_target) {
    to_stdout_ = true;
    fd_ = STDOUT_FILENO;
  } else {
    struct stat lst {};
    mode_t mode = default_file_mode();
    if (::lstat(path_.c_str(), &lst) != 0) {
      if (errno != ENOENT) fail(path_, "cannot write", errno);
      target_ = path_;
    } else if (S_ISREG(lst.st_mode)) {
      target_ = path_;
      mode = lst.st_mode & 07777;
    } else if (S_ISDIR(lst.st_mode)) {
      fail(path_, "cannot write", EISDIR);
    } else if (path_.starts_with("/dev/") || path_.starts_with("/proc/")) {
      write_through_ = true;  // /dev/stdout, /dev/fd/N, /proc/self/fd/N: whatever they lead to
    } else if (S_ISLNK(lst.st_mode)) {
      struct stat st {};
      if (::stat(path_.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        char resolved[PATH_MAX];
        if (::realpath(path_.c_str(), resolved) == nullptr) fail(path_, "cannot write", errno);
        target_ = resolved;
        mode = st.st_mode & 07777;
      } else if (::stat(path_.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        fail(path_, "cannot write", EISDIR);
      } else {
        write_through_ = true;  // a link to a special file, or dangling: write where it points
      }
    } else {
      write_through_ = true;  // FIFO, device, socket
    }

    if (write_through_) {
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC | O_CREAT | O_TRUNC, 0666);
      if (fd_ < 0) fail(path_, "cannot write", errno);
    } else {
      const std::string dir = dir_of(target_);
      const bool try_unnamed = std::getenv("VMFRAG_NO_O_TMPFILE") == nullptr;
      fd_ = try_unnamed ? ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, mode) : -1;
      anonymous_ = fd_ >= 0;
      if (!anonymous_) {
        if (try_unnamed && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
          fail(path_, "cannot write", errno);
        std::string templ = dir + "/." + base_of(target_) + ".vmfrag-XXXXXX";
        fd_ = ::mkostemp(templ.data(), O_CLOEXEC);
        if (fd_ < 0) fail(path_, "cannot write", errno);
        named_tmp_ = templ;
        (void)register_temp(named_tmp_);
        (void)::fchmod(fd_, mode);
      } else {
        (void)::fchmod(fd_, mode);  // O_TMPFILE applies the umask; an existing target keeps its mode
      }
    }
  }
  buf_ = std::make_unique<FdWriteBuf>(fd_);
  stream_.rdbuf(buf_.get());
}

OutputFile::~OutputFile() {
  if (!committed_) discard();
}

void OutputFile::discard() noexcept {
  if (!named_tmp_.empty()) {
    ::unlink(named_tmp_.c_str());
    unregister_temp(named_tmp_);
    named_tmp_.clear();
  }
  if (fd_ >= 0 && !to_stdout_) ::close(fd_);
  fd_ = -1;
}

void OutputFile::commit() {
  stream_.flush();
  if (buf_->error() != 0 || !stream_) {
    const int err = buf_->error() != 0 ? buf_->error() : EIO;
    discard();
    fail(path_, "cannot write", err);
  }
  if (!to_stdout_ && !write_through_) {
    if (anonymous_) {
      // Give the unnamed file a temporary name beside the target, then rename it into place.
      named_tmp_ = dir_of(target_) + "/." + base_of(target_) + ".vmfrag-" + std::to_string(::getpid());
      (void)register_temp(named_tmp_);
      int r = ::linkat(fd_, "", AT_FDCWD, named_tmp_.c_str(), AT_EMPTY_PATH);
      if (r != 0) {
        const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
        r = ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, named_tmp_.c_str(), AT_SYMLINK_FOLLOW);
      }
      if (r != 0) {
        const int err = errno;
        unregister_temp(named_tmp_);
        named_tmp_.clear();
        discard();
        fail(path_, "cannot write", err);
      }
    }
    if (::rename(named_tmp_.c_str(), target_.c_str()) != 0) {
      const int err = errno;
      discard();
      fail(path_, "cannot write", err);
    }
    unregister_temp(named_tmp_);
    named_tmp_.clear();
  }
  committed_ = true;
  if (!to_stdout_) ::close(fd_);
  fd_ = -1;
}

}  // namespace vmfrag
