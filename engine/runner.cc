#include "engine/runner.h"

#include <spdlog/spdlog.h>

#include <ctime>

#include "common/hash.h"
#include "engine/event_reader.h"
#include "engine/match_render.h"
#include "engine/worker.h"
#include "state/key_groups.h"

namespace cepheus::engine {
namespace {
constexpr size_t kBatchEvents = 2048;
}  // namespace

PipelineRunner::PipelineRunner(const CompiledPipeline& pipeline, RunOutputs outputs,
                               RunOptions options)
    : pipeline_(pipeline), outputs_(outputs), options_(options) {}

Result<RunSummary> PipelineRunner::Run() {
  const int parallelism = std::max(1, options_.parallelism);
  RunSummary summary;
  metrics::Registry local_metrics;
  metrics::Registry& reg = options_.metrics ? *options_.metrics : local_metrics;

  ReaderOptions ropts;
  ropts.clock = options_.clock;
  EventReader reader(pipeline_, ropts);
  // Every input is opened first: a missing file fails the run before it starts.
  CEPHEUS_RETURN_IF_ERROR(reader.Open());

  std::vector<std::unique_ptr<Worker>> workers;
  for (int w = 0; w < parallelism; ++w) {
    workers.push_back(std::make_unique<Worker>(pipeline_, w, outputs_.matches));
    workers.back()->Start();
  }
  std::vector<EventBatch> batches(static_cast<size_t>(parallelism));
  size_t pending_events = 0;
  Watermark sent_wm = Watermark::Min();

  auto& c_records = reg.GetCounter("cepheus_records_read_total", "Input records read");
  auto& c_dead = reg.GetCounter("cepheus_dead_letters_total", "Records that could not be decoded");
  auto& c_late = reg.GetCounter("cepheus_late_events_total", "Events at or behind the watermark");
  std::string dead_out, late_out;
  // Counters are published once per turn, not per record.
  ReaderCounts published;
  auto publish_counters = [&] {
    const ReaderCounts& c = reader.counts();
    c_records.Add(c.records_read - published.records_read);
    c_dead.Add(c.dead_letters - published.dead_letters);
    c_late.Add(c.late - published.late);
    published = c;
  };
  auto flush_side_outputs = [&]() -> Status {
    if (!dead_out.empty()) {
      CEPHEUS_RETURN_IF_ERROR(outputs_.dead_letter->Write(dead_out));
      dead_out.clear();
    }
    if (!late_out.empty()) {
      CEPHEUS_RETURN_IF_ERROR(outputs_.late->Write(late_out));
      late_out.clear();
    }
    return Status::Ok();
  };
  auto send = [&](Watermark wm) {
    for (int w = 0; w < parallelism; ++w) {
      EventBatch& b = batches[static_cast<size_t>(w)];
      b.watermark = wm;
      workers[static_cast<size_t>(w)]->Push(std::move(b));
      b = EventBatch{};
    }
    pending_events = 0;
    sent_wm = wm;
  };

  Status failure;
  std::vector<ReadEvent> events;
  std::string key_scratch;
  while (!stop_.load()) {
    events.clear();
    auto turn = reader.ReadTurn(&events, &dead_out, &late_out);
    if (!turn.ok()) {
      failure = turn.status();
      break;
    }
    for (ReadEvent& e : events) {
      const StreamConfig& sc = pipeline_.config.streams[static_cast<size_t>(e.stream)];
      for (size_t k = 0; k < pipeline_.keyings.size(); ++k) {
        const Keying& keying = pipeline_.keyings[k];
        if (keying.stream != e.stream) continue;
        uint64_t h = StableHash(KeyView(*e.row, keying.fields, sc.schema, &key_scratch));
        int group = state::KeyGroupOf(h, state::kDefaultKeyGroups);
        int w = state::WorkerOfGroup(group, state::kDefaultKeyGroups, parallelism);
        batches[static_cast<size_t>(w)].events.push_back(
            RoutedEvent{e.row, static_cast<uint32_t>(k)});
        ++pending_events;
      }
    }
    publish_counters();
    if (*turn == EventReader::Turn::kEnd) break;
    const bool progress = *turn == EventReader::Turn::kProgress;
    Watermark wm = reader.UpdateWatermark();
    if (pending_events >= kBatchEvents || (wm > sent_wm && (pending_events > 0 || !progress)) ||
        (!progress && pending_events > 0)) {
      send(wm);
    }
    Status fs = flush_side_outputs();
    if (!fs.ok()) {
      failure = fs;
      break;
    }
    if (!progress) {
      // Only unbounded inputs remain and none had data: wait a little, then
      // look again (the watermark may move with the wall clock meanwhile).
      struct timespec pause {
        0, static_cast<long>(std::min(options_.poll_ms, 20)) * 1000000L
      };
      nanosleep(&pause, nullptr);
    }
  }
  publish_counters();
  Status fs = flush_side_outputs();
  if (failure.ok() && !fs.ok()) failure = fs;
  const bool stopped = stop_.load() || !failure.ok();
  if (stopped) {
    for (auto& w : workers) {
      EventBatch b;
      b.stop = true;
      w->Push(std::move(b));
    }
  } else {
    send(Watermark::Max());
  }
  for (auto& w : workers) w->Join();
  summary.reader = reader.counts();
  for (auto& w : workers) {
    summary.matches += w->stats().matcher.matches;
    summary.timeouts += w->stats().matcher.timeouts;
    summary.runs_dropped += w->stats().matcher.runs_dropped;
    if (failure.ok() && !w->status().ok()) failure = w->status();
  }
  reg.GetCounter("cepheus_matches_total", "Matches emitted").Add(summary.matches);
  reg.GetCounter("cepheus_timeouts_total", "Partial matches that timed out").Add(summary.timeouts);
  reg.GetCounter("cepheus_runs_dropped_total", "Partial matches cut by max_runs_per_key")
      .Add(summary.runs_dropped);
  // A failed flush (full disk, closed pipe) fails the run: output was lost.
  for (Output* o : {outputs_.matches, outputs_.late, outputs_.dead_letter}) {
    if (!o) continue;
    Status flushed = o->Flush();
    if (failure.ok() && !flushed.ok()) failure = flushed;
  }
  if (!failure.ok()) return failure;
  summary.stopped = stopped;
  if (summary.runs_dropped)
    spdlog::warn(
        "{} partial matches were cut by max_runs_per_key={} (see cepheus_runs_dropped_total)",
        summary.runs_dropped, pipeline_.config.max_runs_per_key);
  return summary;
}

}  // namespace cepheus::engine
