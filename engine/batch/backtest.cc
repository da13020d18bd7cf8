#include "engine/batch/backtest.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/hash.h"
#include "common/json.h"
#include "engine/exec/cep_operator.h"
#include "engine/format/format.h"
#include "engine/nfa/nfa_runtime.h"
#include "state/dir_lock.h"
#include "state/key_groups.h"

namespace cepheus::engine {
namespace {

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

namespace fs = std::filesystem;
constexpr int kGroups = state::kDefaultKeyGroups;

struct Entry {
  uint64_t hash;  // of the key: groups a key's events together
  int64_t ts;     // copies of the row's event time and input position, so
  uint64_t seq;   // sorting does not touch the (scattered) rows
  RowPtr row;
};

Entry MakeEntry(uint64_t hash, RowPtr row) {
  Entry e{hash, row->time().millis(), row->seq(), std::move(row)};
  return e;
}

// A partition: events of one keying whose keys fall in one key group.
struct Partition {
  std::vector<Entry> entries;
  // The rows of `entries`, contiguous: a key group's events are read together
  // in phase 2, and rows allocated in arrival order would be scattered. One
  // arena per reader thread (the last one is filled).
  std::vector<std::unique_ptr<RowArena>> arenas;
  RowArena* arena() {
    if (arenas.empty()) arenas.push_back(std::make_unique<RowArena>());
    return arenas.back().get();
  }
  // Spilled sorted runs: [offset, offset + length) in spill file `run`.
  struct Section {
    int run;
    uint64_t offset, length;
  };
  std::vector<Section> sections;
};

class KeyText {
 public:
  KeyText(const CompiledPipeline& p, int keying)
      : keying_(p.keyings[static_cast<size_t>(keying)]),
        schema_(p.config.streams[static_cast<size_t>(keying_.stream)].schema) {}
  std::string_view operator()(const Row& row, std::string* scratch) const {
    return KeyView(row, keying_.fields, schema_, scratch);
  }

