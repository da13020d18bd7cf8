#include "engine/exec/worker.h"

#include <pthread.h>

#include <algorithm>

#include "common/hash.h"
#include "common/varint.h"
#include "engine/format/format.h"
#include "state/key_groups.h"

namespace cepheus::engine {

namespace {
// The backend namespace of pending (not yet watermarked) events
// (docs/formats.md "Worker state"); the operator has its own.
constexpr std::string_view kBufferNs = "b";
constexpr size_t kMaxBatchBytes = 4 << 20;
}  // namespace

Worker::Worker(const CompiledPipeline& pipeline, state::KeyGroupRange groups,
               const OperatorFactory& make)
    : pipeline_(pipeline), groups_(groups), ops_(make(&stats_)) {
  keying_ops_.resize(pipeline.keyings.size());
  for (size_t k = 0; k < keying_ops_.size(); ++k)
    for (auto& op : ops_)
      if (op->Wants(static_cast<uint32_t>(k))) keying_ops_[k].push_back(op.get());
}

const Status& Worker::status() const {
  if (!status_.ok()) return status_;
  for (const auto& op : ops_)
    if (!op->status().ok()) return op->status();
  return status_;
}

Worker::~Worker() {
  if (thread_.joinable()) {
    EventBatch stop;
    stop.stop = true;
    queue_.Push(std::move(stop));
    thread_.join();
  }
}

void Worker::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::Loop() {
  // A wait for a processing-time timer is cut into slices so that a clock
  // moved by a test (or a wall clock stepped forward) is noticed soon.
  constexpr int64_t kMaxWaitMs = 100;
  while (true) {
    EventBatch b;
    const int64_t next = NextProcessingTime();
    if (next == KeyedOperator::kNoTimer) {
      b = queue_.Pop();
    } else {
      const int64_t wait = std::clamp<int64_t>(next - clock_->NowMillis(), 0, kMaxWaitMs);
      std::optional<EventBatch> got = queue_.PopFor(std::chrono::milliseconds(wait));
      if (!got) {
        if (FireProcessingTimers()) {
          const uint64_t emitted = PublishMetrics();
          for (auto& op : ops_) op->FlushOutput();
          ObserveLatency(emitted, 0);
        }
        continue;
      }
      b = std::move(*got);
    }
    if (b.stop) break;
    OnBatch(b);
    if (b.watermark.is_max()) break;
  }
}

int64_t Worker::NextProcessingTime() const {
  int64_t next = KeyedOperator::kNoTimer;
  for (const auto& op : ops_) next = std::min(next, op->NextProcessingTime());
  return next;
}

bool Worker::FireProcessingTimers() {
  if (NextProcessingTime() == KeyedOperator::kNoTimer) return false;  // no clock read
  bool fired = false;
  const int64_t now = clock_->NowMillis();
  for (auto& op : ops_) {
    if (op->NextProcessingTime() > now) continue;
    op->OnProcessingTime(now);
    fired = true;
  }
  return fired;
}

void Worker::OnBatch(EventBatch& batch) {
  const size_t mid = buffer_.size();
  for (RoutedEvent& e : batch.events)
    buffer_.push_back(Pending{std::move(e.row), e.keying, nullptr, e.arrival_us});
  auto batch_begin = buffer_.begin() + static_cast<std::ptrdiff_t>(mid);
  if (!std::is_sorted(batch_begin, buffer_.end())) std::sort(batch_begin, buffer_.end());
  if (mid > head_ && batch_begin != buffer_.end() && *batch_begin < buffer_[mid - 1])
    std::inplace_merge(buffer_.begin() + static_cast<std::ptrdiff_t>(head_), batch_begin,
                       buffer_.end());
  stats_.peak_buffered = std::max<uint64_t>(stats_.peak_buffered, buffer_.size() - head_);
  if (batch.watermark > watermark_) watermark_ = batch.watermark;
  const EventTime wm = watermark_.time();
  // The earliest read of the events processed now (or of the batch).
  int64_t arrival_us = batch.sent_us;
  while (head_ < buffer_.size() && buffer_[head_].row->time() <= wm) {
    // Two events ahead: the hash slot; one event ahead: the key's node and runs.
    if (head_ + 2 < buffer_.size()) {
      const Pending& p = buffer_[head_ + 2];
      if (!keying_ops_[p.keying].empty())
        keying_ops_[p.keying][0]->Prefetch(p.keying, *p.row, false);
    }
    // Hints are only taken for events processed in this loop: between
    // batches an operator may forget keys.
    if (head_ + 1 < buffer_.size() && buffer_[head_ + 1].row->time() <= wm) {
      Pending& p = buffer_[head_ + 1];
      if (!keying_ops_[p.keying].empty())
        p.hint = keying_ops_[p.keying][0]->Prefetch(p.keying, *p.row, true);
    }
    Pending& p = buffer_[head_];
    if (p.arrival_us && (arrival_us == 0 || p.arrival_us < arrival_us)) arrival_us = p.arrival_us;
    const auto& ops = keying_ops_[p.keying];
    for (size_t i = 0; i < ops.size(); ++i)
      ops[i]->OnEvent(p.keying, p.row, i == 0 ? p.hint : nullptr);
    p.row = RowPtr();
    ++head_;
  }
  if (head_ == buffer_.size()) {
    buffer_.clear();
    head_ = 0;
  } else if (head_ > 4096 && head_ * 2 > buffer_.size()) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  for (auto& op : ops_) {
    op->OnWatermark(wm);
    op->EndOfBatch();
  }
  // A busy worker never waits: processing-time timers due by now fire here.
  if (!watermark_.is_max()) FireProcessingTimers();
  // Counted before the output is written: a scraped count covers what was written.
  const uint64_t emitted = PublishMetrics();
  for (auto& op : ops_) op->FlushOutput();
  ObserveLatency(emitted, arrival_us);
  if (batch.barrier) {
    // Everything before the barrier is processed and its output handed to
    // the sinks: write the state back, then wait while the snapshot is taken.
    Status s = status();
    if (s.ok() && state_.backend) s = WriteBackAll();
    batch.barrier->Arrive(s);
    batch.barrier->WaitReleased();
  }
}

void Worker::AttachState(const WorkerStateOptions& options) {
  state_ = options;
  for (auto& op : ops_) op->AttachState(options);
  buffer_groups_.assign(state::kDefaultKeyGroups, false);
}

int Worker::GroupOf(const Pending& p) {
  const Keying& keying = pipeline_.keyings[p.keying];
  const Schema& schema = pipeline_.config.streams[static_cast<size_t>(keying.stream)].schema;
  return state::KeyGroupOf(StableHash(KeyView(*p.row, keying.fields, schema, &key_scratch_)),
                           state::kDefaultKeyGroups);
}

Status Worker::Restore(const RestoreMapping& mapping) {
  if (!state_.backend) return Status::Internal("restore without a state backend");
  Status bad;
  for (int g = groups_.begin; g < groups_.end; ++g) {
    // Pending events are read back; the operator's keys and timers stay in
    // the backend (a key loads when an event or its timer needs it).
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
  }
  for (auto& op : ops_) CEPHEUS_RETURN_IF_ERROR(op->Restore(groups_, mapping));
  std::sort(buffer_.begin(), buffer_.end());
  head_ = 0;
  watermark_ = mapping.watermark;
  return Status::Ok();
}

Status Worker::WriteBackAll() {
  for (auto& op : ops_) CEPHEUS_RETURN_IF_ERROR(op->WriteBack());
  // Pending events: the backend holds exactly those of this checkpoint.
  for (size_t g = 0; g < buffer_groups_.size(); ++g) {
    if (!buffer_groups_[g]) continue;
    CEPHEUS_RETURN_IF_ERROR(state_.backend->DeleteNamespace(static_cast<int>(g), kBufferNs));
    buffer_groups_[g] = false;
  }
  auto flush = [&]() -> Status {
    if (writes_.count() == 0) return Status::Ok();
    return state_.backend->Write(writes_);
  };
  std::string key, value;
  for (size_t i = head_; i < buffer_.size(); ++i) {
    const Pending& p = buffer_[i];
    const int g = GroupOf(p);
    key.clear();
    PutFixed64BE(&key, p.row->seq());
    PutVarint(&key, p.keying);
    value.clear();
    p.row->AppendEncoded(&value);
    writes_.Put(g, kBufferNs, key, value);
    if (writes_.bytes() >= kMaxBatchBytes) CEPHEUS_RETURN_IF_ERROR(flush());
    buffer_groups_[static_cast<size_t>(g)] = true;
  }
  CEPHEUS_RETURN_IF_ERROR(flush());
  return status();
}

uint64_t Worker::PublishMetrics() {
  if (!metrics_) return 0;
  auto add = [](metrics::Counter* c, uint64_t now_v, uint64_t& then_v) {
    if (c && now_v > then_v) c->Add(now_v - then_v);
    then_v = now_v;
  };
  auto set = [](metrics::Gauge* g, int64_t now_v, int64_t& then_v) {
    if (g && now_v != then_v) g->Add(now_v - then_v);
    then_v = now_v;
  };
  published_.patterns.resize(stats_.patterns.size());
  uint64_t emitted = 0;
  for (size_t i = 0; i < stats_.patterns.size() && i < metrics_->patterns.size(); ++i) {
    const MatcherStats& now = stats_.patterns[i];
    MatcherStats& then = published_.patterns[i];
    const WorkerMetrics::Pattern& m = metrics_->patterns[i];
    emitted += (now.matches - then.matches) + (now.timeouts - then.timeouts) +
               (now.skip_errors - then.skip_errors);
    add(m.matches, now.matches, then.matches);
    add(m.timeouts, now.timeouts, then.timeouts);
    add(m.runs_dropped, now.runs_dropped, then.runs_dropped);
    add(m.runs_cut_by_budget, now.runs_cut_by_budget, then.runs_cut_by_budget);
    add(m.held_matches, now.held_matches, then.held_matches);
    add(m.skip_errors, now.skip_errors, then.skip_errors);
    set(m.live_runs, now.live_runs, then.live_runs);
    set(m.buffered_events, now.buffered_events, then.buffered_events);
  }
  add(metrics_->keys_evicted, stats_.keys_evicted, published_.keys_evicted);
  add(metrics_->keys_loaded, stats_.keys_loaded, published_.keys_loaded);
  add(metrics_->cache_lookups, stats_.lookups, published_.lookups);
  add(metrics_->cache_misses, stats_.backend_reads, published_.backend_reads);
  return emitted;
}

void Worker::ObserveLatency(uint64_t records, int64_t arrival_us) {
  // Output of processing-time timers has no arrival: not observed.
  if (!metrics_ || !metrics_->output_latency || records == 0 || arrival_us <= 0) return;
  const int64_t now = SteadyMicros();
  if (arrival_us > now) arrival_us = now;
  metrics_->output_latency->Observe(static_cast<double>(now - arrival_us) / 1e6, records);
}

}  // namespace cepheus::engine
