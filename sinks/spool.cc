#include "sinks/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <vector>

namespace cepheus::sinks {
namespace {

// Record: u32 body length, body = kind u8, time i64, id u64, key, name,
// payload (each u32 length + bytes). Trailer: u32 0xffffffff, u64 count.
constexpr uint32_t kTrailer = 0xffffffffu;
constexpr size_t kFixed = 1 + 8 + 8 + 3 * 4;

template <typename T>
void Put(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out->append(b, sizeof(T));
}

template <typename T>
T Get(const char*& p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  p += sizeof(T);
  return v;
}

void PutBytes(std::string* out, std::string_view s) {
  Put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

Status Errno(const std::string& what) {
  return Status::IoError(what + ": " + std::strerror(errno));
}

}  // namespace

Result<std::unique_ptr<SpoolWriter>> SpoolWriter::Create(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return Errno("cannot create spool file '" + path + "'");
  return std::unique_ptr<SpoolWriter>(new SpoolWriter(path, f));
}

SpoolWriter::~SpoolWriter() {
  if (f_) std::fclose(f_);
}

Status SpoolWriter::Append(const io::Record& r) {
  if (!f_) return Status::Internal("spool '" + path_ + "' appended to after Seal");
  if (r.key.size() > UINT32_MAX / 2 || r.name.size() > UINT32_MAX / 2 ||
      r.payload.size() > UINT32_MAX / 2)
    return Status::InvalidArgument("a record too large for the spool");
  buf_.clear();
  Put<uint32_t>(&buf_,
                static_cast<uint32_t>(kFixed + r.key.size() + r.name.size() + r.payload.size()));
  Put<uint8_t>(&buf_, static_cast<uint8_t>(r.kind));
  Put<int64_t>(&buf_, r.time_ms);
  Put<uint64_t>(&buf_, r.id);
  PutBytes(&buf_, r.key);
  PutBytes(&buf_, r.name);
  PutBytes(&buf_, r.payload);
  if (std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size())
    return Errno("writing spool '" + path_ + "'");
  size_ += buf_.size();
  ++count_;
  return Status::Ok();
}

Status SpoolWriter::Flush() {
  if (f_ && std::fflush(f_) != 0) return Errno("writing spool '" + path_ + "'");
  return Status::Ok();
}

Status SpoolWriter::Seal(const std::string& to) {
  if (!f_) return Status::Internal("spool '" + path_ + "' sealed twice");
  buf_.clear();
  Put<uint32_t>(&buf_, kTrailer);
  Put<uint64_t>(&buf_, count_);
  if (std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size() || std::fflush(f_) != 0 ||
      ::fsync(::fileno(f_)) != 0)
    return Errno("syncing spool '" + path_ + "'");
  std::fclose(f_);
  f_ = nullptr;
  if (::rename(path_.c_str(), to.c_str()) != 0)
    return Errno("renaming spool '" + path_ + "' to '" + to + "'");
  const std::string dir = std::filesystem::path(to).parent_path().string();
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("opening '" + dir + "'");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("syncing '" + dir + "'");
  return Status::Ok();
}

Status ReadSpool(const std::string& path, uint64_t from, uint64_t to,
                 const std::function<Status(const io::Record&)>& fn) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "r"), &std::fclose);
  if (!f) return Errno("cannot open spool file '" + path + "'");
  if (from > 0 && std::fseek(f.get(), static_cast<long>(from), SEEK_SET) != 0)
    return Errno("seeking in spool '" + path + "'");
  const bool sealed = to == std::numeric_limits<uint64_t>::max();
  auto bad = [&](const std::string& why) {
    return Status::Corruption("spool file '" + path + "' is damaged: " + why);
  };
  std::vector<char> body;
  uint64_t pos = from, count = 0;
  while (sealed || pos < to) {
    uint32_t len;
    if (std::fread(&len, 1, sizeof len, f.get()) != sizeof len)
      return bad(sealed ? "no trailer (truncated)" : "truncated record");
    pos += sizeof len;
    if (len == kTrailer) {
      if (!sealed) return bad("trailer before the end");
      uint64_t n;
      if (std::fread(&n, 1, sizeof n, f.get()) != sizeof n) return bad("truncated trailer");
      if (from == 0 && n != count)
        return bad("trailer says " + std::to_string(n) + " records, read " + std::to_string(count));
      return Status::Ok();
    }
    if (len < kFixed) return bad("record shorter than its header");
    body.resize(len);
    if (std::fread(body.data(), 1, len, f.get()) != len) return bad("truncated record");
    pos += len;
    const char* p = body.data();
    const char* end = p + len;
    io::Record r;
    const uint8_t kind = Get<uint8_t>(p);
    if (kind > static_cast<uint8_t>(io::RecordKind::kWatermark)) return bad("unknown record kind");
    r.kind = static_cast<io::RecordKind>(kind);
    r.time_ms = Get<int64_t>(p);
    r.id = Get<uint64_t>(p);
    std::string_view* fields[] = {&r.key, &r.name, &r.payload};
    for (std::string_view* field : fields) {
      if (end - p < 4) return bad("record fields overrun it");
      const uint32_t n = Get<uint32_t>(p);
      if (static_cast<uint64_t>(end - p) < n) return bad("record fields overrun it");
      *field = std::string_view(p, n);
      p += n;
    }
    if (p != end) return bad("record longer than its fields");
    ++count;
    CEPHEUS_RETURN_IF_ERROR(fn(r));
  }
  return Status::Ok();
}

}  // namespace cepheus::sinks
