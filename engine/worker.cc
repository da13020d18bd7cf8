#include "engine/worker.h"

#include <spdlog/spdlog.h>

#include <pthread.h>

#include <algorithm>

#include "engine/match_render.h"

namespace cepheus::engine {

Worker::Worker(const CompiledPipeline& pipeline, int index, Output* matches)
    : pipeline_(pipeline), index_(index), matches_(matches) {
  patterns_.resize(pipeline.patterns.size());
  keying_patterns_.resize(pipeline.keyings.size());
  for (size_t k = 0; k < pipeline.keyings.size(); ++k) {
    for (int pi : pipeline.keyings[k].patterns) {
      PatternState& ps = patterns_[static_cast<size_t>(pi)];
      ps.pattern = pipeline.patterns[static_cast<size_t>(pi)].get();
      ps.keying = &pipeline.keyings[k];
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
    ps.env.emit = [this, self](MatchResult&& m) {
      self->renderer->Render(self->current_key_view, m, &out_);
      pool_.Unref(m.last);
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
    for (auto& [k, e] : ps.keys) e.matcher.Clear(ps.env);
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
  FlushOutput();
}

void Worker::Schedule(PatternState& ps, KeyMap::value_type& key) {
  KeyEntry& e = key.second;
  EventTime d = e.matcher.NextDeadline(ps.env);
  if (d != EventTime::Max() && d < e.scheduled) {
    e.scheduled = d;
    ps.timers.push(Timer{d, &key});
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
    ps.keys.prefetch(k);
    return;
  }
  auto it = ps.keys.find(k);
  if (it == ps.keys.end()) return;
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
    KeyMap::value_type* node = pi == keying_patterns_[p.keying][0] ? p.hint : nullptr;
    if (!node) {
      // Debian's Abseil has its own string_view type.
      auto it = ps.keys.find(absl::string_view(key.data(), key.size()));
      if (it == ps.keys.end()) it = ps.keys.emplace(std::string(key), KeyEntry{}).first;
      node = &*it;
    }
    KeyEntry& e = node->second;
    ps.current_key_view = node->first;
    e.matcher.Process(ps.env, p.row, e.matcher.NextId(p.row->time()));
    if (!e.matcher.Idle()) Schedule(ps, *node);
  }
  ++events_since_sweep_;
}

void Worker::SweepIdleKeys() {
  events_since_sweep_ = 0;
  for (PatternState& ps : patterns_) {
    for (auto it = ps.keys.begin(); it != ps.keys.end();) {
      if (it->second.matcher.Idle())
        ps.keys.erase(it++);
      else
        ++it;
    }
    // Timers may point at erased keys: rebuild them from the keys that remain.
    std::vector<Timer> timers;
    for (auto& kv : ps.keys)
      if (kv.second.scheduled != EventTime::Max())
        timers.push_back(Timer{kv.second.scheduled, &kv});
    ps.timers = decltype(ps.timers)(std::greater<Timer>(), std::move(timers));
  }
}

void Worker::FireTimers(EventTime wm) {
  for (PatternState& ps : patterns_) {
    if (wm == EventTime::Max()) {
      // End of input: every key ends, with or without a deadline.
      for (auto& [key, e] : ps.keys) {
        ps.current_key_view = key;
        e.matcher.AdvanceTime(ps.env, wm);
        e.matcher.Clear(ps.env);
      }
      ps.keys.clear();
      while (!ps.timers.empty()) ps.timers.pop();
      continue;
    }
    while (!ps.timers.empty() && ps.timers.top().at <= wm) {
      Timer t = ps.timers.top();
      ps.timers.pop();
      KeyEntry& e = t.key->second;
      if (e.scheduled != t.at) continue;  // superseded by an earlier timer
      e.scheduled = EventTime::Max();
      ps.current_key_view = t.key->first;
      e.matcher.AdvanceTime(ps.env, wm);
      Schedule(ps, *t.key);  // idle keys are left to SweepIdleKeys
    }
  }
}

void Worker::FlushOutput() {
  if (out_.empty()) return;
  Status s = matches_->Write(out_);
  if (!s.ok() && status_.ok()) status_ = s;
  out_.clear();
}

}  // namespace cepheus::engine
