// vcpumap/atomic_file.hpp — replace a file whole or not at all.
//
//   vcpumap::write_file_atomically("host.txt", text);   // readers see the old file or the new one
//
// What the tools write for others to read (fixtures with --persist, pictures, metrics for a
// collector) must never be seen half written, nor lost when the disk is full: the text goes
// to a temporary file in the same folder, is flushed to disk (fsync) and renamed over the
// old file, then the folder is flushed. Errors are vcpumap::Error naming the path and the
// reason, with the old file (if any) byte for byte as it was.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "error.hpp"
#include "text.hpp"

namespace vcpumap {

namespace detail {

/// An open file descriptor, closed when destroyed.
class Fd {
 public:
  explicit Fd(int fd = -1) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }
  /// Closes now, reporting close's error (a write-back error surfaces there on some file systems).
  int close() noexcept { return fd_ < 0 ? 0 : ::close(std::exchange(fd_, -1)); }

 private:
  int fd_;
};

/// Throws Error(code, "<noun><path>: <doing>: <strerror(err)>"), the path escaped.
[[noreturn]] inline void throw_file_error(ErrorCode code, const std::string& path, std::string_view doing, int err,
                                          std::string_view noun = "") {
  throw Error(code, fmt::format("{}{}: {}: {}", noun, escape_terminal(path), doing, std::strerror(err)));
}

/// Writes all of `text` to fd (short writes and EINTR retried); false with errno set on error.
inline bool write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace detail

/// Replaces the file at `path` (or the file a symbolic link there names) by `text`: a
/// temporary file in the same folder is written, flushed to disk and renamed over it. The
/// file keeps its permission bits (a new one gets 0644). On any failure (a
/// full disk, a file size limit, no permission) the temporary file is removed, `path` is as
/// it was, and Error (permission_denied, or invalid_argument) names the path and the reason.
inline void write_file_atomically(const std::string& path, std::string_view text) {
  std::string target = path;
  if (char* real = ::realpath(path.c_str(), nullptr)) {  // write through a symbolic link
    target = real;
    std::free(real);
  }
  const std::size_t slash = target.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : target.substr(0, slash);
  const std::string base = slash == std::string::npos ? target : target.substr(slash + 1);
  std::string temp = fmt::format("{}/.{}.XXXXXX", dir, base);
  detail::Fd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (fd.get() < 0) detail::throw_file_error(ErrorCode::permission_denied, path, "cannot create a temporary file", errno);
  auto fail = [&](std::string_view doing) {
    const int err = errno;
    ::unlink(temp.c_str());
    detail::throw_file_error(err == EACCES || err == EPERM ? ErrorCode::permission_denied : ErrorCode::invalid_argument,
                             path, fmt::format("{}; the file is unchanged", doing), err);
  };
  struct stat st {};
  const mode_t mode = ::stat(target.c_str(), &st) == 0 ? st.st_mode & 07777 : 0644;
  if (::fchmod(fd.get(), mode) != 0) fail("cannot set the permissions of the temporary file");
  if (!detail::write_all(fd.get(), text)) fail("cannot write");
  if (::fsync(fd.get()) != 0) fail("cannot flush to disk");
  if (fd.close() != 0) fail("cannot write");
  if (::rename(temp.c_str(), target.c_str()) != 0) fail("cannot replace it");
  if (detail::Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); d.get() >= 0) (void)::fsync(d.get());
}

}  // namespace vcpumap
