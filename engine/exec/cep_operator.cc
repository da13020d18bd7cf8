#include "engine/exec/cep_operator.h"

#include <absl/container/node_hash_map.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/hash.h"
#include "state/key_groups.h"

namespace cepheus::engine {

namespace {
// Backend namespaces per pattern: its key matchers and their timer index
// (docs/formats.md "Worker state"; pending events are the worker's).
std::string MatcherNs(const std::string& pattern) { return "m/" + pattern; }
std::string TimerNs(const std::string& pattern) { return "t/" + pattern; }

// Lookup by std::string_view without a copy (Debian's Abseil has its own
// string_view type, so the hash is made transparent over the standard one).
struct KeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    return absl::Hash<absl::string_view>{}(absl::string_view(s.data(), s.size()));
  }
};
struct KeyEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};
// Power-of-two buckets (no division per lookup) and stable node addresses
// (timers hold them).
template <typename K, typename V>
using NodeMap = absl::node_hash_map<K, V, KeyHash, KeyEq>;
}  // namespace

struct CepOperator::MatcherCodec final : state::ValueCodec<KeyMatcher> {
  explicit MatcherCodec(MatcherEnv* e) : env(e) {}
  bool Idle(const KeyMatcher& m) const override { return m.Idle(); }
  EventTime Deadline(const KeyMatcher& m) const override { return m.NextDeadline(*env); }
  void Encode(const KeyMatcher& m, std::string* out) const override { m.Serialize(*env, out); }
  Status Decode(std::string_view in, KeyMatcher* out) const override {
    auto m = KeyMatcher::Deserialize(*env, in);
    if (!m.ok()) return m.status();
    *out = std::move(m.value());
    return Status::Ok();
  }
  void Release(KeyMatcher& m) const override { m.Clear(*env); }
  MatcherEnv* env;
};

struct CepOperator::Cache : state::KeyedStateCache<KeyMatcher, NodeMap> {
  using KeyedStateCache::KeyedStateCache;
};

Status CepOperator::DropPatternState(state::StateBackend* backend, const std::string& pattern) {
  return state::DeleteSpace(backend, MatcherNs(pattern), TimerNs(pattern));
}

void WireMatcherEnv(const CompiledPipeline& pipeline, const patterns::CompiledPattern& pattern,
                    NodePool* pool, MatcherStats* stats, MatcherEnv* env) {
  env->pattern = &pattern;
  env->pool = pool;
  env->stats = stats;
  env->max_runs_per_key = pipeline.config.max_runs_per_key;
  for (size_t i = 0; i < pipeline.patterns.size() && i < pipeline.pattern_run_cap.size(); ++i)
    if (pipeline.patterns[i].get() == &pattern) env->max_runs_per_key = pipeline.pattern_run_cap[i];
  env->report_timeouts = pattern.has_timeout_emit;
}

