#include "engine/batch/backtest.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/hash.h"
#include "common/json.h"
#include "engine/batch/group_matcher.h"
#include "engine/batch/partition.h"
#include "engine/batch/spill.h"
#include "engine/format/format.h"
#include "state/key_groups.h"

namespace cepheus::engine {
namespace {

using batch::Entry;
using batch::EntryLess;
using batch::GroupMatcher;
using batch::kGroups;
using batch::PartSet;

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One backtest: phase 1 reads every input (several shares in parallel in
// complete mode), partitions events by (keying, key group) and spills sorted
// runs past the memory budget; phase 2 matches the partitions on all workers
// and writes their output in partition order (so the bytes do not depend on
// the parallelism or the budget).
class BacktestJob {
 public:
  BacktestJob(const CompiledPipeline& pipeline, const RunOutputs& outputs,
              const BacktestOptions& options)
      : pipeline_(pipeline),
        outputs_(outputs),
        options_(options),
        parallelism_(std::max(1, options.parallelism)),
        // As-live mode reads in input order on one thread: its watermark must
        // see the events in that order.
        shards_(options.as_live ? 1 : parallelism_),
        t0_(std::chrono::steady_clock::now()),
        last_progress_(t0_) {}

  Result<BacktestSummary> Run() {
    if (!options_.sources)
      return Status::InvalidArgument("no source provider (BacktestOptions::sources)");
    CEPHEUS_RETURN_IF_ERROR(OpenReaders());
    spill_ = std::make_unique<batch::SpillStore>(options_.spill_dir);
    CEPHEUS_RETURN_IF_ERROR(ReadAll());
    CEPHEUS_RETURN_IF_ERROR(MatchAll());
    summary_.spilled_bytes = spill_->spilled_bytes();
    summary_.spill_runs = spill_->runs();
    spill_.reset();  // removes the spill files
    for (io::Sink* o : {outputs_.matches, outputs_.late, outputs_.dead_letter})
      if (o) CEPHEUS_RETURN_IF_ERROR(o->Flush());
    summary_.seconds = Since(t0_);
    return std::move(summary_);
  }

 private:
  // What one reading thread fills.
  struct Shard {
    PartSet parts;
    Status status;
    std::atomic<uint64_t> bytes{0}, events{0};
  };
  // Phase 2's unit of work: one partition.
  struct Task {
    int keying, group;
  };
  // A matching thread's share of the results.
  struct WorkerResult {
    BacktestSummary sums;
    std::vector<KeyCount> top;
    Status status;
  };

  // Each shard reads a share of every stream (io::SourceProvider::OpenShares:
  // byte ranges of big files, whole small or compressed files); events carry
  // positions that do not depend on the split.
  Status OpenReaders() {
    std::vector<std::vector<std::unique_ptr<io::Source>>> shard_sources(
        static_cast<size_t>(shards_));
    for (size_t st = 0; st < pipeline_.config.streams.size(); ++st) {
      io::SourceSpec spec = StreamSourceSpec(
          pipeline_.config.streams[st],
          st < options_.files.size() ? options_.files[st] : std::vector<std::string>{});
      if (spec.kind == io::SourceKind::kKafka) {
        // A topic is read as history: the time range, or up to its end now.
        spec.kafka.batch = true;
        spec.kafka.from_ms = options_.from ? options_.from->millis() : -1;
        spec.kafka.until_ms = options_.to ? options_.to->millis() : -1;
      }
      if (shards_ == 1) {
        auto source = options_.sources->Open(spec);
        if (!source.ok()) return source.status();
        shard_sources[0].push_back(std::move(source.value()));
        continue;
      }
      auto shares = options_.sources->OpenShares(spec, shards_, options_.split_above);
      if (!shares.ok()) return shares.status();
      auto& share = shares.value();
      for (size_t t = 0; t < static_cast<size_t>(shards_); ++t)
        shard_sources[t].push_back(t < share.size() ? std::move(share[t]) : nullptr);
    }
    for (auto& sources : shard_sources) {
      ReaderOptions o;
      o.judge_lateness = options_.as_live;
      o.from = options_.from;
      o.to = options_.to;
      readers_.push_back(std::make_unique<EventReader>(pipeline_, o, std::move(sources)));
      CEPHEUS_RETURN_IF_ERROR(readers_.back()->Open());  // a missing file fails first
    }
    return Status::Ok();
  }

  // ---- phase 1: read, partition, spill sorted runs past the budget ----
  Status ReadAll() {
    for (size_t k = 0; k < pipeline_.keyings.size(); ++k)
      key_text_.emplace_back(pipeline_, static_cast<int>(k));
    for (int t = 0; t < shards_; ++t) {
      shards_state_.push_back(std::make_unique<Shard>());
      shards_state_.back()->parts = batch::NewPartSet(pipeline_.keyings.size());
    }
    std::vector<std::thread> threads;
    for (int t = 1; t < shards_; ++t) threads.emplace_back([this, t] { ReadShard(t); });
    // This thread reads shard 0; another reports progress for all.
    std::atomic<bool> done{false};
    std::thread progress;
    if (options_.on_progress) progress = std::thread([this, &done] { ReportReading(done); });
    ReadShard(0);
    for (auto& th : threads) th.join();
    done = true;
    if (progress.joinable()) progress.join();
    for (const auto& sh : shards_state_) CEPHEUS_RETURN_IF_ERROR(sh->status);
    CountReads();
    summary_.read_seconds = Since(t0_);
    // Gather the shards' partitions.
    parts_ = std::move(shards_state_[0]->parts);
    for (size_t t = 1; t < shards_state_.size(); ++t)
      batch::MergeParts(shards_state_[t]->parts, &parts_);
    shards_state_.clear();
    return Status::Ok();
  }

  void ReadShard(int t) {
    Shard& sh = *shards_state_[static_cast<size_t>(t)];
    EventReader& reader = *readers_[static_cast<size_t>(t)];
    const size_t budget =
        std::max<size_t>(1, options_.memory_budget / static_cast<size_t>(shards_));
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
      for (ReadEvent& e : events) buffered += AddToPartitions(sh, e, &scratch);
      for (auto [out, records] :
           {std::pair{outputs_.dead_letter, &dead_out}, std::pair{outputs_.late, &late_out}}) {
        if (records->empty()) continue;
        if (Status s = out->Write(*records); !s.ok() && sh.status.ok()) sh.status = s;
        records->clear();
      }
      if (sh.status.ok() && buffered > budget) {
        sh.status = spill_->WriteRun(sh.parts);
        buffered = 0;
      }
      sh.bytes = reader.bytes_read();
      sh.events = reader.counts().events;
      if (*turn == EventReader::Turn::kEnd) break;
    }
  }

  // Adds an event to the partition of every keying of its stream; returns
  // the bytes it now takes.
  size_t AddToPartitions(Shard& sh, ReadEvent& e, std::string* scratch) {
    size_t bytes = 0;
    for (size_t k = 0; k < pipeline_.keyings.size(); ++k) {
      if (pipeline_.keyings[k].stream != e.stream) continue;
      const uint64_t h = StableHash(key_text_[k](*e.row, scratch)) & options_.hash_mask;
      batch::Partition& part = sh.parts[k][static_cast<size_t>(state::KeyGroupOf(h, kGroups))];
      bytes += e.row->ByteSize() + sizeof(Entry);
      part.entries.push_back(batch::MakeEntry(h, e.row->CopyTo(part.arena())));
    }
    return bytes;
  }

  void ReportReading(const std::atomic<bool>& done) {
    uint64_t total = 0;
    for (const auto& r : readers_) total += r->total_bytes();
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (Since(last_progress_) < options_.progress_every || done.load()) continue;
      last_progress_ = std::chrono::steady_clock::now();
      BacktestProgress pr;
      for (const auto& sh : shards_state_) {
        pr.bytes_read += sh->bytes.load();
        pr.events += sh->events.load();
      }
      pr.total_bytes = total;
      pr.seconds = Since(t0_);
      options_.on_progress(pr);
    }
  }

