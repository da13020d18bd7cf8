#include "engine/batch/spill.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "state/dir_lock.h"

namespace cepheus::engine::batch {
namespace {

namespace fs = std::filesystem;
constexpr const char* kSpillPrefix = "cepheus-spill-";

// Whether the process that named a spill directory
// (cepheus-spill-<pid>-<time>) is still running: its directory is not stale,
// even in the instant between creating its lock file and locking it.
bool SpillOwnerAlive(const std::string& name) {
  const std::string rest = name.substr(std::string_view(kSpillPrefix).size());
  const long pid = std::strtol(rest.c_str(), nullptr, 10);
  if (pid <= 0) return false;
  if (pid == static_cast<long>(::getpid())) return true;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

// Removes spill directories that killed backtests left in `base`: those whose
// owner process is gone and whose lock nobody holds (a live backtest holds its
// directory's lock).
void RemoveStaleSpillDirs(const std::filesystem::path& base) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(base, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.starts_with(kSpillPrefix) || !e.is_directory(ec)) continue;
    if (!std::filesystem::exists(e.path() / "cepheus.lock", ec)) continue;  // not ours
    if (SpillOwnerAlive(name)) continue;
    auto lock = state::DirLock::Acquire(e.path().string());
    if (!lock.ok()) continue;  // in use
    lock.value().reset();
    std::uintmax_t bytes = 0;
    for (const auto& f : std::filesystem::recursive_directory_iterator(e.path(), ec))
      if (f.is_regular_file(ec)) bytes += f.file_size(ec);
    std::filesystem::remove_all(e.path(), ec);
    spdlog::warn("removed the spill directory of a backtest that did not finish: {} ({} bytes)",
                 e.path().string(), bytes);
  }
}

}  // namespace

SpillStore::SpillStore(const std::string& base)
    : base_(base.empty() ? fs::temp_directory_path() : fs::path(base)) {
  RemoveStaleSpillDirs(base_);
}

SpillStore::~SpillStore() {
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
  lock_.reset();
}

Status SpillStore::WriteRun(PartSet& parts) {
  std::string path;
  int run;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (dir_.empty()) {
      dir_ = base_ / (std::string(kSpillPrefix) + std::to_string(::getpid()) + "-" +
                      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
      auto lock = state::DirLock::Acquire(dir_.string());
      if (!lock.ok())
        return Status::IoError("cannot create spill directory '" + dir_.string() +
                               "': " + lock.status().message());
      lock_ = std::move(lock.value());
    }
    run = static_cast<int>(files_.size());
    path = (dir_ / ("run-" + std::to_string(run))).string();
    files_.push_back(path);
  }
  std::ofstream out(path, std::ios::binary);
  if (!out) return Status::IoError("cannot write spill file '" + path + "'");
  uint64_t offset = 0;
  std::string buf;
  for (auto& keying_parts : parts) {
    for (Partition& part : keying_parts) {
      if (part.entries.empty()) continue;
      SortEntries(part.entries);
      buf.clear();
      for (const Entry& e : part.entries) {
        buf.append(reinterpret_cast<const char*>(&e.hash), 8);
        e.row->AppendEncoded(&buf);
      }
      if (!out.write(buf.data(), static_cast<std::streamsize>(buf.size())))
        return Status::IoError("writing spill file '" + path + "' failed (disk full?)");
      part.sections.push_back(Partition::Section{run, offset, buf.size()});
      offset += buf.size();
      part.Release();  // no row of its arenas is referenced any more
    }
  }
  out.close();
  if (!out) return Status::IoError("writing spill file '" + path + "' failed (disk full?)");
  std::lock_guard<std::mutex> l(mu_);
  bytes_ += offset;
  return Status::Ok();
}

SectionReader::SectionReader(const std::string& file, uint64_t offset, uint64_t length)
    : in_(file, std::ios::binary), remaining_(length) {
  in_.seekg(static_cast<std::streamoff>(offset));
}

Result<bool> SectionReader::Fill(size_t n) {
  while (buf_.size() - pos_ < n) {
    if (remaining_ == 0) return false;
    const size_t have = buf_.size() - pos_;
    const size_t more = static_cast<size_t>(std::min<uint64_t>(remaining_, 1 << 20));
    std::string next(have + more, '\0');
    std::memcpy(next.data(), buf_.data() + pos_, have);
    if (!in_.read(next.data() + have, static_cast<std::streamsize>(more)))
      return Status::IoError("reading a spill file failed");
    remaining_ -= more;
    buf_ = std::move(next);
    pos_ = 0;
  }
  return true;
}

Result<bool> SectionReader::Next(Entry* e) {
  auto got = Fill(8);
  if (!got.ok()) return got;
  if (!*got) {
    if (buf_.size() == pos_) return false;  // the end
    return Status::Corruption("a spill file ends inside an entry");
  }
  // Entries may straddle two reads: make sure a whole one is buffered.
  size_t row_len;
  while ((row_len = Row::EncodedLength(buf_.data() + pos_ + 8, buf_.size() - pos_ - 8)) == 0 ||
         buf_.size() - pos_ < 8 + row_len) {
    got = Fill(row_len ? 8 + row_len : buf_.size() - pos_ + 1);
    if (!got.ok()) return got;
    if (!*got) return Status::Corruption("a spill file ends inside an entry");
  }
  std::memcpy(&e->hash, buf_.data() + pos_, 8);
  const char* p = buf_.data() + pos_ + 8;
  e->row = Row::DecodeFrom(&p, p + row_len);
  if (!e->row) return Status::Corruption("a spill file holds a damaged row");
  e->ts = e->row->time().millis();
  e->seq = e->row->seq();
  pos_ = static_cast<size_t>(p - buf_.data());
  return true;
}

}  // namespace cepheus::engine::batch