CepOperator::CepOperator(const CompiledPipeline& pipeline, state::KeyGroupRange groups,
                         WorkerStats* stats, io::Sink* matches, io::Sink* errors)
    : pipeline_(pipeline),
      groups_(groups),
      stats_(*stats),
      matches_(matches),
      errors_out_(errors ? errors : matches) {
  patterns_.resize(pipeline.patterns.size());
  cache_ = std::make_unique<Cache>(groups, &stats_, &status_);
  keying_patterns_.resize(pipeline.keyings.size());
  for (size_t k = 0; k < pipeline.keyings.size(); ++k) {
    for (int pi : pipeline.keyings[k].patterns) {
      PatternState& ps = patterns_[static_cast<size_t>(pi)];
      ps.pattern = pipeline.patterns[static_cast<size_t>(pi)].get();
      ps.keying = &pipeline.keyings[k];
      keying_patterns_[k].push_back(pi);
    }
  }
  stats_.patterns.resize(patterns_.size());
  for (size_t pi = 0; pi < patterns_.size(); ++pi) {
    PatternState& ps = patterns_[pi];
    ps.pool = std::make_unique<NodePool>();
    WireMatcherEnv(pipeline, *ps.pattern, ps.pool.get(), &stats_.patterns[pi], &ps.env);
    ps.codec = std::make_unique<MatcherCodec>(&ps.env);
    cache_->AddSpace(MatcherNs(ps.pattern->name), TimerNs(ps.pattern->name),
                     "pattern " + ps.pattern->name, ps.codec.get());
    ps.renderer = std::make_unique<MatchRenderer>(*ps.pattern);
    PatternState* self = &ps;
    ps.env.emit = [this, self](const MatchResult& m) {
      // Batch use renders everything into the caller's batch.
      io::RecordBatch* target = self->out && out_target_ == &out_ ? self->out : out_target_;
      self->renderer->RenderTo(self->current_key_view, m, target, errors_target_);
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

CepOperator::~CepOperator() = default;

void CepOperator::SetTrace(const TraceRequest* trace) {
  trace_ = trace;
  for (size_t pi = 0; trace && pi < patterns_.size(); ++pi) {
    PatternState& ps = patterns_[pi];
    if (!ps.pattern || ps.pattern->name != trace->pattern) continue;
    traced_pattern_ = static_cast<int>(pi);
    PatternState* self = &ps;
    ps.env.trace = [trace, self](const TraceNote& n) {
      if (trace->key.empty() || self->current_key_view == trace->key)
        trace->on_note(self->current_key_view, n);
    };
  }
}

void CepOperator::RouteOutputs(const std::vector<io::Sink*>& routed) {
  routed_sinks_ = routed;
  routed_out_.resize(routed.size());  // never resized again: patterns point into it
  for (size_t pi = 0; pi < patterns_.size() && pi < pipeline_.pattern_output.size(); ++pi) {
    const int r = pipeline_.pattern_output[pi];
    if (r >= 0 && static_cast<size_t>(r) < routed.size() && routed[static_cast<size_t>(r)])
      patterns_[pi].out = &routed_out_[static_cast<size_t>(r)];
  }
}

void CepOperator::AttachState(const WorkerStateOptions& options) {
  state_ = options;
  cache_->Attach(options.backend, options.cache_keys);
}

std::vector<CepOperator::PatternCounts> CepOperator::pattern_counts() const {
  std::vector<PatternCounts> out;
  for (const PatternState& ps : patterns_)
    out.push_back(PatternCounts{ps.pattern->name, ps.matches, ps.timeouts});
  return out;
}

void CepOperator::EndKeyOf(int pattern, std::string_view key) {
  PatternState& ps = patterns_[static_cast<size_t>(pattern)];
  cache_->Erase(pattern, key, [&](Cache::Node& n, bool) {
    ps.current_key_view = n.first;
    n.second.value.AdvanceTime(ps.env, EventTime::Max());
  });
}

Status CepOperator::Restore(state::KeyGroupRange groups, const RestoreMapping& mapping) {
  return cache_->Restore(groups, !mapping.timers_in_state);
}

Status CepOperator::WriteBack() { return cache_->WriteBack(); }

void* CepOperator::Prefetch(uint32_t keying_index, const Row& row, bool resolve) {
  const auto& pats = keying_patterns_[keying_index];
  if (pats.empty()) return nullptr;
  const Keying& keying = pipeline_.keyings[keying_index];
  const Schema& schema = pipeline_.config.streams[static_cast<size_t>(keying.stream)].schema;
  std::string_view key = KeyView(row, keying.fields, schema, &prefetch_scratch_);
  if (!resolve) {
    cache_->PrefetchKey(pats[0], key);
    return nullptr;
  }
  Cache::Node* node = cache_->Find(pats[0], key);
  if (!node) return nullptr;
  node->second.value.Prefetch();
  return node;  // the key's node for the keying's first pattern
}

void CepOperator::OnEvent(uint32_t keying_index, const RowPtr& row, void* hint) {
  ++stats_.events;
  const Keying& keying = pipeline_.keyings[keying_index];
  const Schema& schema = pipeline_.config.streams[static_cast<size_t>(keying.stream)].schema;
  std::string_view key = KeyView(*row, keying.fields, schema, &key_scratch_);
  stats_.lookups += keying_patterns_[keying_index].size();
  for (int pi : keying_patterns_[keying_index]) {
    PatternState& ps = patterns_[static_cast<size_t>(pi)];
    auto* node =
        pi == keying_patterns_[keying_index][0] ? static_cast<Cache::Node*>(hint) : nullptr;
    if (!node) node = cache_->FindOrLoad(pi, key);
    cache_->Touch(*node);
    if (__builtin_expect(pi == traced_pattern_, 0) && (trace_->key.empty() || key == trace_->key))
      trace_->on_event(key, *row);
    KeyMatcher& m = node->second.value;
    ps.current_key_view = node->first;
    m.Process(ps.env, row, m.NextId(row->time()));
    if (!m.Idle()) cache_->ScheduleAt(pi, *node, m.NextDeadline(ps.env));
  }
  ++events_since_sweep_;
}

void CepOperator::CutOldestRuns() {
  // Keep the newest three quarters of the budget (headroom, so that cuts are
  // rare), cutting by start time across every key and pattern of this worker.
  std::vector<int64_t> starts;
  for (size_t pi = 0; pi < patterns_.size(); ++pi)
    cache_->ForEach(static_cast<int>(pi),
                    [&](Cache::Node& n) { n.second.value.CollectRunStarts(&starts); });
  const size_t keep = std::max<size_t>(1, run_budget_ * 3 / 4);
  if (starts.size() <= keep) return;
  std::nth_element(starts.begin(), starts.end() - static_cast<std::ptrdiff_t>(keep), starts.end());
  const int64_t threshold = *(starts.end() - static_cast<std::ptrdiff_t>(keep));
  uint64_t dropped = 0;
  // Runs that started before the threshold; if many share it, those too.
  for (int64_t cut : {threshold, threshold + 1}) {
    if (stats_.live_runs() <= static_cast<int64_t>(run_budget_) && cut != threshold) break;
    for (size_t pi = 0; pi < patterns_.size(); ++pi) {
      PatternState& ps = patterns_[pi];
      cache_->ForEach(static_cast<int>(pi), [&](Cache::Node& n) {
        ps.current_key_view = n.first;
        const size_t d = n.second.value.DropRunsStartedBefore(ps.env, EventTime::FromMillis(cut));
        if (d == 0) return;
        dropped += d;
        n.second.dirty = true;
        cache_->Schedule(static_cast<int>(pi), n);
      });
    }
  }
  static thread_local uint64_t logged = 0;
  if (dropped && logged++ % 100 == 0)
    spdlog::warn(
        "live partial matches exceeded this worker's share ({}) of limits.max_live_runs: cut "
        "{} runs that started before {} (oldest first; see cepheus_runs_cut_by_budget_total)",
        run_budget_, dropped, FormatRfc3339(EventTime::FromMillis(threshold)));
}

void CepOperator::EndOfBatch() {
  // Keys with nothing in flight are forgotten in periodic sweeps rather than
  // at once: a busy key would otherwise be dropped and re-created per event.
  if (events_since_sweep_ >= kSweepEvery) {
    events_since_sweep_ = 0;
    cache_->SweepIdle();
  }
  cache_->EvictIfOver();
  if (run_budget_ && stats_.live_runs() > static_cast<int64_t>(run_budget_)) CutOldestRuns();
  stats_.peak_live_runs = std::max(stats_.peak_live_runs, stats_.live_runs());
  for (size_t pi = 0; pi < patterns_.size(); ++pi)
    stats_.patterns[pi].buffered_events = static_cast<int64_t>(patterns_[pi].pool->live());
  cache_->NextBatch();
}

void CepOperator::OnWatermark(EventTime wm) {
  for (size_t i = 0; i < patterns_.size(); ++i) {
    PatternState& ps = patterns_[i];
    // Lets time pass for a key; keys loaded from the backend flush their
    // output at once (memory stays bounded however many are due).
    auto advance = [&](Cache::Node& n, bool loaded) {
      ps.current_key_view = n.first;
      n.second.value.AdvanceTime(ps.env, wm);
      if (loaded) FlushOutput();
    };
    // End of input: every key ends, with or without a deadline, including
    // those that live only in the backend.
    if (wm == EventTime::Max())
      cache_->EndAll(static_cast<int>(i), advance);
    else
      cache_->FireDue(static_cast<int>(i), wm, advance);
  }
}

void CepOperator::FlushOutput() {
  if (!errors_.empty()) {
    Status s = errors_out_->Write(errors_);
    if (!s.ok() && status_.ok()) status_ = s;
    errors_.clear();
  }
  for (size_t r = 0; r < routed_out_.size(); ++r) {
    if (routed_out_[r].empty()) continue;
    Status s = routed_sinks_[r]->Write(routed_out_[r]);
    if (!s.ok() && status_.ok()) status_ = s;
    routed_out_[r].clear();
  }
  if (out_.empty()) return;
  Status s = matches_->Write(out_);
  if (!s.ok() && status_.ok()) status_ = s;
  out_.clear();
}

}  // namespace cepheus::engine
