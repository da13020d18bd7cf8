#include "engine/exec/cep_operator.h"

#include <absl/container/node_hash_map.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/hash.h"
#include "common/varint.h"
#include "state/key_groups.h"

namespace cepheus::engine {

namespace {
// Backend namespaces per pattern: its key matchers and their timers
// (docs/formats.md "Worker state"; pending events are the worker's).
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

Status CepOperator::DropPatternState(state::StateBackend* backend, const std::string& pattern) {
  for (int g = 0; g < state::kDefaultKeyGroups; ++g) {
    CEPHEUS_RETURN_IF_ERROR(backend->DeleteNamespace(g, MatcherNs(pattern)));
    CEPHEUS_RETURN_IF_ERROR(backend->DeleteNamespace(g, TimerNs(pattern)));
  }
  return Status::Ok();
}

void WireMatcherEnv(const CompiledPipeline& pipeline, const patterns::CompiledPattern& pattern,
                    NodePool* pool, MatcherStats* stats, MatcherEnv* env) {
  env->pattern = &pattern;
  env->pool = pool;
  env->stats = stats;
  env->max_runs_per_key = pipeline.config.max_runs_per_key;
  env->report_timeouts = pattern.has_timeout_emit;
}

struct CepOperator::KeyMap : absl::node_hash_map<std::string, KeyEntry> {};

CepOperator::CepOperator(const CompiledPipeline& pipeline, state::KeyGroupRange groups,
                         WorkerStats* stats, io::Sink* matches, io::Sink* errors)
    : pipeline_(pipeline),
      groups_(groups),
      stats_(*stats),
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
    WireMatcherEnv(pipeline, *ps.pattern, &pool_, &stats_.matcher, &ps.env);
    ps.renderer = std::make_unique<MatchRenderer>(*ps.pattern);
    PatternState* self = &ps;
    ps.env.emit = [this, self](const MatchResult& m) {
      self->renderer->RenderTo(self->current_key_view, m, out_target_, errors_target_);
      if (m.timeout) {
        ++self->timeouts;
      } else {
        ++self->matches;
        ++self->key_matches;
      }
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

CepOperator::~CepOperator() {
  for (PatternState& ps : patterns_)
    for (auto& [k, e] : *ps.keys) e.matcher.Clear(ps.env);
}

void CepOperator::AttachState(const WorkerStateOptions& options) { state_ = options; }

std::vector<CepOperator::PatternCounts> CepOperator::pattern_counts() const {
  std::vector<PatternCounts> out;
  for (const PatternState& ps : patterns_)
    out.push_back(PatternCounts{ps.pattern->name, ps.matches, ps.timeouts});
  return out;
}

void CepOperator::EndKeyOf(PatternState& ps, std::string_view key) {
  auto it = ps.keys->find(absl::string_view(key.data(), key.size()));
  if (it == ps.keys->end()) return;
  ps.current_key_view = it->first;
  it->second.matcher.AdvanceTime(ps.env, EventTime::Max());
  it->second.matcher.Clear(ps.env);
  ps.keys->erase(it);
  --cached_keys_;
  // Timers point at map nodes: none may point at the erased one.
  if (ps.keys->empty())
    ps.timers.Clear();
  else
    RebuildTimers(ps);
}

int CepOperator::GroupOf(std::string_view key) const {
  return state::KeyGroupOf(StableHash(key), state::kDefaultKeyGroups);
}

Status CepOperator::Restore(state::KeyGroupRange groups, const RestoreMapping& mapping) {
  if (!state_.backend) return Status::Internal("restore without a state backend");
  Status bad;
  for (int g = groups.begin; g < groups.end; ++g) {
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
  lookup_backend_ = true;
  return Status::Ok();
}

CepOperator::KeyNode* CepOperator::FindOrLoad(PatternState& ps, std::string_view key) {
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

void CepOperator::WriteBackKey(PatternState& ps, const std::string& key, KeyEntry& e) {
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

void CepOperator::StoreTimer(PatternState& ps, const std::string& key, KeyEntry& e, EventTime d) {
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

void CepOperator::FlushWrites() {
  if (writes_.count() == 0) return;
  Status s = state_.backend->Write(writes_);
  if (!s.ok()) Fail(s);
}

Status CepOperator::WriteBack() {
  for (PatternState& ps : patterns_)
    for (auto& [key, e] : *ps.keys) WriteBackKey(ps, key, e);
  FlushWrites();
  return status_;
}

void CepOperator::EvictColdKeys() {
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
    WriteBackKey(ps, key, e);  // with its timer entry, if it has a deadline
    e.matcher.Clear(ps.env);
    ps.keys->erase(key);
    --cached_keys_;
    ++stats_.keys_evicted;
  }
  FlushWrites();  // before any read: a key may be loaded again in the next batch
  lookup_backend_ = true;
  for (PatternState& ps : patterns_) RebuildTimers(ps);
}

void CepOperator::EndStoredKeys(PatternState& ps) {
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

void CepOperator::Schedule(PatternState& ps, KeyNode& key) {
  KeyEntry& e = key.second;
  EventTime d = e.matcher.NextDeadline(ps.env);
  if (d != EventTime::Max() && d < e.scheduled) {
    e.scheduled = d;
    ps.timers.Push(d, &key);
  }
}

void* CepOperator::Prefetch(uint32_t keying_index, const Row& row, bool resolve) {
  const auto& pats = keying_patterns_[keying_index];
  if (pats.empty()) return nullptr;
  const Keying& keying = pipeline_.keyings[keying_index];
  const Schema& schema = pipeline_.config.streams[static_cast<size_t>(keying.stream)].schema;
  std::string_view key = KeyView(row, keying.fields, schema, &prefetch_scratch_);
  PatternState& ps = patterns_[static_cast<size_t>(pats[0])];
  absl::string_view k(key.data(), key.size());
  if (!resolve) {
    ps.keys->prefetch(k);
    return nullptr;
  }
  auto it = ps.keys->find(k);
  if (it == ps.keys->end()) return nullptr;
  it->second.matcher.Prefetch();
  return &*it;  // the key's node for the keying's first pattern
}

void CepOperator::OnEvent(uint32_t keying_index, const RowPtr& row, void* hint) {
  ++stats_.events;
  const Keying& keying = pipeline_.keyings[keying_index];
  const Schema& schema = pipeline_.config.streams[static_cast<size_t>(keying.stream)].schema;
  std::string_view key = KeyView(*row, keying.fields, schema, &key_scratch_);
  for (int pi : keying_patterns_[keying_index]) {
    PatternState& ps = patterns_[static_cast<size_t>(pi)];
    KeyNode* node = pi == keying_patterns_[keying_index][0] ? static_cast<KeyNode*>(hint) : nullptr;
    if (!node) {
      // Debian's Abseil has its own string_view type.
      auto it = ps.keys->find(absl::string_view(key.data(), key.size()));
      node = it != ps.keys->end() ? &*it : FindOrLoad(ps, key);
    }
    KeyEntry& e = node->second;
    e.dirty = true;
    e.last_used = batch_no_;
    ps.current_key_view = node->first;
    e.matcher.Process(ps.env, row, e.matcher.NextId(row->time()));
    if (!e.matcher.Idle()) Schedule(ps, *node);
  }
  ++events_since_sweep_;
}

void CepOperator::SweepIdleKeys() {
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

void CepOperator::CutOldestRuns() {
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

void CepOperator::RebuildTimers(PatternState& ps) {
  std::vector<Timers::Timer> timers;
  for (auto& kv : *ps.keys)
    if (kv.second.scheduled != EventTime::Max()) timers.push_back({kv.second.scheduled, &kv});
  ps.timers.Assign(std::move(timers));
}

void CepOperator::EndOfBatch() {
  // Keys with nothing in flight are forgotten in periodic sweeps rather than
  // at once: a busy key would otherwise be dropped and re-created per event.
  if (events_since_sweep_ >= kSweepEvery) SweepIdleKeys();
  if (state_.cache_keys && cached_keys_ > state_.cache_keys) EvictColdKeys();
  if (run_budget_ && stats_.matcher.live_runs > static_cast<int64_t>(run_budget_)) CutOldestRuns();
  stats_.peak_live_runs = std::max(stats_.peak_live_runs, stats_.matcher.live_runs);
  ++batch_no_;
}

void CepOperator::OnWatermark(EventTime wm) {
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

void CepOperator::FireColdTimers(PatternState& ps, EventTime wm) {
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

void CepOperator::FlushOutput() {
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