  void CountReads() {
    for (const auto& r : readers_) {
      const ReaderCounts& c = r->counts();
      summary_.streams.resize(r->stream_counts().size());
      for (size_t i = 0; i < r->stream_counts().size(); ++i) {
        summary_.streams[i].records += r->stream_counts()[i].records;
        summary_.streams[i].dead_letters += r->stream_counts()[i].dead_letters;
        summary_.streams[i].late += r->stream_counts()[i].late;
      }
      summary_.reader.records_read += c.records_read;
      summary_.reader.events += c.events;
      summary_.reader.dead_letters += c.dead_letters;
      summary_.reader.late += c.late;
      summary_.reader.out_of_range += c.out_of_range;
    }
    summary_.warnings = BadInputWarnings(pipeline_.config, summary_.streams);
  }

  // ---- phase 2: partitions on all workers, output written in task order ----
  Status MatchAll() {
    for (size_t k = 0; k < parts_.size(); ++k)
      for (int g = 0; g < kGroups; ++g)
        if (!parts_[k][static_cast<size_t>(g)].empty())
          tasks_.push_back(Task{static_cast<int>(k), g});
    results_.resize(tasks_.size());
    ready_.assign(tasks_.size(), 0);
    std::vector<WorkerResult> workers(static_cast<size_t>(parallelism_));
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back([this, &w] { MatchTasks(&w); });
    const Status write_status = WriteInOrder();
    for (auto& th : threads) th.join();
    for (const WorkerResult& w : workers) CEPHEUS_RETURN_IF_ERROR(w.status);
    CEPHEUS_RETURN_IF_ERROR(write_status);
    std::vector<KeyCount> top;
    for (const WorkerResult& w : workers) {
      AddSums(w.sums);
      top.insert(top.end(), w.top.begin(), w.top.end());
    }
    GroupMatcher::TrimTop(&top);
    summary_.top_keys = std::move(top);
    return Status::Ok();
  }

