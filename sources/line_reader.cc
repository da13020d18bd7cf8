#include "sources/line_reader.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cepheus::sources {

namespace {
constexpr size_t kInputChunk = 1 << 18;
}  // namespace

struct LineReader::Decoder {
  z_stream z{};
  bool z_open = false;
  bool z_member_done = false;  // the last gzip member ended cleanly
  ZSTD_DCtx* zstd = nullptr;
  size_t zstd_last = 0;  // last ZSTD_decompressStream result: 0 at a frame end
  ~Decoder() {
    if (z_open) inflateEnd(&z);
    if (zstd) ZSTD_freeDCtx(zstd);
  }
};

cepheus::Result<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path,
                                                              size_t buffer_bytes) {
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
  r->buf_.resize(std::max<size_t>(buffer_bytes, 4 * kSlack));
  if (r->bounded_) {
    // Sniff the format: gzip 1f 8b, zstd 28 b5 2f fd.
    unsigned char magic[4] = {0, 0, 0, 0};
    ssize_t n = ::pread(r->fd_, magic, 4, 0);
    if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) r->codec_ = Codec::kGzip;
    if (n >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
      r->codec_ = Codec::kZstd;
    if (r->codec_ != Codec::kNone) {
      r->dec_ = std::make_unique<Decoder>();
      r->in_.resize(kInputChunk);
      if (r->codec_ == Codec::kGzip) {
        if (inflateInit2(&r->dec_->z, 15 + 32) != Z_OK) return Status::Internal("zlib init failed");
        r->dec_->z_open = true;
      } else {
        r->dec_->zstd = ZSTD_createDCtx();
        if (!r->dec_->zstd) return Status::Internal("zstd init failed");
      }
    }
  }
  return r;
}

bool LineReader::Splittable(const std::string& path, uint64_t* size) {
  if (path == "-") return false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  unsigned char magic[4] = {0, 0, 0, 0};
  ssize_t n = ok ? ::pread(fd, magic, 4, 0) : 0;
  ::close(fd);
  if (!ok) return false;
  if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) return false;
  if (n >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
    return false;
  *size = static_cast<uint64_t>(st.st_size);
  return true;
}

cepheus::Result<std::unique_ptr<LineReader>> LineReader::OpenRange(const std::string& path,
                                                                   uint64_t begin, uint64_t end) {
  auto r = Open(path);
  if (!r.ok()) return r;
  LineReader& lr = *r.value();
  if (lr.codec_ != Codec::kNone || !lr.bounded_)
    return Status::InvalidArgument("'" + path + "' cannot be read in ranges");
  lr.range_end_ = end;
  lr.range_begin_ = begin;
  lr.numbered_ = begin == 0;
  if (begin > 0) {
    // Start at begin-1 and drop everything up to and including the first
    // newline: the line in progress there belongs to the previous range.
    if (::lseek(lr.fd_, static_cast<off_t>(begin - 1), SEEK_SET) < 0)
      return Status::IoError("seeking in '" + path + "' failed");
    lr.consumed_ = begin - 1;
    while (true) {
      bool timed_out;
      const char* start = lr.buf_.data() + lr.begin_;
      const char* nl = static_cast<const char*>(std::memchr(start, '\n', lr.end_ - lr.begin_));
      if (nl) {
        lr.begin_ += static_cast<size_t>(nl - start) + 1;
        break;
      }
      lr.begin_ = lr.end_;
      if (!lr.Fill(0, &timed_out)) {
        if (!lr.error_.ok()) return lr.error_;
        break;  // no newline until the end: nothing starts in this range
      }
    }
  }
  return r;
}

ssize_t LineReader::ReadRaw(char* dst, size_t n) {
  while (true) {
    ssize_t got = ::read(fd_, dst, n);
    if (got >= 0 || errno != EINTR) return got;
  }
}

