#include "engine/runner.h"

#include <spdlog/spdlog.h>

#include "common/hash.h"
#include "common/json.h"
#include "engine/decoder.h"
#include "engine/line_reader.h"
#include "engine/match_render.h"
#include "engine/worker.h"
#include "state/key_groups.h"
#include "time/watermark.h"

namespace cepheus::engine {
namespace {

constexpr size_t kBatchEvents = 2048;
constexpr int kLinesPerTurn = 512;

struct StreamInput {
  const StreamConfig* config = nullptr;
  int index = 0;
  std::unique_ptr<LineReader> reader;
  std::unique_ptr<RecordDecoder> decoder;
  bool header_done = false;
  bool ended = false;
  int wm_input = 0;
  std::vector<int> keyings;
};

}  // namespace

PipelineRunner::PipelineRunner(const CompiledPipeline& pipeline, RunOutputs outputs,
                               RunOptions options)
    : pipeline_(pipeline), outputs_(outputs), options_(options) {}

Result<RunSummary> PipelineRunner::Run() {
  SystemClock system_clock;
  const Clock& clock = options_.clock ? *options_.clock : system_clock;
  const int parallelism = std::max(1, options_.parallelism);
  RunSummary summary;
  metrics::Registry local_metrics;
  metrics::Registry& reg = options_.metrics ? *options_.metrics : local_metrics;

  // Open every input first: a missing file fails the run before anything starts.
  std::vector<StreamInput> inputs;
  timing::WatermarkCombiner watermarks;
  for (size_t s = 0; s < pipeline_.config.streams.size(); ++s) {
    const StreamConfig& sc = pipeline_.config.streams[s];
    StreamInput in;
    in.config = &sc;
    in.index = static_cast<int>(s);
    auto reader = LineReader::Open(sc.source.path);
    if (!reader.ok())
      return Status::IoError("stream '" + sc.name + "': " + reader.status().message());
    in.reader = std::move(reader.value());
    DecoderOptions dopt;
    dopt.schema = &sc.schema;
    dopt.time_field = sc.schema.IndexOf(sc.time_field);
    dopt.required.push_back(dopt.time_field);
    for (const auto& k : sc.key) dopt.required.push_back(sc.schema.IndexOf(k));
    for (size_t k = 0; k < pipeline_.keyings.size(); ++k) {
      if (pipeline_.keyings[k].stream != in.index) continue;
      in.keyings.push_back(static_cast<int>(k));
      for (int f : pipeline_.keyings[k].fields)
        if (std::find(dopt.required.begin(), dopt.required.end(), f) == dopt.required.end())
          dopt.required.push_back(f);
    }
    in.decoder = sc.source.format == "csv" ? MakeCsvDecoder(dopt) : MakeJsonlDecoder(dopt);
    in.header_done = !in.decoder->wants_header();
    in.wm_input = watermarks.AddInput(sc.watermark, in.reader->bounded());
    inputs.push_back(std::move(in));
  }

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
  auto dead_letter = [&](const StreamInput& in, const LineReader::Line& meta,
                         std::string_view record, const std::string& reason) {
    ++summary.dead_letters;
    JsonObject o(dead_out);
    o.String("stream", in.config->name);
    o.String("source", in.reader->name());
    o.Int("line", static_cast<int64_t>(meta.number));
    o.Int("offset", static_cast<int64_t>(meta.offset));
    o.String("reason", reason);
    o.String("record", record);
    o.End();
    dead_out.push_back('\n');
  };

  // Counters are published once per turn, not per record (an atomic add per
  // record showed up in profiles).
  RunSummary published;
  auto publish_counters = [&] {
    c_records.Add(summary.records_read - published.records_read);
    c_dead.Add(summary.dead_letters - published.dead_letters);
    c_late.Add(summary.late - published.late);
    published = summary;
  };

  uint64_t seq = 0;
  Status failure;
  std::vector<LineReader::Line> lines;
  std::vector<std::string_view> texts;
  std::vector<const LineReader::Line*> metas;
  std::vector<DecodedRecord> decoded;
  while (!stop_.load()) {
    bool progress = false;
    bool all_ended = true;
    const int64_t now = clock.NowMillis();
    std::string key_scratch;
    for (StreamInput& in : inputs) {
      if (in.ended) continue;
      all_ended = false;
      lines.clear();
      LineReader::Result r = in.reader->NextLines(kLinesPerTurn, 0, &lines);
      if (r == LineReader::Result::kTimeout) continue;
      if (r == LineReader::Result::kError) {
        failure = in.reader->error();
        break;
      }
      if (r == LineReader::Result::kEnd) {
        in.ended = true;
        watermarks.input(in.wm_input).OnEnd();
        progress = true;
        continue;
      }
      progress = true;
      texts.clear();
      metas.clear();
      for (const LineReader::Line& l : lines) {
        if (l.text.find_first_not_of(" \t") == std::string_view::npos) continue;
        if (!in.header_done) {
          Status hs = in.decoder->SetHeader(l.text);
          if (!hs.ok()) {
            failure = Status::InvalidArgument(in.reader->name() + ":" + std::to_string(l.number) +
                                              ": " + hs.message());
            break;
          }
          in.header_done = true;
          continue;
        }
        texts.push_back(l.text);
        metas.push_back(&l);
      }
      if (!failure.ok()) break;
      if (texts.empty()) continue;
      DecodeBatch(*in.decoder, texts, in.reader->readable_after(texts.back()), &seq, &decoded);
      for (size_t i = 0; i < texts.size(); ++i) {
        ++summary.records_read;
        const LineReader::Line& meta = *metas[i];
        if (!decoded[i].row) {
          dead_letter(in, meta, texts[i], decoded[i].error);
          continue;
        }
        RowPtr row = std::move(decoded[i].row);
        const EventTime ts = row->time();
        if (watermarks.current().IsLate(ts)) {
          ++summary.late;
          JsonObject o(late_out);
          o.String("stream", in.config->name);
          o.String("source", in.reader->name());
          o.Int("line", static_cast<int64_t>(meta.number));
          o.Int("offset", static_cast<int64_t>(meta.offset));
          o.String("event_time", FormatRfc3339(ts));
          o.String("watermark", FormatRfc3339(watermarks.current().time()));
          o.Key("event");
          AppendRowJson(&late_out, *row, in.config->schema);
          o.End();
          late_out.push_back('\n');
          continue;
        }
        ++summary.events;
        watermarks.input(in.wm_input).OnEvent(ts, now);
        for (int k : in.keyings) {
          const Keying& keying = pipeline_.keyings[static_cast<size_t>(k)];
          uint64_t h = StableHash(KeyView(*row, keying.fields, in.config->schema, &key_scratch));
          int group = state::KeyGroupOf(h, state::kDefaultKeyGroups);
          int w = state::WorkerOfGroup(group, state::kDefaultKeyGroups, parallelism);
          batches[static_cast<size_t>(w)].events.push_back(
              RoutedEvent{row, static_cast<uint32_t>(k)});
          ++pending_events;
        }
        watermarks.Update(now);
      }
    }
    if (!failure.ok()) break;
    publish_counters();
    Watermark wm = watermarks.Update(clock.NowMillis());
    if (all_ended || watermarks.AllEnded()) break;
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