  void MatchTasks(WorkerResult* w) {
    while (true) {
      const size_t t = next_task_.fetch_add(1);
      if (t >= tasks_.size()) break;
      io::RecordBatch out;
      Status st = MatchTask(tasks_[t], &out, w);
      if (!st.ok() && w->status.ok()) w->status = st;
      std::lock_guard<std::mutex> l(mu_);
      results_[t] = std::move(out);
      ready_[t] = 1;
      cv_.notify_all();
    }
  }

  Status MatchTask(const Task& task, io::RecordBatch* out, WorkerResult* w) {
    batch::Partition& part =
        parts_[static_cast<size_t>(task.keying)][static_cast<size_t>(task.group)];
    batch::SortEntries(part.entries);
    Status st;
    {
      GroupMatcher gm(pipeline_, task.keying);
      if (part.sections.empty()) {
        for (const Entry& e : part.entries) gm.Event(e, out, &w->top);
      } else {
        st = MergeSpilled(part, [&](const Entry& e) { gm.Event(e, out, &w->top); });
      }
      gm.Finish(out, &w->top);
      gm.AddStats(&w->sums);
      if (io::RecordBatch errors = gm.TakeErrors(); !errors.empty()) {
        Status s = outputs_.dead_letter->Write(errors);
        if (!s.ok() && st.ok()) st = s;
      }
    }                // the matcher (and its match buffer) is gone: rows may be freed
    part.Release();  // every key ended: no run holds a row any more
    return st;
  }

  // A k-way merge of the partition's in-memory run and its spilled runs,
  // in EntryLess order.
  template <typename Visit>
  Status MergeSpilled(const batch::Partition& part, Visit&& visit) {
    EntryLess less;
    std::vector<std::unique_ptr<batch::SectionReader>> readers;
    std::vector<Entry> heads;
    std::vector<char> live;
    for (const auto& sec : part.sections) {
      readers.push_back(
          std::make_unique<batch::SectionReader>(spill_->file(sec.run), sec.offset, sec.length));
      heads.emplace_back();
      auto r = readers.back()->Next(&heads.back());
      if (!r.ok()) return r.status();
      live.push_back(*r);
    }
    size_t mem_pos = 0;
    while (true) {
      int best = -1;
      for (size_t i = 0; i < heads.size(); ++i)
        if (live[i] && (best < 0 || less(heads[i], heads[static_cast<size_t>(best)])))
          best = static_cast<int>(i);
      if (mem_pos < part.entries.size() &&
          (best < 0 || less(part.entries[mem_pos], heads[static_cast<size_t>(best)]))) {
        visit(part.entries[mem_pos++]);
        continue;
      }
      if (best < 0) return Status::Ok();
      const size_t b = static_cast<size_t>(best);
      visit(heads[b]);
      auto r = readers[b]->Next(&heads[b]);
      if (!r.ok()) return r.status();
      live[b] = *r;
    }
  }

  // Hands the tasks' results to the matches output in task order, as they
  // become ready; the first write error is returned (later results are
  // still waited for, so that no worker blocks).
  Status WriteInOrder() {
    Status status;
    for (size_t t = 0; t < tasks_.size(); ++t) {
      io::RecordBatch chunk;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return ready_[t] != 0; });
        chunk = std::move(results_[t]);
      }
      if (status.ok() && !chunk.empty()) status = outputs_.matches->Write(chunk);
      if (options_.on_progress && Since(last_progress_) >= options_.progress_every) {
        last_progress_ = std::chrono::steady_clock::now();
        BacktestProgress pr;
        pr.phase = "match";
        pr.events = summary_.reader.events;
        pr.groups_done = t + 1;
        pr.groups_total = tasks_.size();
        pr.seconds = Since(t0_);
        options_.on_progress(pr);
      }
    }
    return status;
  }

  void AddSums(const BacktestSummary& ws) {
    summary_.matches += ws.matches;
    summary_.timeouts += ws.timeouts;
    summary_.runs_dropped += ws.runs_dropped;
    summary_.matcher.Add(ws.matcher);
    for (const auto& [p, n] : ws.matches_per_pattern) summary_.matches_per_pattern[p] += n;
    for (const auto& [p, n] : ws.timeouts_per_pattern) summary_.timeouts_per_pattern[p] += n;
  }

  const CompiledPipeline& pipeline_;
  const RunOutputs& outputs_;
  const BacktestOptions& options_;
  const int parallelism_, shards_;
  const std::chrono::steady_clock::time_point t0_;
  std::chrono::steady_clock::time_point last_progress_;
  BacktestSummary summary_;
  std::vector<std::unique_ptr<EventReader>> readers_;
  std::vector<batch::KeyText> key_text_;
  std::unique_ptr<batch::SpillStore> spill_;
  std::vector<std::unique_ptr<Shard>> shards_state_;
  PartSet parts_;
  // Phase 2: tasks handed out by an atomic counter; results written in order.
  std::vector<Task> tasks_;
  std::atomic<size_t> next_task_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<io::RecordBatch> results_;  // guarded by mu_
  std::vector<char> ready_;               // guarded by mu_
};

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
  return BacktestJob(pipeline_, outputs_, options_).Run();
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