// Decompresses into buf_[end_, size - kSlack). True if bytes were produced;
// false at the clean end of the data (eof_) or on an error (error_).
bool LineReader::FillDecompressed() {
  const char* kind = codec_ == Codec::kGzip ? "gzip" : "zstd";
  while (true) {
    if (in_pos_ == in_len_ && !raw_eof_) {
      ssize_t got = ReadRaw(in_.data(), in_.size());
      if (got < 0) {
        error_ = Status::IoError("reading '" + name_ + "': " + std::strerror(errno));
        return false;
      }
      if (got == 0) raw_eof_ = true;
      in_pos_ = 0;
      in_len_ = static_cast<size_t>(got);
      raw_read_ += static_cast<uint64_t>(got);
    }
    if (raw_eof_ && in_pos_ == in_len_) {
      // No input left: the data is complete only if the last frame/member ended.
      bool complete = codec_ == Codec::kGzip ? dec_->z_member_done : dec_->zstd_last == 0;
      if (!complete) {
        error_ = Status::Corruption("'" + name_ + "' ends in the middle of a " + kind +
                                    " stream (truncated file?)");
        return false;
      }
      eof_ = true;
      return false;
    }
    char* out = buf_.data() + end_;
    const size_t room = buf_.size() - kSlack - end_;
    size_t produced = 0;
    if (codec_ == Codec::kGzip) {
      z_stream& z = dec_->z;
      if (dec_->z_member_done && in_pos_ < in_len_) {
        // Concatenated gzip members (as `cat a.gz b.gz` makes) form one stream.
        inflateReset(&z);
        dec_->z_member_done = false;
      }
      z.next_in = reinterpret_cast<Bytef*>(in_.data() + in_pos_);
      z.avail_in = static_cast<uInt>(in_len_ - in_pos_);
      z.next_out = reinterpret_cast<Bytef*>(out);
      z.avail_out = static_cast<uInt>(room);
      int rc = dec_->z_member_done ? Z_STREAM_END : inflate(&z, Z_NO_FLUSH);
      produced = room - z.avail_out;
      in_pos_ = in_len_ - z.avail_in;
      if (rc == Z_STREAM_END) {
        dec_->z_member_done = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        error_ =
            Status::Corruption("'" + name_ + "' is a corrupt gzip stream (near compressed byte " +
                               std::to_string(raw_read_ - (in_len_ - in_pos_)) +
                               "): " + (z.msg ? z.msg : "inflate failed"));
        return false;
      }
    } else {
      ZSTD_inBuffer ib{in_.data(), in_len_, in_pos_};
      ZSTD_outBuffer ob{out, room, 0};
      size_t rc = ZSTD_decompressStream(dec_->zstd, &ob, &ib);
      if (ZSTD_isError(rc)) {
        error_ = Status::Corruption(
            "'" + name_ + "' is a corrupt zstd stream (near compressed byte " +
            std::to_string(raw_read_ - (in_len_ - ib.pos)) + "): " + ZSTD_getErrorName(rc));
        return false;
      }
      dec_->zstd_last = rc;
      produced = ob.pos;
      in_pos_ = ib.pos;
    }
    if (produced > 0) {
      end_ += produced;
      return true;
    }
  }
}

Status LineReader::SkipTo(uint64_t position, uint64_t line_number) {
  if (!bounded_) return Status::InvalidArgument("'" + name_ + "' cannot be rewound (not a file)");
  if (codec_ == Codec::kNone) {
    struct stat st;
    if (::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) < position)
      return Status::Corruption("'" + name_ + "' is shorter than the checkpoint's position " +
                                std::to_string(position) + " (was it replaced?)");
    if (::lseek(fd_, static_cast<off_t>(position), SEEK_SET) < 0)
      return Status::IoError("seeking in '" + name_ + "': " + std::strerror(errno));
    consumed_ = position;
    begin_ = end_ = 0;
    eof_ = false;
  } else {
    while (consumed_ + end_ < position) {
      begin_ = end_;
      bool timed_out;
      if (!Fill(0, &timed_out)) {
        if (!error_.ok()) return error_;
        return Status::Corruption("'" + name_ + "' is shorter than the checkpoint's position " +
                                  std::to_string(position));
      }
    }
    begin_ = static_cast<size_t>(position - consumed_);
  }
  line_number_ = line_number;
  return Status::Ok();
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
  if (codec_ != Codec::kNone) return FillDecompressed();
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

const char* LineReader::FindRecordEnd(const char* p, const char* end) const {
  if (!quoted_records_) return static_cast<const char*>(std::memchr(p, '\n', end - p));
  // The decoder's quoting rule: a quote opens a quoted field only at the
  // start of a field; inside one, "" is a quote and " closes it.
  bool in_quotes = false, field_start = true;
  for (; p < end; ++p) {
    const char c = *p;
    if (in_quotes) {
      if (c == '"') {
        if (p + 1 == end) return nullptr;  // "" or a closing quote: needs the next byte
        if (p[1] == '"')
          ++p;
        else
          in_quotes = false;
      }
    } else if (c == '\n') {
      return p;
    } else if (c == ',') {
      field_start = true;
    } else {
      in_quotes = c == '"' && field_start;
      field_start = false;
    }
  }
  return nullptr;
}

