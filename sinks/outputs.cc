#include "sinks/outputs.h"

#include "sinks/kafka_sink.h"

#include "common/hash.h"
#include "common/text.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <vector>

namespace cepheus::sinks {
namespace {

class FileOutput final : public io::Sink {
 public:
  FileOutput(std::FILE* f, std::string name, bool owned)
      : f_(f), name_(std::move(name)), owned_(owned) {}
  ~FileOutput() override {
    std::lock_guard<std::mutex> l(mu_);
    std::fflush(f_);
    if (owned_) std::fclose(f_);
  }
  // Each Write is one worker batch (or one reader turn): it is flushed at
  // once, so a live pipeline's records leave as soon as the watermark
  // releases them instead of sitting in a stdio buffer until exit.
  Status Write(const io::RecordBatch& batch) override { return WriteLines(batch.lines()); }
  Status WriteLines(std::string_view lines) {
    std::lock_guard<std::mutex> l(mu_);
    if (std::fwrite(lines.data(), 1, lines.size(), f_) != lines.size() || std::fflush(f_) != 0)
      return Status::IoError("writing " + name_ + ": " + std::strerror(errno));
    return Status::Ok();
  }
  Status Flush() override {
    std::lock_guard<std::mutex> l(mu_);
    if (std::fflush(f_) != 0)
      return Status::IoError("flushing " + name_ + ": " + std::strerror(errno));
    return Status::Ok();
  }

 private:
  std::mutex mu_;
  std::FILE* f_;  // guarded by mu_
  std::string name_;
  bool owned_;
};

namespace fs = std::filesystem;

Status Errno(const std::string& what) {
  return Status::IoError(what + ": " + std::strerror(errno));
}

// Appends the file `from` to the open descriptor `to_fd`.
Status AppendFile(const std::string& from, int to_fd, const std::string& to_name) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Errno("opening '" + from + "'");
  std::vector<char> buf(1 << 20);
  while (true) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = Errno("reading '" + from + "'");
      ::close(in);
      return s;
    }
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(to_fd, buf.data() + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        Status s = Errno("appending to '" + to_name + "'");
        ::close(in);
        return s;
      }
      off += w;
    }
  }
  ::close(in);
  return Status::Ok();
}

// The exactly-once file sink. The visible file only ever grows by whole
// checkpoints: records go to a hidden in-progress file next to it; at a
// checkpoint that file is synced and renamed to a pending part named after
// the checkpoint; when the checkpoint is complete the part is appended to the
// visible file (synced) and deleted. The checkpoint's record says where the
// visible file ended before the part and how long the part is, so a restart
// can finish an interrupted append or cut off anything a later, incomplete
// checkpoint added.
class ExactlyOnceFileOutput final : public io::Sink {
 public:
  explicit ExactlyOnceFileOutput(std::string path) : path_(std::move(path)) {
    const fs::path p(path_);
    dir_ = p.parent_path().empty() ? "." : p.parent_path().string();
    // (Appended piecewise: g++ 12 warns falsely about "." + std::string.)
    prefix_.push_back('.');
    prefix_.append(p.filename().string());
    prefix_.push_back('.');
  }
  ~ExactlyOnceFileOutput() override {
    std::lock_guard<std::mutex> l(mu_);
    if (!f_) return;
    const bool empty = std::ftell(f_) == 0;
    std::fclose(f_);
    // Records after the last checkpoint stay in the in-progress file (never
    // visible; the next start discards them and replays from the checkpoint).
    if (empty) ::unlink(InProgress().c_str());
  }

  Status Write(const io::RecordBatch& batch) override { return WriteLines(batch.lines()); }
  Status WriteLines(std::string_view lines) {
    std::lock_guard<std::mutex> l(mu_);
    if (!f_) return Status::Internal("output '" + path_ + "' used before recovery");
    if (std::fwrite(lines.data(), 1, lines.size(), f_) != lines.size())
      return Errno("writing '" + InProgress() + "'");
    return Status::Ok();
  }
  Status Flush() override {
    std::lock_guard<std::mutex> l(mu_);
    if (f_ && std::fflush(f_) != 0) return Errno("flushing '" + InProgress() + "'");
    return Status::Ok();
  }

