#include "engine/line_reader.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cepheus::engine {

namespace {
constexpr size_t kBufferSize = 1 << 20;
}

cepheus::Result<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path) {
  std::unique_ptr<LineReader> r(new LineReader());
  r->name_ = path == "-" ? "<stdin>" : path;
  if (path == "-") {
    r->fd_ = 0;
  } else {
    r->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (r->fd_ < 0) return Status::IoError("cannot open '" + path + "': " + std::strerror(errno));
    r->owns_fd_ = true;
  }
  struct stat st;
  if (::fstat(r->fd_, &st) == 0) r->bounded_ = S_ISREG(st.st_mode);
  if (path != "-" && ::fstat(r->fd_, &st) == 0 && S_ISDIR(st.st_mode))
    return Status::IoError("'" + path + "' is a directory, not a file");
  r->buf_.resize(kBufferSize);
  return r;
}

LineReader::~LineReader() {
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

bool LineReader::Fill(int timeout_ms, bool* timed_out) {
  *timed_out = false;
  if (begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    consumed_ += begin_;
    begin_ = 0;
  }
  if (end_ + kSlack >= buf_.size()) buf_.resize(buf_.size() * 2);  // a very long line
  if (!bounded_) {
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r == 0) {
      *timed_out = true;
      return false;
    }
  }
  while (true) {
    ssize_t n = ::read(fd_, buf_.data() + end_, buf_.size() - kSlack - end_);
    if (n > 0) {
      end_ += static_cast<size_t>(n);
      return true;
    }
    if (n == 0) {
      eof_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    error_ = Status::IoError("reading '" + name_ + "': " + std::strerror(errno));
    return false;
  }
}

LineReader::Result LineReader::NextLines(size_t max_lines, int timeout_ms,
                                         std::vector<Line>* lines) {
  // The first record may need a read (which moves the buffer); the others are
  // taken from what is already buffered, so no view is invalidated.
  std::string_view first;
  Result r = Next(&first, timeout_ms);
  if (r != Result::kLine) return r;
  lines->push_back(Line{first, line_number_, line_offset_});
  while (lines->size() < max_lines) {
    const char* start = buf_.data() + begin_;
    const char* nl = static_cast<const char*>(std::memchr(start, '\n', end_ - begin_));
    if (!nl) break;  // the rest is not complete yet (or needs EOF handling by Next)
    size_t len = static_cast<size_t>(nl - start);
    std::string_view line(start, len);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    line_offset_ = consumed_ + begin_;
    ++line_number_;
    begin_ += len + 1;
    lines->push_back(Line{line, line_number_, line_offset_});
  }
  return Result::kLine;
}

LineReader::Result LineReader::Next(std::string_view* line, int timeout_ms) {
  while (true) {
    const char* start = buf_.data() + begin_;
    const char* nl = static_cast<const char*>(std::memchr(start, '\n', end_ - begin_));
    if (nl) {
      size_t len = static_cast<size_t>(nl - start);
      *line = std::string_view(start, len);
      if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
      line_offset_ = consumed_ + begin_;
      ++line_number_;
      begin_ += len + 1;
      return Result::kLine;
    }
    if (eof_) {
      if (begin_ == end_) return Result::kEnd;
      *line = std::string_view(start, end_ - begin_);
      if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
      line_offset_ = consumed_ + begin_;
      ++line_number_;
      begin_ = end_;
      return Result::kLine;
    }
    bool timed_out;
    if (!Fill(timeout_ms, &timed_out)) {
      if (timed_out) return Result::kTimeout;
      if (!error_.ok()) return Result::kError;
    }
  }
}

}  // namespace cepheus::engine