 private:
  const Keying& keying_;
  const Schema& schema_;
};

// Orders events of a partition by key hash, event time, input position. Two
// keys with the same 64-bit hash would interleave; GroupMatcher separates them.
struct EntryLess {
  bool operator()(const Entry& a, const Entry& b) const {
    if (a.hash != b.hash) return a.hash < b.hash;
    if (a.ts != b.ts) return a.ts < b.ts;
    return a.seq < b.seq;
  }
};

// Sorts a partition by (hash, time, position). A partition usually holds a
// few keys whose events arrived almost in time order, so: bucket by hash
// (stable, linear), then sort a bucket only if it is not in order already.
void SortEntries(std::vector<Entry>& v) {
  EntryLess less;
  if (v.size() < 2 || std::is_sorted(v.begin(), v.end(), less)) return;
  std::vector<uint64_t> hashes;
  for (const Entry& e : v) {
    if (std::find(hashes.begin(), hashes.end(), e.hash) != hashes.end()) continue;
    hashes.push_back(e.hash);
    if (hashes.size() > 64) {  // many keys: a plain sort is as good
      std::sort(v.begin(), v.end(), less);
      return;
    }
  }
  std::sort(hashes.begin(), hashes.end());
  std::vector<size_t> start(hashes.size() + 1, 0);
  for (const Entry& e : v)
    ++start[static_cast<size_t>(std::lower_bound(hashes.begin(), hashes.end(), e.hash) -
                                hashes.begin()) +
            1];
  for (size_t i = 1; i < start.size(); ++i) start[i] += start[i - 1];
  std::vector<Entry> out(v.size());
  std::vector<size_t> pos(start.begin(), start.end() - 1);
  for (Entry& e : v)
    out[pos[static_cast<size_t>(std::lower_bound(hashes.begin(), hashes.end(), e.hash) -
                                hashes.begin())]++] = std::move(e);
  for (size_t b = 0; b < hashes.size(); ++b) {
    auto first = out.begin() + static_cast<std::ptrdiff_t>(start[b]);
    auto last = out.begin() + static_cast<std::ptrdiff_t>(start[b + 1]);
    if (!std::is_sorted(first, last, less)) std::sort(first, last, less);
  }
  v = std::move(out);
}

// Reads one spilled section back, entry by entry.
class SectionReader {
 public:
  SectionReader(const std::string& file, uint64_t offset, uint64_t length)
      : in_(file, std::ios::binary), remaining_(length) {
    in_.seekg(static_cast<std::streamoff>(offset));
  }
  // Next entry, or false at the end. A damaged spill file is an error.
  Result<bool> Next(Entry* e) {
    if (pos_ == buf_.size()) {
      if (remaining_ == 0) return false;
      size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, 1 << 20));
      buf_.resize(n);
      if (!in_.read(buf_.data(), static_cast<std::streamsize>(n)))
        return Status::IoError("reading a spill file failed");
      remaining_ -= n;
      pos_ = 0;
    }
    // Entries may straddle two reads: make sure a whole one is buffered.
    while (true) {
      if (buf_.size() - pos_ >= 12) {
        uint32_t body;
        std::memcpy(&body, buf_.data() + pos_ + 8, 4);
        if (buf_.size() - pos_ >= 12 + size_t{body}) break;
      }
      if (remaining_ == 0) return Status::Corruption("a spill file ends inside an entry");
      size_t have = buf_.size() - pos_;
      size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, 1 << 20));
      std::string next(have + n, '\0');
      std::memcpy(next.data(), buf_.data() + pos_, have);
      if (!in_.read(next.data() + have, static_cast<std::streamsize>(n)))
        return Status::IoError("reading a spill file failed");
      remaining_ -= n;
      buf_ = std::move(next);
      pos_ = 0;
    }
    std::memcpy(&e->hash, buf_.data() + pos_, 8);
    const char* p = buf_.data() + pos_ + 8;
    e->row = Row::DecodeFrom(&p, buf_.data() + buf_.size());
    if (!e->row) return Status::Corruption("a spill file holds a damaged row");
    e->ts = e->row->time().millis();
    e->seq = e->row->seq();
    pos_ = static_cast<size_t>(p - buf_.data());
    return true;
  }

 private:
  std::ifstream in_;
  uint64_t remaining_;
  std::string buf_;
  size_t pos_ = 0;
};

// Runs the patterns of one keying over one sorted partition, on the same
// CEP operator a live worker runs (engine/exec/cep_operator.h), fed one key
// at a time: a key's events in order, then the key ends.
class GroupMatcher {
 public:
  GroupMatcher(const CompiledPipeline& p, int keying)
      : keying_(static_cast<uint32_t>(keying)),
        key_(p, keying),
        op_(p, state::KeyGroupRange{}, &stats_, nullptr, nullptr) {}

  // Events arrive sorted by (hash, time, position); a run of equal hashes is
  // buffered so that the (practically never seen) case of two keys sharing a
  // hash can be split by key before matching.
  void Event(const Entry& e, io::RecordBatch* out, std::vector<KeyCount>* top) {
    if (!run_.empty() && e.hash != run_.front().hash) FlushRun(out, top);
    run_.push_back(e);
  }

  void Finish(io::RecordBatch* out, std::vector<KeyCount>* top) {
    FlushRun(out, top);
    EndKey(top);
  }

  void AddStats(BacktestSummary* sum) const {
    sum->matcher.Add(stats_.matcher);
    sum->matches += stats_.matcher.matches;
    sum->timeouts += stats_.matcher.timeouts;
    sum->runs_dropped += stats_.matcher.runs_dropped;
    for (const auto& c : op_.pattern_counts()) {
      if (!c.matches && !c.timeouts) continue;
      sum->matches_per_pattern[c.name] += c.matches;
      sum->timeouts_per_pattern[c.name] += c.timeouts;
    }
  }

  io::RecordBatch TakeErrors() { return std::move(errors_); }

  static void TrimTop(std::vector<KeyCount>* top) {
    std::sort(top->begin(), top->end(), [](const KeyCount& a, const KeyCount& b) {
      if (a.matches != b.matches) return a.matches > b.matches;
      if (a.pattern != b.pattern) return a.pattern < b.pattern;
      return a.key < b.key;
    });
    if (top->size() > 10) top->resize(10);
  }

