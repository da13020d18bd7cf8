#include "engine/exec/worker.h"

#include <absl/container/node_hash_map.h>

#include <spdlog/spdlog.h>

#include <pthread.h>

#include <algorithm>

#include "common/hash.h"
#include "common/varint.h"
#include "engine/format/format.h"
#include "state/key_groups.h"

namespace cepheus::engine {

namespace {
// Backend namespaces: pending (not yet watermarked) events, and per pattern
// its key matchers and their timers (docs/formats.md "Worker state").
constexpr std::string_view kBufferNs = "b";
std::string MatcherNs(const std::string& pattern) { return "m/" + pattern; }
std::string TimerNs(const std::string& pattern) { return "t/" + pattern; }

// Timer entry key: the deadline as 8 bytes that sort like the signed value
// (big-endian, sign bit flipped), then the partition key.
std::string TimerKey(EventTime at, std::string_view key) {
  std::string out;
  out.reserve(8 + key.size());
  PutFixed64BE(&out, static_cast<uint64_t>(at.millis()) ^ (uint64_t{1} << 63));
  out.append(key);
  return out;
}

bool DecodeTimerKey(std::string_view k, EventTime* at, std::string_view* key) {
  uint64_t u;
  if (!GetFixed64BE(&k, &u)) return false;
  *at = EventTime::FromMillis(static_cast<int64_t>(u ^ (uint64_t{1} << 63)));
  *key = k;
  return true;
}
}  // namespace

Status Worker::DropPatternState(state::StateBackend* backend, const std::string& pattern) {
  for (int g = 0; g < state::kDefaultKeyGroups; ++g) {
    CEPHEUS_RETURN_IF_ERROR(backend->DeleteNamespace(g, MatcherNs(pattern)));
    CEPHEUS_RETURN_IF_ERROR(backend->DeleteNamespace(g, TimerNs(pattern)));
  }
  return Status::Ok();
}

struct Worker::KeyMap : absl::node_hash_map<std::string, KeyEntry> {};

Worker::Worker(const CompiledPipeline& pipeline, state::KeyGroupRange groups, io::Sink* matches,
               io::Sink* errors)
    : pipeline_(pipeline),
      groups_(groups),
      matches_(matches),
      errors_out_(errors ? errors : matches) {
  patterns_.resize(pipeline.patterns.size());
  for (PatternState& ps : patterns_) ps.keys = std::make_unique<KeyMap>();
  keying_patterns_.resize(pipeline.keyings.size());
  for (size_t k = 0; k < pipeline.keyings.size(); ++k) {
    for (int pi : pipeline.keyings[k].patterns) {
      PatternState& ps = patterns_[static_cast<size_t>(pi)];
      ps.pattern = pipeline.patterns[static_cast<size_t>(pi)].get();
      ps.keying = &pipeline.keyings[k];
      ps.ns = MatcherNs(ps.pattern->name);
      ps.timer_ns = TimerNs(ps.pattern->name);
      ps.group_cold_min.assign(state::kDefaultKeyGroups, EventTime::Max());
      keying_patterns_[k].push_back(pi);
    }
  }
  for (PatternState& ps : patterns_) {
    ps.env.pattern = ps.pattern;
    ps.env.pool = &pool_;
    ps.env.stats = &stats_.matcher;
    ps.env.max_runs_per_key = pipeline.config.max_runs_per_key;
    ps.env.report_timeouts = ps.pattern->has_timeout_emit;
    ps.renderer = std::make_unique<MatchRenderer>(*ps.pattern);
    PatternState* self = &ps;
    ps.env.emit = [this, self](const MatchResult& m) {
      self->renderer->RenderTo(self->current_key_view, m, &out_, &errors_);
    };
    ps.env.on_runs_dropped = [self](size_t dropped) {
      // Logged once per key and event, so a hot key cannot flood the log silently:
      // the counter has the total.
      static thread_local uint64_t logged = 0;
      if (logged++ % 1000 == 0)
        spdlog::warn(
            "pattern {}: key '{}' exceeded max_runs_per_key; dropped {} new partial matches",
            self->pattern->name, self->current_key_view, dropped);
    };
  }
}

Worker::~Worker() {
  if (thread_.joinable()) {
    EventBatch stop;
    stop.stop = true;
    queue_.Push(std::move(stop));
    thread_.join();
  }
  for (PatternState& ps : patterns_)
    for (auto& [k, e] : *ps.keys) e.matcher.Clear(ps.env);
}

void Worker::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::Loop() {
  while (true) {
    EventBatch b = queue_.Pop();
    if (b.stop) break;
    OnBatch(b);
    if (b.watermark.is_max()) break;
  }
}

void Worker::OnBatch(EventBatch& batch) {
  const size_t mid = buffer_.size();
  for (RoutedEvent& e : batch.events) buffer_.push_back(Pending{std::move(e.row), e.keying});
  auto batch_begin = buffer_.begin() + static_cast<std::ptrdiff_t>(mid);
  if (!std::is_sorted(batch_begin, buffer_.end())) std::sort(batch_begin, buffer_.end());
  if (mid > head_ && batch_begin != buffer_.end() && *batch_begin < buffer_[mid - 1])
    std::inplace_merge(buffer_.begin() + static_cast<std::ptrdiff_t>(head_), batch_begin,
                       buffer_.end());
  stats_.peak_buffered = std::max<uint64_t>(stats_.peak_buffered, buffer_.size() - head_);
  if (batch.watermark > watermark_) watermark_ = batch.watermark;
  const EventTime wm = watermark_.time();
  while (head_ < buffer_.size() && buffer_[head_].row->time() <= wm) {
    // Two events ahead: the hash slot; one event ahead: the key's node and runs.
    if (head_ + 2 < buffer_.size()) PrefetchKey(buffer_[head_ + 2], false);
    // Hints are only taken for events processed in this loop: between batches
    // SweepIdleKeys may erase nodes.
    if (head_ + 1 < buffer_.size() && buffer_[head_ + 1].row->time() <= wm)
      PrefetchKey(buffer_[head_ + 1], true);
    ProcessEvent(buffer_[head_]);
    buffer_[head_].row = RowPtr();
    ++head_;
  }
  if (head_ == buffer_.size()) {
    buffer_.clear();
    head_ = 0;
  } else if (head_ > 4096 && head_ * 2 > buffer_.size()) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  FireTimers(wm);
  // Keys with nothing in flight are forgotten in periodic sweeps rather than
  // at once: a busy key would otherwise be dropped and re-created per event.
  if (events_since_sweep_ >= kSweepEvery) SweepIdleKeys();
  if (state_.cache_keys && cached_keys_ > state_.cache_keys) EvictColdKeys();
  if (run_budget_ && stats_.matcher.live_runs > static_cast<int64_t>(run_budget_)) CutOldestRuns();
  stats_.peak_live_runs = std::max(stats_.peak_live_runs, stats_.matcher.live_runs);
  PublishMetrics();  // before the output: a scraped count covers what was written
  FlushOutput();
  ++batch_no_;
  if (batch.barrier) {
    // Everything before the barrier is processed and its output handed to
    // the sinks: write the state back, then wait while the snapshot is taken.
    Status s = status_;
    if (s.ok() && state_.backend) s = WriteBackAll();
    batch.barrier->Arrive(s);
    batch.barrier->WaitReleased();
  }
}

void Worker::AttachState(const WorkerStateOptions& options) {
  state_ = options;
  buffer_groups_.assign(state::kDefaultKeyGroups, false);
}

int Worker::GroupOf(std::string_view key) const {
  return state::KeyGroupOf(StableHash(key), state::kDefaultKeyGroups);
}

Status Worker::Restore(const RestoreMapping& mapping) {
  if (!state_.backend) return Status::Internal("restore without a state backend");
  const int begin = groups_.begin, end = groups_.end;
  Status bad;
  for (int g = begin; g < end; ++g) {
    // Pending events are read back; keys and their timers stay in the
    // backend (a key loads when an event or its timer needs it).
    CEPHEUS_RETURN_IF_ERROR(state_.backend->ScanNamespace(
        g, kBufferNs, "", [&](std::string_view key, std::string_view value) {
          buffer_groups_[static_cast<size_t>(g)] = true;
          std::string_view k = key.substr(std::min<size_t>(8, key.size()));
          uint64_t old_keying;
          const char* p = value.data();
          if (key.size() < 8 || !GetVarint(&k, &old_keying)) {
            bad = Status::Corruption("damaged pending event in key group " + std::to_string(g));
            return false;
          }
          if (old_keying >= mapping.keyings.size() || mapping.keyings[old_keying] < 0) return true;
          RowPtr row = Row::DecodeFrom(&p, value.data() + value.size());
          if (!row) {
            bad = Status::Corruption("damaged pending event in key group " + std::to_string(g));
            return false;
          }
          buffer_.push_back(
              Pending{std::move(row), static_cast<uint32_t>(mapping.keyings[old_keying])});
          return true;
        }));
    CEPHEUS_RETURN_IF_ERROR(bad);
    for (PatternState& ps : patterns_) {
      if (!mapping.timers_in_state) {
        // A checkpoint from before timers were kept in the state: write a
        // timer entry for every stored key from its deadline prefix.
        CEPHEUS_RETURN_IF_ERROR(state_.backend->ScanNamespace(
            g, ps.ns, "", [&](std::string_view key, std::string_view value) {
              int64_t deadline;
              if (!GetSigned(&value, &deadline)) {
                bad = Status::Corruption("damaged state of pattern " + ps.pattern->name);
                return false;
              }
              if (deadline != EventTime::Max().millis())
                writes_.Put(g, ps.timer_ns, TimerKey(EventTime::FromMillis(deadline), key), "");
              if (writes_.bytes() >= kMaxBatchBytes) FlushWrites();
              return true;
            }));
        CEPHEUS_RETURN_IF_ERROR(bad);
        FlushWrites();
      }
      CEPHEUS_RETURN_IF_ERROR(state_.backend->ScanNamespace(
          g, ps.timer_ns, "", [&](std::string_view k, std::string_view) {
            EventTime at;
            std::string_view key;
            if (DecodeTimerKey(k, &at, &key)) {
              ps.group_cold_min[static_cast<size_t>(g)] = at;
              ps.cold_min = std::min(ps.cold_min, at);
            }
            return false;  // the first entry is the earliest
          }));
    }
  }
  CEPHEUS_RETURN_IF_ERROR(status_);
  std::sort(buffer_.begin(), buffer_.end());
  head_ = 0;
  watermark_ = mapping.watermark;
  lookup_backend_ = true;
  return Status::Ok();
}

Worker::KeyNode* Worker::FindOrLoad(PatternState& ps, std::string_view key) {
  auto it = ps.keys->find(absl::string_view(key.data(), key.size()));
  if (it != ps.keys->end()) return &*it;
  KeyEntry entry;
  if (lookup_backend_) {
    auto got = state_.backend->Get(GroupOf(key), ps.ns, key);
    if (!got.ok()) {
      Fail(got.status());
    } else if (got->has_value()) {
      std::string_view v = **got;
      int64_t deadline = EventTime::Max().millis();
      auto m = GetSigned(&v, &deadline) ? KeyMatcher::Deserialize(ps.env, v)
                                        : Result<KeyMatcher>(Status::Corruption("no deadline"));
      if (!m.ok()) {
        Fail(Status::Corruption("state of key '" + std::string(key) + "' of pattern " +
                                ps.pattern->name + ": " + m.status().message()));
      } else {
        entry.matcher = std::move(m.value());
        entry.stored = true;
        entry.stored_timer = EventTime::FromMillis(deadline);
        ++stats_.keys_loaded;
      }
    }
  }
  entry.last_used = batch_no_;
  stats_.peak_cached_keys = std::max<uint64_t>(stats_.peak_cached_keys, ++cached_keys_);
  auto* node = &*ps.keys->emplace(std::string(key), std::move(entry)).first;
  if (!node->second.matcher.Idle()) Schedule(ps, *node);
  return node;
}

void Worker::WriteBack(PatternState& ps, const std::string& key, KeyEntry& e) {
  if (!e.dirty || !state_.backend) return;
  e.dirty = false;
  if (e.matcher.Idle()) {
    if (e.stored) writes_.Delete(GroupOf(key), ps.ns, key);
    e.stored = false;
    StoreTimer(ps, key, e, EventTime::Max());
  } else {
    const EventTime d = e.matcher.NextDeadline(ps.env);
    value_scratch_.clear();
    PutSigned(&value_scratch_, d.millis());
    e.matcher.Serialize(ps.env, &value_scratch_);
    writes_.Put(GroupOf(key), ps.ns, key, value_scratch_);
    e.stored = true;
    StoreTimer(ps, key, e, d);
  }
  if (writes_.bytes() >= kMaxBatchBytes) FlushWrites();
}

void Worker::StoreTimer(PatternState& ps, const std::string& key, KeyEntry& e, EventTime d) {
  if (e.stored_timer == d) return;
  const int g = GroupOf(key);
  if (e.stored_timer != EventTime::Max())
    writes_.Delete(g, ps.timer_ns, TimerKey(e.stored_timer, key));
  if (d != EventTime::Max()) {
    writes_.Put(g, ps.timer_ns, TimerKey(d, key), "");
    EventTime& group_min = ps.group_cold_min[static_cast<size_t>(g)];
    group_min = std::min(group_min, d);
    ps.cold_min = std::min(ps.cold_min, d);
  }
  e.stored_timer = d;
}

void Worker::FlushWrites() {
  if (writes_.count() == 0) return;
  Status s = state_.backend->Write(writes_);
  if (!s.ok()) Fail(s);
}

Status Worker::WriteBackAll() {
  for (PatternState& ps : patterns_)
    for (auto& [key, e] : *ps.keys) WriteBack(ps, key, e);
  FlushWrites();
  // Pending events: the backend holds exactly those of this checkpoint.
  for (size_t g = 0; g < buffer_groups_.size(); ++g) {
    if (!buffer_groups_[g]) continue;
    CEPHEUS_RETURN_IF_ERROR(state_.backend->DeleteNamespace(static_cast<int>(g), kBufferNs));
    buffer_groups_[g] = false;
  }
  std::string key, value;
  for (size_t i = head_; i < buffer_.size(); ++i) {
    const Pending& p = buffer_[i];
    const Keying& keying = pipeline_.keyings[p.keying];
    const Schema& schema = pipeline_.config.streams[static_cast<size_t>(keying.stream)].schema;
    const int g = GroupOf(KeyView(*p.row, keying.fields, schema, &key_scratch_));
    key.clear();
    PutFixed64BE(&key, p.row->seq());
    PutVarint(&key, p.keying);
    value.clear();
    p.row->AppendEncoded(&value);
    writes_.Put(g, kBufferNs, key, value);
    if (writes_.bytes() >= kMaxBatchBytes) FlushWrites();
    buffer_groups_[static_cast<size_t>(g)] = true;
  }
  FlushWrites();
  return status_;
}

void Worker::EvictColdKeys() {
  struct Candidate {
    uint64_t last_used;
    PatternState* ps;
    KeyNode* node;
  };
  std::vector<Candidate> all;
  all.reserve(cached_keys_);
  for (PatternState& ps : patterns_)
    for (auto& kv : *ps.keys) all.push_back(Candidate{kv.second.last_used, &ps, &kv});
  const size_t target = state_.cache_keys - state_.cache_keys / 10;
  if (all.size() <= target) return;
  const size_t n = all.size() - target;
  std::nth_element(
      all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(),
      [](const Candidate& a, const Candidate& b) { return a.last_used < b.last_used; });
  for (size_t i = 0; i < n; ++i) {
    PatternState& ps = *all[i].ps;
    KeyEntry& e = all[i].node->second;
    const std::string key = all[i].node->first;
    WriteBack(ps, key, e);  // with its timer entry, if it has a deadline
    e.matcher.Clear(ps.env);
    ps.keys->erase(key);
    --cached_keys_;
    ++stats_.keys_evicted;
  }
  FlushWrites();  // before any read: a key may be loaded again in the next batch
  lookup_backend_ = true;
  for (PatternState& ps : patterns_) RebuildTimers(ps);
}

void Worker::EndStoredKeys(PatternState& ps) {
  const int begin = groups_.begin, end = groups_.end;
  for (int g = begin; g < end; ++g) {
    std::vector<std::string> keys;
    Status s =
        state_.backend->ScanNamespace(g, ps.ns, "", [&](std::string_view key, std::string_view) {
          if (ps.keys->find(absl::string_view(key.data(), key.size())) == ps.keys->end())
            keys.emplace_back(key);
          return true;
        });
    if (!s.ok()) Fail(s);
    for (const std::string& k : keys) {
      KeyNode* node = FindOrLoad(ps, k);
      ps.current_key_view = node->first;
      node->second.matcher.AdvanceTime(ps.env, EventTime::Max());
      node->second.matcher.Clear(ps.env);
      ps.keys->erase(k);
      --cached_keys_;
      FlushOutput();
    }
  }
}

void Worker::Schedule(PatternState& ps, KeyNode& key) {
  KeyEntry& e = key.second;
  EventTime d = e.matcher.NextDeadline(ps.env);
  if (d != EventTime::Max() && d < e.scheduled) {
    e.scheduled = d;
    ps.timers.Push(d, &key);
  }
}

void Worker::PrefetchKey(Pending& p, bool resolve) {
  const auto& pats = keying_patterns_[p.keying];
  if (pats.empty()) return;
  const Keying& keying = pipeline_.keyings[p.keying];
  const Schema& schema = pipeline_.config.streams[static_cast<size_t>(keying.stream)].schema;
  std::string_view key = KeyView(*p.row, keying.fields, schema, &prefetch_scratch_);
  PatternState& ps = patterns_[static_cast<size_t>(pats[0])];
  absl::string_view k(key.data(), key.size());
  if (!resolve) {
    ps.keys->prefetch(k);
    return;
  }
  auto it = ps.keys->find(k);
  if (it == ps.keys->end()) return;
  p.hint = &*it;
  it->second.matcher.Prefetch();
}

void Worker::ProcessEvent(const Pending& p) {
  ++stats_.events;
  const Keying& keying = pipeline_.keyings[p.keying];
  const Schema& schema = pipeline_.config.streams[static_cast<size_t>(keying.stream)].schema;
  std::string_view key = KeyView(*p.row, keying.fields, schema, &key_scratch_);
  for (int pi : keying_patterns_[p.keying]) {
    PatternState& ps = patterns_[static_cast<size_t>(pi)];
    KeyNode* node = pi == keying_patterns_[p.keying][0] ? p.hint : nullptr;
    if (!node) {
      // Debian's Abseil has its own string_view type.
      auto it = ps.keys->find(absl::string_view(key.data(), key.size()));
      node = it != ps.keys->end() ? &*it : FindOrLoad(ps, key);
    }
    KeyEntry& e = node->second;
    e.dirty = true;
    e.last_used = batch_no_;
    ps.current_key_view = node->first;
    e.matcher.Process(ps.env, p.row, e.matcher.NextId(p.row->time()));
    if (!e.matcher.Idle()) Schedule(ps, *node);
  }
  ++events_since_sweep_;
}

void Worker::SweepIdleKeys() {
  events_since_sweep_ = 0;
  for (PatternState& ps : patterns_) {
    for (auto it = ps.keys->begin(); it != ps.keys->end();) {
      if (it->second.matcher.Idle()) {
        if (it->second.stored) writes_.Delete(GroupOf(it->first), ps.ns, it->first);
        if (state_.backend) StoreTimer(ps, it->first, it->second, EventTime::Max());
        ps.keys->erase(it++);
        --cached_keys_;
      } else {
        ++it;
      }
    }
    RebuildTimers(ps);
  }
  if (state_.backend) FlushWrites();
}

void Worker::CutOldestRuns() {
  // Keep the newest three quarters of the budget (headroom, so that cuts are
  // rare), cutting by start time across every key and pattern of this worker.
  std::vector<int64_t> starts;
  for (PatternState& ps : patterns_)
    for (auto& kv : *ps.keys) kv.second.matcher.CollectRunStarts(&starts);
  const size_t keep = std::max<size_t>(1, run_budget_ * 3 / 4);
  if (starts.size() <= keep) return;
  std::nth_element(starts.begin(), starts.end() - static_cast<std::ptrdiff_t>(keep), starts.end());
  const int64_t threshold = *(starts.end() - static_cast<std::ptrdiff_t>(keep));
  uint64_t dropped = 0;
  // Runs that started before the threshold; if many share it, those too.
  for (int64_t cut : {threshold, threshold + 1}) {
    if (stats_.matcher.live_runs <= static_cast<int64_t>(run_budget_) && cut != threshold) break;
    for (PatternState& ps : patterns_) {
      for (auto& kv : *ps.keys) {
        ps.current_key_view = kv.first;
        const size_t d =
            kv.second.matcher.DropRunsStartedBefore(ps.env, EventTime::FromMillis(cut));
        if (d == 0) continue;
        dropped += d;
        kv.second.dirty = true;
        Schedule(ps, kv);
      }
    }
  }
  static thread_local uint64_t logged = 0;
  if (dropped && logged++ % 100 == 0)
    spdlog::warn(
        "live partial matches exceeded this worker's share ({}) of limits.max_live_runs: cut "
        "{} runs that started before {} (oldest first; see cepheus_runs_cut_by_budget_total)",
        run_budget_, dropped, FormatRfc3339(EventTime::FromMillis(threshold)));
}

void Worker::RebuildTimers(PatternState& ps) {
  std::vector<Timers::Timer> timers;
  for (auto& kv : *ps.keys)
    if (kv.second.scheduled != EventTime::Max()) timers.push_back({kv.second.scheduled, &kv});
  ps.timers.Assign(std::move(timers));
}

void Worker::FireTimers(EventTime wm) {
  for (PatternState& ps : patterns_) {
    if (wm == EventTime::Max()) {
      // End of input: every key ends, with or without a deadline, including
      // those that live only in the backend.
      if (lookup_backend_) EndStoredKeys(ps);
      ps.cold_min = EventTime::Max();
      ps.group_cold_min.assign(ps.group_cold_min.size(), EventTime::Max());
      for (auto& [key, e] : *ps.keys) {
        ps.current_key_view = key;
        e.matcher.AdvanceTime(ps.env, wm);
        e.matcher.Clear(ps.env);
      }
      cached_keys_ -= ps.keys->size();
      ps.keys->clear();
      ps.timers.Clear();
      continue;
    }
    while (auto t = ps.timers.PopDue(wm)) {
      KeyNode* node = t->payload;
      KeyEntry& e = node->second;
      if (e.scheduled != t->at) continue;  // superseded by an earlier timer
      e.scheduled = EventTime::Max();
      e.dirty = true;
      e.last_used = batch_no_;
      ps.current_key_view = node->first;
      e.matcher.AdvanceTime(ps.env, wm);
      Schedule(ps, *node);  // idle keys are left to SweepIdleKeys
    }
    // Deadlines of keys that were evicted: load them and let time pass.
    if (lookup_backend_ && ps.cold_min <= wm) FireColdTimers(ps, wm);
  }
}

void Worker::FireColdTimers(PatternState& ps, EventTime wm) {
  FlushWrites();  // the scan must see the timer entries written so far
  const int begin = groups_.begin, end = groups_.end;
  std::vector<std::string> due;
  constexpr size_t kChunk = 4096;  // keys loaded at a time (then the cache is trimmed)
  for (int g = begin; g < end; ++g) {
    EventTime& group_min = ps.group_cold_min[static_cast<size_t>(g)];
    bool more = group_min <= wm;  // only groups with a due timer are read
    while (more) {
      // No entry of the group is earlier than group_min: the scan starts
      // there, past the deletion markers of the timers fired before (from
      // the start of the namespace it would step over all of them, every time).
      const std::string from = TimerKey(group_min, "");
      // Entries written meanwhile (keys evicted between chunks) lower it again.
      group_min = EventTime::Max();
      EventTime next = EventTime::Max();
      due.clear();
      more = false;
      Status s = state_.backend->ScanNamespace(g, ps.timer_ns, from,
                                               [&](std::string_view k, std::string_view) {
                                                 EventTime at;
                                                 std::string_view key;
                                                 if (!DecodeTimerKey(k, &at, &key)) return true;
                                                 if (at > wm || due.size() == kChunk) {
                                                   next = at;
                                                   more = at <= wm;
                                                   return false;
                                                 }
                                                 due.emplace_back(k);
                                                 return true;
                                               });
      if (!s.ok()) {
        Fail(s);
        return;
      }
      group_min = std::min(group_min, next);
      for (const std::string& tk : due) {
        writes_.Delete(g, ps.timer_ns, tk);
        const std::string_view key = std::string_view(tk).substr(8);
        auto it = ps.keys->find(absl::string_view(key.data(), key.size()));
        KeyNode* node = it != ps.keys->end() ? &*it : FindOrLoad(ps, key);
        KeyEntry& e = node->second;
        e.stored_timer = EventTime::Max();  // just deleted
        e.dirty = true;
        if (it != ps.keys->end()) continue;  // in memory: its own timer has fired
        e.scheduled = EventTime::Max();
        e.last_used = batch_no_;
        ps.current_key_view = node->first;
        e.matcher.AdvanceTime(ps.env, wm);
        Schedule(ps, *node);
        FlushOutput();
      }
      FlushWrites();
      if (more && state_.cache_keys && cached_keys_ > state_.cache_keys) EvictColdKeys();
    }
  }
  ps.cold_min = EventTime::Max();
  for (int g = begin; g < end; ++g)
    ps.cold_min = std::min(ps.cold_min, ps.group_cold_min[static_cast<size_t>(g)]);
}

void Worker::PublishMetrics() {
  if (!metrics_) return;
  const MatcherStats& now = stats_.matcher;
  MatcherStats& then = published_.matcher;
  auto add = [](metrics::Counter* c, uint64_t now_v, uint64_t& then_v) {
    if (c && now_v > then_v) c->Add(now_v - then_v);
    then_v = now_v;
  };
  add(metrics_->matches, now.matches, then.matches);
  add(metrics_->timeouts, now.timeouts, then.timeouts);
  add(metrics_->runs_dropped, now.runs_dropped, then.runs_dropped);
  add(metrics_->runs_cut_by_budget, now.runs_cut_by_budget, then.runs_cut_by_budget);
  add(metrics_->held_matches, now.held_matches, then.held_matches);
  add(metrics_->skip_errors, now.skip_errors, then.skip_errors);
  add(metrics_->keys_evicted, stats_.keys_evicted, published_.keys_evicted);
  add(metrics_->keys_loaded, stats_.keys_loaded, published_.keys_loaded);
  if (metrics_->live_runs) metrics_->live_runs->Add(now.live_runs - then.live_runs);
  then.live_runs = now.live_runs;
}

void Worker::FlushOutput() {
  if (!errors_.empty()) {
    Status s = errors_out_->Write(errors_);
    if (!s.ok() && status_.ok()) status_ = s;
    errors_.clear();
  }
  if (out_.empty()) return;
  Status s = matches_->Write(out_);
  if (!s.ok() && status_.ok()) status_ = s;
  out_.clear();
}

}  // namespace cepheus::engine