  Result<std::string> PrepareCommit(uint64_t id) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!f_) return Status::Internal("output '" + path_ + "' used before recovery");
    if (std::fflush(f_) != 0 || ::fsync(::fileno(f_)) != 0)
      return Errno("syncing '" + InProgress() + "'");
    const uint64_t size = static_cast<uint64_t>(std::ftell(f_));
    std::fclose(f_);
    f_ = nullptr;
    const std::string part = prefix_ + "part-" + std::to_string(id);
    if (::rename(InProgress().c_str(), (dir_ + "/" + part).c_str()) != 0)
      return Errno("renaming '" + InProgress() + "'");
    CEPHEUS_RETURN_IF_ERROR(OpenInProgress());
    Record r{committed_, size, part};
    committed_ += size;  // once this part is committed
    return r.Encode();
  }

  Status Commit(const std::string& record) override {
    std::lock_guard<std::mutex> l(mu_);
    auto r = Record::Decode(record);
    if (!r) return Status::Corruption("bad commit record '" + record + "' for " + path_);
    return Apply(*r);
  }

  Status Recover(const std::string& record) override {
    std::lock_guard<std::mutex> l(mu_);
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) return Status::IoError("cannot create directory '" + dir_ + "': " + ec.message());
    if (record.empty()) {
      // A fresh start: the output starts empty (as a plain file sink does).
      int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) return Errno("cannot open output file '" + path_ + "'");
      ::close(fd);
      committed_ = 0;
    } else {
      auto r = Record::Decode(record);
      if (!r) return Status::Corruption("bad commit record '" + record + "' for " + path_);
      CEPHEUS_RETURN_IF_ERROR(Apply(*r));
      committed_ = r->base + r->size;
    }
    // Parts of checkpoints that never completed, and the in-progress file.
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      const std::string name = e.path().filename().string();
      if (name.starts_with(prefix_)) fs::remove(e.path(), ec);
    }
    return OpenInProgress();
  }

 private:
  struct Record {
    uint64_t base = 0, size = 0;
    std::string part;
    std::string Encode() const {
      return std::to_string(base) + " " + std::to_string(size) + " " + part;
    }
    static std::optional<Record> Decode(const std::string& s) {
      Record r;
      char name[256];
      unsigned long long b, z;
      if (std::sscanf(s.c_str(), "%llu %llu %255s", &b, &z, name) != 3) return std::nullopt;
      r.base = b;
      r.size = z;
      r.part = name;
      if (r.part.find('/') != std::string::npos) return std::nullopt;
      return r;
    }
  };

  std::string InProgress() const { return dir_ + "/" + prefix_ + "inprogress"; }

  Status OpenInProgress() {
    f_ = std::fopen(InProgress().c_str(), "w");
    if (!f_) return Errno("cannot open '" + InProgress() + "'");
    return Status::Ok();
  }

  // Brings the visible file to base + size bytes with the part as its tail.
  Status Apply(const Record& r) {
    const std::string part = dir_ + "/" + r.part;
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("cannot open output file '" + path_ + "'");
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      return Errno("stat '" + path_ + "'");
    }
    const uint64_t have = static_cast<uint64_t>(st.st_size);
    Status s;
    if (have >= r.base + r.size) {
      // Already appended; anything beyond is from a checkpoint that did not complete.
      if (have > r.base + r.size && ::ftruncate(fd, static_cast<off_t>(r.base + r.size)) != 0)
        s = Errno("truncating '" + path_ + "'");
    } else if (have < r.base) {
      s = Status::Corruption("output '" + path_ + "' has " + std::to_string(have) +
                             " bytes, fewer than the " + std::to_string(r.base) +
                             " an earlier checkpoint committed (was it truncated?)");
    } else if (::ftruncate(fd, static_cast<off_t>(r.base)) != 0 || ::lseek(fd, 0, SEEK_END) < 0) {
      s = Errno("truncating '" + path_ + "'");
    } else {
      s = AppendFile(part, fd, path_);
    }
    if (s.ok() && ::fsync(fd) != 0) s = Errno("syncing '" + path_ + "'");
    ::close(fd);
    if (s.ok()) ::unlink(part.c_str());
    return s;
  }

  std::mutex mu_;
  std::string path_, dir_, prefix_;
  std::FILE* f_ = nullptr;  // the in-progress file; guarded by mu_
  uint64_t committed_ = 0;  // visible length once every prepared part is committed
};