 private:
  void FlushRun(io::RecordBatch* out, std::vector<KeyCount>* top) {
    if (run_.empty()) return;
    std::string first_key(key_(*run_.front().row, &scratch_));
    bool one_key = true;
    for (const Entry& e : run_)
      if (key_(*e.row, &scratch_) != first_key) one_key = false;
    op_.RenderInto(out, &errors_);
    if (one_key) {
      // The usual case: the run is one key; its events are already in order.
      StartKey(first_key, top);
      for (const Entry& e : run_) op_.OnEvent(keying_, e.row, nullptr);
    } else {
      std::stable_sort(run_.begin(), run_.end(), [this](const Entry& a, const Entry& b) {
        std::string sa, sb;
        return key_(*a.row, &sa) < key_(*b.row, &sb);
      });
      for (const Entry& e : run_) {
        std::string_view k = key_(*e.row, &scratch_);
        if (!have_key_ || k != current_key_) StartKey(k, top);
        op_.OnEvent(keying_, e.row, nullptr);
      }
    }
    run_.clear();
  }

  void StartKey(std::string_view key, std::vector<KeyCount>* top) {
    EndKey(top);
    current_key_.assign(key);
    have_key_ = true;
  }

  // The key's input is over: every partial match ends (watermark +infinity).
  void EndKey(std::vector<KeyCount>* top) {
    if (!have_key_) return;
    op_.EndKey(keying_, current_key_, [&](const std::string& pattern, uint64_t matches) {
      top->push_back(KeyCount{pattern, current_key_, matches});
      if (top->size() > 40) TrimTop(top);
    });
    have_key_ = false;
  }

  const uint32_t keying_;
  KeyText key_;
  WorkerStats stats_;
  CepOperator op_;
  std::vector<Entry> run_;
  std::string current_key_, scratch_;
  bool have_key_ = false;
  io::RecordBatch errors_;  // STRICT skip failures, for the dead-letter output
};

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

size_t DefaultMemoryBudget() {
  long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return size_t{1} << 30;
  return static_cast<size_t>(pages) * static_cast<size_t>(page) / 4;
}

Backtester::Backtester(const CompiledPipeline& pipeline, RunOutputs outputs,
                       BacktestOptions options)
    : pipeline_(pipeline), outputs_(outputs), options_(std::move(options)) {}