std::string_view LineReader::TakeRecord(const char* start, const char* nl, bool terminated) {
  const size_t len = static_cast<size_t>(nl - start);
  std::string_view line(start, len);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  line_offset_ = consumed_ + begin_;
  record_line_ = ++line_number_;
  if (quoted_records_)  // the next record's line number counts embedded newlines
    line_number_ += static_cast<uint64_t>(std::count(line.begin(), line.end(), '\n'));
  begin_ += len + (terminated ? 1 : 0);
  return line;
}

void LineReader::SkipByteOrderMark() {
  if (bom_checked_) return;
  if (consumed_ + begin_ != 0 || range_begin_ != 0) {
    bom_checked_ = true;
    return;
  }
  const size_t have = end_ - begin_;
  if (have < 3 && !eof_ && !std::memchr(buf_.data() + begin_, '\n', have)) return;  // read more
  bom_checked_ = true;
  if (have >= 3 && std::memcmp(buf_.data() + begin_, "\xEF\xBB\xBF", 3) == 0) begin_ += 3;
}

LineReader::Result LineReader::NextLines(size_t max_lines, int timeout_ms,
                                         std::vector<Line>* lines) {
  // A bounded input first buffers `max_lines` complete records (or all that
  // are left), so the number of records per call never depends on where
  // earlier reads happened to stop (a reader restored at an offset then reads
  // in exactly the same steps as one that was never stopped).
  if (bounded_ && max_lines > 1) {
    size_t have = 0;
    const char* scan = buf_.data() + begin_;
    while (!eof_) {
      const char* end = buf_.data() + end_;
      while (have < max_lines && scan < end) {
        const char* nl = FindRecordEnd(scan, end);
        if (!nl) break;
        ++have;
        scan = nl + 1;
      }
      if (have >= max_lines || consumed_ + (scan - buf_.data()) >= range_end_) break;
      const size_t scanned = static_cast<size_t>(scan - (buf_.data() + begin_));
      bool timed_out;
      if (!Fill(0, &timed_out)) {
        if (!error_.ok()) return Result::kError;
        break;  // end of the data
      }
      scan = buf_.data() + begin_ + scanned;
    }
  }
  // The first record may need a read (which moves the buffer); the others are
  // taken from what is already buffered, so no view is invalidated.
  std::string_view first;
  Result r = Next(&first, timeout_ms);
  if (r != Result::kLine) return r;
  lines->push_back(Line{first, numbered_ ? record_line_ : 0, line_offset_});
  while (lines->size() < max_lines) {
    const char* start = buf_.data() + begin_;
    const char* nl = FindRecordEnd(start, buf_.data() + end_);
    if (!nl) break;  // the rest is not complete yet (or needs EOF handling by Next)
    if (consumed_ + begin_ >= range_end_) break;  // starts in the next range
    std::string_view line = TakeRecord(start, nl, true);
    lines->push_back(Line{line, numbered_ ? record_line_ : 0, line_offset_});
  }
  return Result::kLine;
}

LineReader::Result LineReader::Next(std::string_view* line, int timeout_ms) {
  if (consumed_ + begin_ >= range_end_) return Result::kEnd;
  while (true) {
    SkipByteOrderMark();
    const char* start = buf_.data() + begin_;
    if (bom_checked_) {
      if (const char* nl = FindRecordEnd(start, buf_.data() + end_)) {
        *line = TakeRecord(start, nl, true);
        return Result::kLine;
      }
      if (eof_) {
        if (begin_ == end_) return Result::kEnd;
        *line = TakeRecord(start, buf_.data() + end_, false);
        return Result::kLine;
      }
    }
    bool timed_out;
    if (!Fill(timeout_ms, &timed_out)) {
      if (timed_out) return Result::kTimeout;
      if (!error_.ok()) return Result::kError;
    }
  }
}

cepheus::Result<std::vector<uint64_t>> LineReader::CsvRecordStarts(
    const std::string& path, const std::vector<uint64_t>& targets) {
  auto opened = Open(path);
  if (!opened.ok()) return opened.status();
  LineReader& r = *opened.value();
  r.set_quoted_records(true);
  std::vector<uint64_t> starts;
  std::string_view line;
  size_t t = 0;
  while (t < targets.size()) {
    const uint64_t at = r.position();
    if (at >= targets[t]) {
      starts.push_back(at);
      ++t;
      continue;
    }
    Result res = r.Next(&line, 0);
    if (res == Result::kError) return r.error();
    if (res != Result::kLine) break;
  }
  const uint64_t end = r.position();
  while (starts.size() < targets.size()) starts.push_back(end);
  return starts;
}

}  // namespace cepheus::sources
