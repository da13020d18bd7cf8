#include "engine/checkpoint/checkpoint.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/hash.h"
#include "state/state_backend.h"

namespace cepheus::engine {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view kHeader = "cepheus-checkpoint 1";
constexpr const char* kMetadataFile = "_metadata";

std::string Hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2 + 1);
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out.empty() ? "-" : out;
}

bool Unhex(std::string_view h, std::string* out) {
  out->clear();
  if (h == "-") return true;
  if (h.size() % 2) return false;
  auto v = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < h.size(); i += 2) {
    int a = v(h[i]), b = v(h[i + 1]);
    if (a < 0 || b < 0) return false;
    out->push_back(static_cast<char>(a * 16 + b));
  }
  return true;
}

std::string HashLine(std::string_view body) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "end %016llx\n",
                static_cast<unsigned long long>(StableHash(body)));
  return buf;
}

template <typename T>
bool ParseInt(std::string_view s, T* v) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

std::string Fingerprint(std::string_view text) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(StableHash(text)));
  return buf;
}

std::string CheckpointMetadata::Encode() const {
  std::ostringstream o;
  o << kHeader << "\n";
  o << "id " << id << "\n";
  o << "created_ms " << created_ms << "\n";
  o << "finished " << (finished ? 1 : 0) << "\n";
  o << "parallelism " << parallelism << "\n";
  o << "watermark " << watermark.time().millis() << "\n";
  o << "reader " << Hex(reader_state) << "\n";
  o << "state " << state_backend << " " << state_location << " " << key_groups << "\n";
  o << "worker_state " << worker_state << "\n";
  for (const auto& [name, fp] : patterns) o << "pattern " << Hex(name) << " " << fp << "\n";
  for (const auto& k : keyings) o << "keying " << Hex(k) << "\n";
  for (const auto& [slot, rec] : outputs) o << "output " << slot << " " << Hex(rec) << "\n";
  std::string body = o.str();
  return body + HashLine(body);
}

Result<CheckpointMetadata> CheckpointMetadata::Decode(std::string_view text,
                                                      const std::string& path) {
  auto bad = [&](const std::string& why) {
    return Status::Corruption("checkpoint metadata '" + path + "' is damaged: " + why);
  };
  // The last line carries a hash of everything before it: a truncated or
  // altered file does not verify.
  if (text.empty() || text.back() != '\n') return bad("it does not end with a complete line");
  const size_t last = text.rfind('\n', text.size() - 2);
  if (last == std::string_view::npos) return bad("too short");
  const std::string_view body = text.substr(0, last + 1);
  if (text.substr(last + 1) != HashLine(body)) return bad("its checksum does not match");
  CheckpointMetadata m;
  m.worker_state = 1;
  bool have_id = false, have_state = false;
  std::istringstream in{std::string(body)};
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (n == 1) {
      if (line != kHeader) return bad("unknown format '" + line + "'");
      continue;
    }
    std::istringstream ls(line);
    std::string k, a, b, c;
    ls >> k >> a >> b >> c;
    bool ok = true;
    if (k == "id") {
      ok = ParseInt(a, &m.id);
      have_id = ok;
    } else if (k == "created_ms") {
      ok = ParseInt(a, &m.created_ms);
    } else if (k == "finished") {
      m.finished = a == "1";
    } else if (k == "parallelism") {
      ok = ParseInt(a, &m.parallelism);
    } else if (k == "watermark") {
      int64_t ms;
      ok = ParseInt(a, &ms);
      m.watermark = Watermark::At(EventTime::FromMillis(ms));
    } else if (k == "reader") {
      ok = Unhex(a, &m.reader_state);
    } else if (k == "state") {
      m.state_backend = a;
      m.state_location = b;
      m.key_groups = c;
      have_state = !a.empty() && !b.empty();
    } else if (k == "worker_state") {
      ok = ParseInt(a, &m.worker_state) && m.worker_state >= 1 && m.worker_state <= 2;
    } else if (k == "pattern") {
      std::string name;
      ok = Unhex(a, &name) && !b.empty();
      m.patterns.emplace_back(std::move(name), b);
    } else if (k == "keying") {
      std::string sig;
      ok = Unhex(a, &sig);
      m.keyings.push_back(std::move(sig));
    } else if (k == "output") {
      std::string rec;
      ok = Unhex(b, &rec);
      m.outputs.emplace_back(a, std::move(rec));
    } else {
      ok = false;
    }
    if (!ok) return bad("line " + std::to_string(n) + " '" + line + "'");
  }
  if (!have_id || !have_state) return bad("id or state location missing");
  return m;
}

CheckpointStore::CheckpointStore(std::string state_dir) : state_dir_(std::move(state_dir)) {}

std::string CheckpointStore::working_dir() const { return state_dir_ + "/db"; }