Result<BacktestSummary> Backtester::Run() {
  const auto t0 = std::chrono::steady_clock::now();
  BacktestSummary summary;
  const int parallelism = std::max(1, options_.parallelism);
  const size_t nkeyings = pipeline_.keyings.size();

  // Phase 1 runs on several threads in complete mode: each reads a share of
  // every stream (io::SourceProvider::OpenShares: byte ranges of big files,
  // whole small or compressed files), and events carry positions that do not
  // depend on the split. As-live mode reads in input order on one thread:
  // its watermark must see the events in that order.
  if (!options_.sources)
    return Status::InvalidArgument("no source provider (BacktestOptions::sources)");
  const int shards = options_.as_live ? 1 : parallelism;
  std::vector<std::vector<std::unique_ptr<io::Source>>> shard_sources(static_cast<size_t>(shards));
  for (size_t st = 0; st < pipeline_.config.streams.size(); ++st) {
    const io::SourceSpec spec = StreamSourceSpec(
        pipeline_.config.streams[st],
        st < options_.files.size() ? options_.files[st] : std::vector<std::string>{});
    if (shards == 1) {
      auto source = options_.sources->Open(spec);
      if (!source.ok()) return source.status();
      shard_sources[0].push_back(std::move(source.value()));
      continue;
    }
    auto shares = options_.sources->OpenShares(spec, shards, options_.split_above);
    if (!shares.ok()) return shares.status();
    for (int t = 0; t < shards; ++t) {
      auto& share = shares.value();
      shard_sources[static_cast<size_t>(t)].push_back(static_cast<size_t>(t) < share.size()
                                                          ? std::move(share[static_cast<size_t>(t)])
                                                          : nullptr);
    }
  }
  std::vector<std::unique_ptr<EventReader>> readers;
  for (auto& sources : shard_sources) {
    ReaderOptions o;
    o.judge_lateness = options_.as_live;
    o.from = options_.from;
    o.to = options_.to;
    readers.push_back(std::make_unique<EventReader>(pipeline_, o, std::move(sources)));
    CEPHEUS_RETURN_IF_ERROR(readers.back()->Open());  // a missing file fails before anything runs
  }

  // Spill files live in a private directory that is removed at the end. It
  // holds a lock while this process lives; directories of killed backtests
  // (their lock free) are removed here, at the next start.
  const fs::path spill_base =
      options_.spill_dir.empty() ? fs::temp_directory_path() : fs::path(options_.spill_dir);
  RemoveStaleSpillDirs(spill_base);
  fs::path spill_dir;
  std::unique_ptr<state::DirLock> spill_lock;
  std::mutex spill_mu;
  auto cleanup = [&] {
    std::error_code ec;
    if (!spill_dir.empty()) fs::remove_all(spill_dir, ec);
    spill_lock.reset();
  };
  std::vector<std::string> spill_files;  // guarded by spill_mu while reading

  // ---- phase 1: read, partition, spill sorted runs past the budget ----
  std::vector<std::unique_ptr<KeyText>> key_text;
  for (size_t k = 0; k < nkeyings; ++k)
    key_text.push_back(std::make_unique<KeyText>(pipeline_, static_cast<int>(k)));
  using PartSet = std::vector<std::vector<Partition>>;  // [keying][group]
  auto new_parts = [&] {
    PartSet p(nkeyings);
    for (auto& v : p) v.resize(kGroups);
    return p;
  };
  auto spill = [&](PartSet& parts) -> Status {
    std::string path;
    int run;
    {
      std::lock_guard<std::mutex> l(spill_mu);
      if (spill_dir.empty()) {
        spill_dir = spill_base /
                    (std::string(kSpillPrefix) + std::to_string(::getpid()) + "-" +
                     std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
        auto lock = state::DirLock::Acquire(spill_dir.string());
        if (!lock.ok())
          return Status::IoError("cannot create spill directory '" + spill_dir.string() +
                                 "': " + lock.status().message());
        spill_lock = std::move(lock.value());
      }
      run = static_cast<int>(spill_files.size());
      path = (spill_dir / ("run-" + std::to_string(run))).string();
      spill_files.push_back(path);
    }
    std::ofstream out(path, std::ios::binary);
    if (!out) return Status::IoError("cannot write spill file '" + path + "'");
    uint64_t offset = 0;
    std::string buf;
    for (size_t k = 0; k < nkeyings; ++k) {
      for (int g = 0; g < kGroups; ++g) {
        Partition& part = parts[k][static_cast<size_t>(g)];
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
        part.entries.clear();
        part.entries.shrink_to_fit();
        part.arenas.clear();  // no row of them is referenced any more
      }
    }
    out.close();
    if (!out) return Status::IoError("writing spill file '" + path + "' failed (disk full?)");
    std::lock_guard<std::mutex> l(spill_mu);
    summary.spilled_bytes += offset;
    ++summary.spill_runs;
    return Status::Ok();
  };

  struct Shard {
    PartSet parts;
    Status status;
    std::atomic<uint64_t> bytes{0}, events{0};
    std::atomic<bool> done{false};
  };
  std::vector<std::unique_ptr<Shard>> shard_state;
  for (int t = 0; t < shards; ++t) {
    shard_state.push_back(std::make_unique<Shard>());
    shard_state.back()->parts = new_parts();
  }
  const size_t shard_budget =
      std::max<size_t>(1, options_.memory_budget / static_cast<size_t>(shards));
  auto read_shard = [&](int t) {
    Shard& sh = *shard_state[static_cast<size_t>(t)];
    EventReader& reader = *readers[static_cast<size_t>(t)];
    io::RecordBatch dead_out, late_out;
    std::string scratch;
    std::vector<ReadEvent> events;
    size_t buffered = 0;
    while (sh.status.ok()) {
      events.clear();
      auto turn = reader.ReadTurn(&events, &dead_out, &late_out);
      if (!turn.ok()) {
        sh.status = turn.status();
        break;
      }
      for (ReadEvent& e : events) {
        for (size_t k = 0; k < nkeyings; ++k) {
          if (pipeline_.keyings[k].stream != e.stream) continue;
          uint64_t h = StableHash((*key_text[k])(*e.row, &scratch)) & options_.hash_mask;
          int g = state::KeyGroupOf(h, kGroups);
          Partition& part = sh.parts[k][static_cast<size_t>(g)];
          buffered += e.row->ByteSize() + sizeof(Entry);
          part.entries.push_back(MakeEntry(h, e.row->CopyTo(part.arena())));
        }
      }
      if (!dead_out.empty()) {
        if (Status s = outputs_.dead_letter->Write(dead_out); !s.ok()) sh.status = s;
        dead_out.clear();
      }
      if (!late_out.empty()) {
        if (Status s = outputs_.late->Write(late_out); !s.ok()) sh.status = s;
        late_out.clear();
      }
      if (sh.status.ok() && buffered > shard_budget) {
        sh.status = spill(sh.parts);
        buffered = 0;
      }
      sh.bytes = reader.bytes_read();
      sh.events = reader.counts().events;
      if (*turn == EventReader::Turn::kEnd) break;
    }
    sh.done = true;
  };
  std::vector<std::thread> read_threads;
  for (int t = 1; t < shards; ++t) read_threads.emplace_back(read_shard, t);
  // This thread reads shard 0 and reports progress for all.
  std::atomic<bool> all_done{false};
  std::thread progress_thread;
  auto last_progress = t0;
  if (options_.on_progress) {
    progress_thread = std::thread([&] {
      uint64_t total = 0;
      for (const auto& r : readers) total += r->total_bytes();
      while (!all_done.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (Since(last_progress) < options_.progress_every || all_done.load()) continue;
        last_progress = std::chrono::steady_clock::now();
        BacktestProgress pr;
        for (const auto& sh : shard_state) {
          pr.bytes_read += sh->bytes.load();
          pr.events += sh->events.load();
        }
        pr.total_bytes = total;
        pr.seconds = Since(t0);
        options_.on_progress(pr);
      }
    });
  }
  read_shard(0);
  for (auto& th : read_threads) th.join();
  all_done = true;
  if (progress_thread.joinable()) progress_thread.join();
  Status failure;
  for (const auto& sh : shard_state)
    if (!sh->status.ok() && failure.ok()) failure = sh->status;
  if (!failure.ok()) {
    cleanup();
    return failure;
  }
  for (const auto& r : readers) {
    const ReaderCounts& c = r->counts();
    summary.streams.resize(r->stream_counts().size());
    for (size_t i = 0; i < r->stream_counts().size(); ++i) {
      summary.streams[i].records += r->stream_counts()[i].records;
      summary.streams[i].dead_letters += r->stream_counts()[i].dead_letters;
      summary.streams[i].late += r->stream_counts()[i].late;
    }
    summary.reader.records_read += c.records_read;
    summary.reader.events += c.events;
    summary.reader.dead_letters += c.dead_letters;
    summary.reader.late += c.late;
    summary.reader.out_of_range += c.out_of_range;
  }
  summary.warnings = BadInputWarnings(pipeline_.config, summary.streams);
  summary.read_seconds = Since(t0);
  // Gather the shards' partitions: one task per (keying, key group).
  PartSet parts = std::move(shard_state[0]->parts);
  for (size_t t = 1; t < shard_state.size(); ++t) {
    for (size_t k = 0; k < nkeyings; ++k) {
      for (int g = 0; g < kGroups; ++g) {
        Partition& dst = parts[k][static_cast<size_t>(g)];
        Partition& src = shard_state[t]->parts[k][static_cast<size_t>(g)];
        dst.entries.insert(dst.entries.end(), std::make_move_iterator(src.entries.begin()),
                           std::make_move_iterator(src.entries.end()));
        dst.sections.insert(dst.sections.end(), src.sections.begin(), src.sections.end());
        for (auto& a : src.arenas) dst.arenas.push_back(std::move(a));
      }
    }
  }
  shard_state.clear();

  // ---- phase 2: key groups on all workers, output committed in group order ----
  struct Task {
    int keying, group;
  };
  std::vector<Task> tasks;
  for (size_t k = 0; k < nkeyings; ++k)
    for (int g = 0; g < kGroups; ++g) {
      const Partition& part = parts[k][static_cast<size_t>(g)];
      if (!part.entries.empty() || !part.sections.empty())
        tasks.push_back(Task{static_cast<int>(k), g});
    }
  std::vector<io::RecordBatch> results(tasks.size());
  std::vector<char> ready(tasks.size(), 0);
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<size_t> next_task{0};
  std::vector<BacktestSummary> worker_sums(static_cast<size_t>(parallelism));
  std::vector<std::vector<KeyCount>> worker_top(static_cast<size_t>(parallelism));
  std::vector<Status> worker_status(static_cast<size_t>(parallelism));

  auto work = [&](int w) {
    BacktestSummary& ws = worker_sums[static_cast<size_t>(w)];
    std::vector<KeyCount>& top = worker_top[static_cast<size_t>(w)];
    while (true) {
      size_t t = next_task.fetch_add(1);
      if (t >= tasks.size()) break;
      const Task task = tasks[t];
      Partition& part = parts[static_cast<size_t>(task.keying)][static_cast<size_t>(task.group)];
      EntryLess less;
      SortEntries(part.entries);
      io::RecordBatch out;
      Status st;
      {
        GroupMatcher gm(pipeline_, task.keying);
        if (part.sections.empty()) {
          for (const Entry& e : part.entries) gm.Event(e, &out, &top);
        } else {
          // k-way merge of the in-memory run and the spilled runs.
          std::vector<std::unique_ptr<SectionReader>> readers;
          std::vector<Entry> heads;
          std::vector<char> live;
          for (const auto& sec : part.sections) {
            readers.push_back(std::make_unique<SectionReader>(
                spill_files[static_cast<size_t>(sec.run)], sec.offset, sec.length));
            heads.emplace_back();
            auto r = readers.back()->Next(&heads.back());
            if (!r.ok()) st = r.status();
            live.push_back(r.ok() && *r);
          }
          size_t mem_pos = 0;
          while (st.ok()) {
            int best = -1;
            for (size_t i = 0; i < heads.size(); ++i)
              if (live[i] && (best < 0 || less(heads[i], heads[static_cast<size_t>(best)])))
                best = static_cast<int>(i);
            bool take_mem =
                mem_pos < part.entries.size() &&
                (best < 0 || less(part.entries[mem_pos], heads[static_cast<size_t>(best)]));
            if (take_mem) {
              gm.Event(part.entries[mem_pos++], &out, &top);
            } else if (best >= 0) {
              gm.Event(heads[static_cast<size_t>(best)], &out, &top);
              auto r = readers[static_cast<size_t>(best)]->Next(&heads[static_cast<size_t>(best)]);
              if (!r.ok()) st = r.status();
              live[static_cast<size_t>(best)] = r.ok() && *r;
            } else {
              break;
            }
          }
        }
        gm.Finish(&out, &top);
        gm.AddStats(&ws);
        if (io::RecordBatch errors = gm.TakeErrors(); !errors.empty()) {
          Status s = outputs_.dead_letter->Write(errors);
          if (!s.ok() && st.ok()) st = s;
        }
      }  // the matcher (and its match buffer) is gone: rows may be freed
      part.entries.clear();
      part.entries.shrink_to_fit();
      part.arenas.clear();  // every key ended: no run holds a row any more
      if (!st.ok() && worker_status[static_cast<size_t>(w)].ok())
        worker_status[static_cast<size_t>(w)] = st;
      std::lock_guard<std::mutex> l(mu);
      results[t] = std::move(out);
      ready[t] = 1;
      cv.notify_all();
    }
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < parallelism; ++w) threads.emplace_back(work, w);
  // Commit results in task order as they become ready.
  Status write_status;
  for (size_t t = 0; t < tasks.size(); ++t) {
    io::RecordBatch chunk;
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return ready[t] != 0; });
      chunk = std::move(results[t]);
    }
    if (write_status.ok() && !chunk.empty()) write_status = outputs_.matches->Write(chunk);
    if (options_.on_progress && Since(last_progress) >= options_.progress_every) {
      last_progress = std::chrono::steady_clock::now();
      BacktestProgress pr;
      pr.phase = "match";
      pr.events = summary.reader.events;
      pr.groups_done = t + 1;
      pr.groups_total = tasks.size();
      pr.seconds = Since(t0);
      options_.on_progress(pr);
    }
  }
  for (auto& th : threads) th.join();
  cleanup();
  for (const Status& s : worker_status)
    if (!s.ok()) return s;
  if (!write_status.ok()) return write_status;
  std::vector<KeyCount> top;
  for (int w = 0; w < parallelism; ++w) {
    const BacktestSummary& ws = worker_sums[static_cast<size_t>(w)];
    summary.matches += ws.matches;
    summary.timeouts += ws.timeouts;
    summary.runs_dropped += ws.runs_dropped;
    summary.matcher.Add(ws.matcher);
    for (const auto& [p, n] : ws.matches_per_pattern) summary.matches_per_pattern[p] += n;
    for (const auto& [p, n] : ws.timeouts_per_pattern) summary.timeouts_per_pattern[p] += n;
    top.insert(top.end(), worker_top[static_cast<size_t>(w)].begin(),
               worker_top[static_cast<size_t>(w)].end());
  }
  GroupMatcher::TrimTop(&top);
  summary.top_keys = std::move(top);
  for (io::Sink* o : {outputs_.matches, outputs_.late, outputs_.dead_letter})
    if (o) CEPHEUS_RETURN_IF_ERROR(o->Flush());
  summary.seconds = Since(t0);
  return summary;
}