// A file written whole or not at all: records go to a hidden temporary file
// beside it, renamed over the target by Finish(). A job that fails removes
// the temporary file; one that is killed leaves it hidden, and the next
// output opened in that directory removes it (its pid no longer runs).
class AtomicFileOutput final : public io::Sink {
 public:
  static Result<std::unique_ptr<io::Sink>> Open(const std::string& path) {
    const fs::path p(path);
    const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
      return Status::IoError("cannot create directory '" + dir.string() + "': " + ec.message());
    std::string prefix(".");
    prefix.append(p.filename().string()).append(".tmp-");
    RemoveStale(dir, prefix);
    const std::string tmp = (dir / (prefix + std::to_string(::getpid()))).string();
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) return Errno("cannot open output file '" + tmp + "'");
    return std::unique_ptr<io::Sink>(new AtomicFileOutput(path, tmp, f));
  }
  ~AtomicFileOutput() override {
    if (file_) {
      file_.reset();
      ::unlink(tmp_.c_str());  // not finished: no partial result
    }
  }
  Status Write(const io::RecordBatch& batch) override { return file_->Write(batch); }
  Status Flush() override { return file_ ? file_->Flush() : Status::Ok(); }
  Status Finish() override {
    if (!file_) return Status::Ok();
    CEPHEUS_RETURN_IF_ERROR(file_->Flush());
    if (::fsync(::fileno(f_)) != 0) return Errno("syncing '" + tmp_ + "'");
    file_.reset();  // closes it
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
      return Errno("renaming '" + tmp_ + "' to '" + path_ + "'");
    return Status::Ok();
  }

 private:
  AtomicFileOutput(std::string path, std::string tmp, std::FILE* f)
      : path_(std::move(path)), tmp_(std::move(tmp)), f_(f), file_(new FileOutput(f, tmp_, true)) {}
  // Temporary files of processes that no longer run.
  static void RemoveStale(const fs::path& dir, const std::string& prefix) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (!name.starts_with(prefix)) continue;
      const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
        fs::remove(e.path(), ec);
    }
  }
  std::string path_, tmp_;
  std::FILE* f_;
  std::unique_ptr<FileOutput> file_;
};

}  // namespace

Result<std::unique_ptr<io::Sink>> MakeOutput(const io::SinkConfig& config, FileMode mode,
                                             const OutputContext& ctx) {
  using io::SinkKind;
  if (config.kind == SinkKind::kKafka) {
    KafkaOutputContext k;
    k.name = ctx.name;
    if (mode == FileMode::kExactlyOnce && !ctx.state_dir.empty()) {
      std::error_code ec;
      const fs::path dir = fs::absolute(ctx.state_dir, ec).lexically_normal();
      k.spool_dir = (dir / "kafka-spool" / ctx.name).string();
      // Fixed by the state directory and the output: a restarted process
      // fences the one before it (the directory's lock keeps out others).
      std::string hash;
      AppendHex16(&hash, StableHash(dir.string()));
      k.transactional_id = "cepheus-" + hash + "." + ctx.name;
    }
    k.test_ledger = ctx.kafka_test_ledger;
    return MakeKafkaSink(config.kafka, k);
  }
  if (config.is_file() && mode == FileMode::kExactlyOnce)
    return std::unique_ptr<io::Sink>(new ExactlyOnceFileOutput(config.path));
  if (config.is_file() && mode == FileMode::kAtomic) return AtomicFileOutput::Open(config.path);
  if (config.kind == SinkKind::kStdout)
    return std::unique_ptr<io::Sink>(new FileOutput(stdout, "standard output", false));
  if (config.kind == SinkKind::kStderr)
    return std::unique_ptr<io::Sink>(new FileOutput(stderr, "standard error", false));
  if (config.is_file()) {
    std::error_code ec;
    auto dir = std::filesystem::path(config.path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    if (ec)
      return Status::IoError("cannot create directory '" + dir.string() + "': " + ec.message());
    std::FILE* f = std::fopen(config.path.c_str(), "w");
    if (!f)
      return Status::IoError("cannot open output file '" + config.path +
                             "': " + std::strerror(errno));
    return std::unique_ptr<io::Sink>(new FileOutput(f, config.path, true));
  }
  return Status::InvalidArgument("unknown output type '" + std::string(SinkKindName(config.kind)) +
                                 "'");
}

Status MemoryOutput::Write(const io::RecordBatch& batch) {
  std::lock_guard<std::mutex> l(mu_);
  data_.append(batch.lines());
  for (size_t i = 0; i < batch.size(); ++i) {
    const io::Record r = batch[i];
    records_.push_back(OwnedRecord{r.kind, std::string(r.key), std::string(r.name), r.time_ms,
                                   std::string(r.payload)});
  }
  return Status::Ok();
}

std::vector<MemoryOutput::OwnedRecord> MemoryOutput::records() const {
  std::lock_guard<std::mutex> l(mu_);
  return records_;
}

std::string MemoryOutput::contents() const {
  std::lock_guard<std::mutex> l(mu_);
  return data_;
}

}  // namespace cepheus::sinks