std::string CheckpointStore::DirOf(uint64_t id) const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "chk-%06llu", static_cast<unsigned long long>(id));
  return state_dir_ + "/checkpoints/" + buf;
}

std::vector<uint64_t> CheckpointStore::Ids() const {
  std::vector<uint64_t> ids;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(state_dir_ + "/checkpoints", ec)) {
    const std::string name = e.path().filename().string();
    uint64_t id;
    if (name.starts_with("chk-") && ParseInt(std::string_view(name).substr(4), &id))
      ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

uint64_t CheckpointStore::NextId() const {
  auto ids = Ids();
  return ids.empty() ? 1 : ids.back() + 1;
}

Result<std::vector<CheckpointStore::Found>> CheckpointStore::Usable() const {
  auto ids = Ids();
  std::vector<std::string> problems;
  std::vector<Found> usable;
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    const std::string dir = DirOf(*it);
    const std::string path = dir + "/" + kMetadataFile;
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      // A snapshot that never completed (the process died while taking it).
      spdlog::info("checkpoint {} is incomplete (no metadata): ignored", *it);
      continue;
    }
    std::ifstream in(path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto meta = CheckpointMetadata::Decode(text, path);
    std::string problem;
    if (!meta.ok()) {
      problem = meta.status().message();
    } else if (meta->id != *it) {
      problem = "metadata '" + path + "' names checkpoint " + std::to_string(meta->id);
    } else if (!fs::is_directory(dir + "/" + meta->state_location, ec)) {
      problem = "its state directory '" + dir + "/" + meta->state_location + "' is missing";
    }
    if (problem.empty()) {
      if (usable.empty() && !problems.empty())
        spdlog::warn("falling back to checkpoint {} (newer ones are unusable)", *it);
      usable.push_back(Found{std::move(meta.value()), dir});
      continue;
    }
    if (usable.empty()) {
      spdlog::warn("checkpoint {} is unusable: {}", *it, problem);
      problems.push_back("checkpoint " + std::to_string(*it) + ": " + problem);
    }
  }
  if (usable.empty() && !problems.empty()) {
    std::string msg = "no usable checkpoint in '" + state_dir_ +
                      "/checkpoints' (refusing to start from empty state; move the state "
                      "directory away to start over):";
    for (const auto& p : problems) msg += "\n  " + p;
    return Status::Corruption(msg);
  }
  return usable;
}

Result<std::optional<CheckpointStore::Found>> CheckpointStore::FindLatest() const {
  auto usable = Usable();
  if (!usable.ok()) return usable.status();
  if (usable->empty()) return std::optional<Found>();
  return std::optional<Found>(std::move(usable->front()));
}

Status CheckpointStore::Complete(const CheckpointMetadata& meta) const {
  return state::WriteFileDurably(DirOf(meta.id) + "/" + kMetadataFile, meta.Encode());
}

namespace {
// Keeps the first failure of a sequence of deletions.
void KeepFirst(Status& first, const std::string& dir, const std::error_code& ec) {
  if (ec && first.ok())
    first = Status::IoError("cannot delete checkpoint '" + dir + "': " + ec.message());
}
}  // namespace

Status CheckpointStore::Retain(int retain) const {
  Status first;
  auto ids = Ids();
  int complete_seen = 0;
  bool newer_complete = false;
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    std::error_code ec;
    const bool complete = fs::exists(DirOf(*it) + "/" + kMetadataFile, ec);
    bool drop = false;
    if (complete) {
      drop = ++complete_seen > retain;
      newer_complete = true;
    } else {
      drop = newer_complete;
    }
    if (!drop) continue;
    // The metadata goes first and durably: a crash after this point leaves
    // an incomplete checkpoint, never a complete one with missing files.
    fs::remove(DirOf(*it) + "/" + kMetadataFile, ec);
    KeepFirst(first, DirOf(*it), ec);
    if (ec) continue;  // still complete: leave its files alone
    if (Status synced = state::SyncDirectory(DirOf(*it)); !synced.ok() && first.ok())
      first = synced;
    fs::remove_all(DirOf(*it), ec);
    KeepFirst(first, DirOf(*it), ec);
  }
  return first;
}

Status CheckpointStore::DeleteNewerThan(uint64_t id) const {
  Status first;
  for (uint64_t i : Ids()) {
    std::error_code ec;
    if (i > id) fs::remove_all(DirOf(i), ec);
    KeepFirst(first, DirOf(i), ec);
  }
  return first;
}

Status CheckpointStore::DeleteAll() const {
  std::error_code ec;
  fs::remove_all(state_dir_ + "/checkpoints", ec);
  Status s;
  KeepFirst(s, state_dir_ + "/checkpoints", ec);
  return s;
}

}  // namespace cepheus::engine