std::string BacktestSummary::ToJson() const {
  std::string out;
  JsonObject o(out);
  o.Int("records_read", static_cast<int64_t>(reader.records_read));
  o.Int("events", static_cast<int64_t>(reader.events));
  o.Int("out_of_range", static_cast<int64_t>(reader.out_of_range));
  o.Int("late", static_cast<int64_t>(reader.late));
  o.Int("dead_letters", static_cast<int64_t>(reader.dead_letters));
  o.Int("matches", static_cast<int64_t>(matches));
  o.Int("timeouts", static_cast<int64_t>(timeouts));
  o.Int("runs_dropped", static_cast<int64_t>(runs_dropped));
  o.Int("held_matches", static_cast<int64_t>(matcher.held_matches));
  o.Int("held_match_max_wait_ms", matcher.held_wait_ms_max);
  for (const char* which : {"matches_per_pattern", "timeouts_per_pattern"}) {
    o.Key(which);
    JsonObject m(out);
    for (const auto& [p, n] :
         std::string(which) == "matches_per_pattern" ? matches_per_pattern : timeouts_per_pattern)
      m.Int(p, static_cast<int64_t>(n));
    m.End();
  }
  o.Key("top_keys");
  out.push_back('[');
  for (size_t i = 0; i < top_keys.size(); ++i) {
    if (i) out.push_back(',');
    JsonObject k(out);
    k.String("pattern", top_keys[i].pattern);
    k.String("key", top_keys[i].key);
    k.Int("matches", static_cast<int64_t>(top_keys[i].matches));
    k.End();
  }
  out.push_back(']');
  o.Key("warnings");
  out.push_back('[');
  for (size_t i = 0; i < warnings.size(); ++i) {
    if (i) out.push_back(',');
    AppendJsonString(out, warnings[i]);
  }
  out.push_back(']');
  o.Int("spill_runs", spill_runs);
  o.Int("spilled_bytes", static_cast<int64_t>(spilled_bytes));
  o.Key("seconds");
  AppendJsonDouble(out, seconds);
  o.Key("read_seconds");
  AppendJsonDouble(out, read_seconds);
  o.Key("events_per_second");
  AppendJsonDouble(out, seconds > 0 ? static_cast<double>(reader.events) / seconds : 0);
  o.End();
  return out;
}

}  // namespace cepheus::engine
