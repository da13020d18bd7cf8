#include "engine/ingest/event_reader.h"

#include <poll.h>

#include <simdjson.h>

#include "common/json.h"
#include "common/varint.h"
#include "engine/format/format.h"

namespace cepheus::engine {

struct EventReader::Part {
  int partition = 0;
  int wm_input = 0;
};

struct EventReader::Input {
  const StreamConfig* config = nullptr;
  int index = 0;
  std::unique_ptr<io::Source> source;  // null: nothing to read
  std::unique_ptr<RecordDecoder> decoder;
  std::vector<Part> parts;  // the source's assigned partitions
  bool ended = false;
  std::vector<int> key_fields;  // the stream's key (for late records)
  std::string key_scratch;
  std::string punctuation_key;  // "\"__watermark\"" for JSONL inputs, else empty
  int watermark_field = -1;
};

namespace {

// Whether `text` is a punctuation record (a JSON object with `field` at its
// top level) and, if so, the watermark it carries or why it is unusable.
std::optional<Result<EventTime>> ReadPunctuation(std::string_view text, const std::string& field) {
  static thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(text.data(), text.size()).get(doc)) return std::nullopt;  // an event's problem
  simdjson::dom::object obj;
  if (doc.get_object().get(obj)) return std::nullopt;
  simdjson::dom::element v;
  if (obj.at_key(field).get(v)) return std::nullopt;
  const std::string what = "watermark punctuation \"" + field + "\": ";
  int64_t ms;
  std::string_view s;
  if (!v.get_int64().get(ms)) return Result<EventTime>(EventTime::FromMillis(ms));
  if (!v.get_string().get(s)) {
    if (auto t = ParseTimeOrEpochMillis(s)) return Result<EventTime>(*t);
    return Result<EventTime>(
        Status::InvalidArgument(what + "'" + std::string(s) + "' is not an RFC 3339 time"));
  }
  return Result<EventTime>(Status::InvalidArgument(
      what + "expected epoch milliseconds or an RFC 3339 time, found " + simdjson::to_string(v)));
}

}  // namespace

io::SourceSpec StreamSourceSpec(const StreamConfig& stream, const std::vector<std::string>& files,
                                size_t read_buffer_bytes) {
  io::SourceSpec spec;
  spec.stream = stream.name;
  spec.kind = stream.source.kind;
  spec.paths = files.empty() ? std::vector<std::string>{stream.source.path} : files;
  spec.kafka = stream.source.kafka;
  spec.framing = stream.source.is_csv() ? io::Framing::kCsv : io::Framing::kLines;
  spec.read_buffer_bytes = read_buffer_bytes;
  return spec;
}

Result<std::vector<std::unique_ptr<io::Source>>> OpenStreamSources(
    io::SourceProvider& provider, const PipelineConfig& config,
    const std::vector<std::vector<std::string>>& files, size_t read_buffer_bytes) {
  std::vector<std::unique_ptr<io::Source>> out;
  for (size_t s = 0; s < config.streams.size(); ++s) {
    auto source = provider.Open(StreamSourceSpec(
        config.streams[s], s < files.size() ? files[s] : std::vector<std::string>{},
        read_buffer_bytes));
    if (!source.ok()) return source.status();
    out.push_back(std::move(source.value()));
  }
  return out;
}

EventReader::EventReader(const CompiledPipeline& pipeline, ReaderOptions options,
                         std::vector<std::unique_ptr<io::Source>> sources)
    : pipeline_(pipeline),
      options_(std::move(options)),
      clock_(options_.clock ? options_.clock : &system_clock_) {
  for (size_t s = 0; s < pipeline_.config.streams.size(); ++s) {
    auto in = std::make_unique<Input>();
    in->config = &pipeline_.config.streams[s];
    in->index = static_cast<int>(s);
    if (s < sources.size()) in->source = std::move(sources[s]);
    inputs_.push_back(std::move(in));
  }
}

EventReader::~EventReader() = default;

void EventReader::TakeAssignment(Input& in) {
  changes_.clear();
  in.source->TakeAssignmentChanges(&changes_);
  for (const io::AssignmentChange& c : changes_) {
    if (c.added) {
      in.parts.push_back(Part{c.partition, watermarks_.AddInput(in.config->watermark, c.bounded)});
    } else {
      // A revoked partition no longer holds the watermark back.
      watermarks_.input(PartOf(in, c.partition).wm_input).OnEnd();
    }
  }
}

EventReader::Part& EventReader::PartOf(Input& in, int partition) {
  for (Part& p : in.parts)
    if (p.partition == partition) return p;
  // A source reports a partition before its records; a single-partition
  // source (files) may not name it: its records belong to the first.
  return in.parts.front();
}

Status EventReader::Open() {
  for (auto& in_ptr : inputs_) {
    Input& in = *in_ptr;
    const StreamConfig& sc = *in.config;
    if (!in.source) {
      // Nothing of this stream to read here.
      in.ended = true;
      in.parts.push_back(Part{0, watermarks_.AddInput(sc.watermark, true)});
      watermarks_.input(in.parts.back().wm_input).OnEnd();
      continue;
    }
    DecoderOptions dopt;
    dopt.schema = &sc.schema;
    dopt.time_field = sc.schema.IndexOf(sc.time_field);
    dopt.required.push_back(dopt.time_field);
    dopt.min_time = sc.min_time;
    dopt.max_time = sc.max_time;
    for (const auto& k : sc.key) dopt.required.push_back(sc.schema.IndexOf(k));
    for (const auto& k : sc.key) in.key_fields.push_back(sc.schema.IndexOf(k));
    for (const Keying& keying : pipeline_.keyings) {
      if (keying.stream != in.index) continue;
      for (int f : keying.fields)
        if (std::find(dopt.required.begin(), dopt.required.end(), f) == dopt.required.end())
          dopt.required.push_back(f);
    }
    in.decoder = sc.source.is_csv() ? MakeCsvDecoder(dopt) : MakeJsonlDecoder(dopt);
    if (!sc.source.is_csv() && !sc.punctuation_field.empty())
      in.punctuation_key = "\"" + sc.punctuation_field + "\"";
    if (!sc.watermark_field.empty()) in.watermark_field = sc.schema.IndexOf(sc.watermark_field);
    CEPHEUS_RETURN_IF_ERROR(in.source->Open());
    TakeAssignment(in);
    if (in.parts.empty())
      return Status::Internal("stream '" + sc.name + "': its source assigned no partition");
  }
  stream_counts_.assign(pipeline_.config.streams.size(), StreamCounts{});
  return Status::Ok();
}

std::vector<Watermark> EventReader::StreamWatermarks(int64_t now_ms) const {
  std::vector<Watermark> out;
  for (const auto& in : inputs_) {
    Watermark w = Watermark::Max();
    for (const Part& p : in->parts) w = std::min(w, watermarks_.input(p.wm_input).Current(now_ms));
    if (in->parts.empty() && !in->ended) w = Watermark::Min();
    out.push_back(w);
  }
  return out;
}

std::vector<std::vector<io::PartitionLag>> EventReader::SourceLags() const {
  std::vector<std::vector<io::PartitionLag>> out(inputs_.size());
  for (size_t i = 0; i < inputs_.size(); ++i)
    if (inputs_[i]->source) inputs_[i]->source->Lags(&out[i]);
  return out;
}

uint64_t EventReader::bytes_read() const {
  uint64_t b = 0;
  for (const auto& in : inputs_)
    if (in->source) b += in->source->bytes_read();
  return b;
}

uint64_t EventReader::total_bytes() const {
  uint64_t b = 0;
  for (const auto& in : inputs_)
    if (in->source) b += in->source->total_bytes();
  return b;
}

Status EventReader::OnCheckpointComplete(uint64_t checkpoint_id) {
  for (const auto& in : inputs_)
    if (in->source) CEPHEUS_RETURN_IF_ERROR(in->source->OnCheckpointComplete(checkpoint_id));
  return Status::Ok();
}

bool EventReader::stopped_early() const {
  bool any = false;
  for (const auto& in : inputs_) {
    if (!in->source) continue;
    if (!in->ended) return false;
    any |= in->source->stops_early();
  }
  return any;
}

Watermark EventReader::UpdateWatermark() { return watermarks_.Update(clock_->NowMillis()); }

Result<EventReader::Turn> EventReader::ReadTurn(std::vector<ReadEvent>* events,
                                                io::RecordBatch* dead, io::RecordBatch* late) {
  const int64_t now = clock_->NowMillis();
  bool progress = false, all_ended = true;
  for (auto& in_ptr : inputs_) {
    Input& in = *in_ptr;
    if (in.ended) continue;
    all_ended = false;
    auto polled = in.source->Poll(options_.lines_per_turn, &batch_);
    if (!polled.ok()) return polled.status();
    TakeAssignment(in);
    switch (polled.value()) {
      case io::Source::Polled::kNothing:
        continue;
      case io::Source::Polled::kEnd:
        progress = true;
        // A source that stops early has not seen the end of its partition:
        // its watermark stays where it is (the next run goes on from there).
        if (!in.source->stops_early())
          watermarks_.input(PartOf(in, batch_.partition).wm_input).OnEnd();
        in.ended = in.source->ended();
        continue;
      case io::Source::Polled::kMore:
        progress = true;
        CEPHEUS_RETURN_IF_ERROR(ReadBatch(in, now, events, dead, late));
        continue;
    }
  }
  if (all_ended) return Turn::kEnd;
  return progress ? Turn::kProgress : Turn::kIdle;
}

Status EventReader::ReadBatch(Input& in, int64_t now, std::vector<ReadEvent>* events,
                              io::RecordBatch* dead, io::RecordBatch* late) {
  Part& part = PartOf(in, batch_.partition);
  texts_.clear();
  metas_.clear();
  punctuations_.clear();
  for (const io::SourceRecord& rec : batch_.records) {
    if (rec.header) {
      Status hs = in.decoder->SetHeader(rec.payload);
      if (!hs.ok())
        return Status::InvalidArgument(std::string(in.source->origin(part.partition)) + ":" +
                                       std::to_string(rec.line) + ": " + hs.message());
      continue;
    }
    if (!in.punctuation_key.empty() &&
        rec.payload.find(in.punctuation_key) != std::string_view::npos) {
      if (auto wm = ReadPunctuation(rec.payload, in.config->punctuation_field)) {
        punctuations_.push_back(Punctuation{texts_.size(), &rec, std::move(*wm)});
        continue;
      }
    }
    texts_.push_back(rec.payload);
    metas_.push_back(&rec);
  }
  if (texts_.empty() && punctuations_.empty()) return Status::Ok();
  if (in.source->positioned()) {
    positions_.clear();
    for (const auto* m : metas_) positions_.push_back(m->position);
  }
  if (!texts_.empty()) {
    // The records lie in one buffer: what may be read after the last event
    // is what may be read after the batch plus the records that follow it.
    const std::string_view last = batch_.records.back().payload;
    const size_t readable =
        batch_.readable_after + static_cast<size_t>((last.data() + last.size()) -
                                                    (texts_.back().data() + texts_.back().size()));
    DecodeBatch(*in.decoder, texts_, readable, &seq_, &decoded_,
                in.source->positioned() ? &positions_ : nullptr);
  }
  StreamCounts& sc = stream_counts_[static_cast<size_t>(in.index)];
  sc.records += texts_.size();
  const uint64_t dead_before = counts_.dead_letters, late_before = counts_.late;
  auto& wm_input = watermarks_.input(part.wm_input);
  size_t next_punctuation = 0;
  for (size_t i = 0; i < texts_.size(); ++i) {
    while (next_punctuation < punctuations_.size() && punctuations_[next_punctuation].before == i)
      ApplyPunctuation(in, part, punctuations_[next_punctuation++], now, dead);
    ++counts_.records_read;
    const io::SourceRecord& meta = *metas_[i];
    if (!decoded_[i].row) {
      AppendDeadLetter(in, part, meta, decoded_[i].error, dead);
      continue;
    }
    RowPtr row = std::move(decoded_[i].row);
    const EventTime ts = row->time();
    if ((options_.from && ts < *options_.from) || (options_.to && ts >= *options_.to)) {
      ++counts_.out_of_range;
      continue;
    }
    if (options_.judge_lateness && in.config->max_future_skew.millis() > 0 &&
        ts > EventTime::FromMillis(now) + in.config->max_future_skew) {
      AppendDeadLetter(in, part, meta,
                       "event time " + FormatRfc3339(ts) + " is more than " +
                           FormatDuration(in.config->max_future_skew) +
                           " ahead of the wall clock (event_time.max_future_skew)",
                       dead);
      continue;
    }
    if (options_.judge_lateness) {
      const Watermark wm = watermarks_.current();
      if (wm.IsLate(ts)) {
        ++counts_.late;
        RenderLate(RecordOrigin{in.config->name, in.source->origin(part.partition), meta.line,
                                meta.offset},
                   KeyView(*row, in.key_fields, in.config->schema, &in.key_scratch), *row,
                   in.config->schema, wm, late);
        continue;
      }
      wm_input.OnEvent(ts, now);
      if (in.watermark_field >= 0 && !row->IsNull(static_cast<size_t>(in.watermark_field)))
        wm_input.OnPunctuation(
            EventTime::FromMillis(row->GetInt(static_cast<size_t>(in.watermark_field))), now);
      watermarks_.Update(now);
    }
    ++counts_.events;
    events->push_back(ReadEvent{std::move(row), in.index});
  }
  while (next_punctuation < punctuations_.size())
    ApplyPunctuation(in, part, punctuations_[next_punctuation++], now, dead);
  sc.dead_letters += counts_.dead_letters - dead_before;
  sc.late += counts_.late - late_before;
  return Status::Ok();
}

void EventReader::ApplyPunctuation(Input& in, Part& part, const Punctuation& pu, int64_t now,
                                   io::RecordBatch* dead) {
  ++counts_.records_read;
  ++stream_counts_[static_cast<size_t>(in.index)].records;
  if (!pu.watermark.ok()) {
    AppendDeadLetter(in, part, *pu.rec, pu.watermark.status().message(), dead);
    return;
  }
  ++counts_.punctuations;
  // The complete (batch) mode has no watermark: a punctuation only counts.
  if (!options_.judge_lateness) return;
  watermarks_.input(part.wm_input).OnPunctuation(pu.watermark.value(), now);
  watermarks_.Update(now);
}

void EventReader::AppendDeadLetter(const Input& in, const Part& part, const io::SourceRecord& rec,
                                   const std::string& reason, io::RecordBatch* dead) {
  ++counts_.dead_letters;
  RenderDeadLetter(
      RecordOrigin{in.config->name, in.source->origin(part.partition), rec.line, rec.offset},
      reason, rec.payload, dead);
}

std::vector<std::string> BadInputWarnings(const PipelineConfig& config,
                                          const std::vector<StreamCounts>& counts) {
  std::vector<std::string> out;
  for (size_t i = 0; i < counts.size() && i < config.streams.size(); ++i) {
    const StreamCounts& c = counts[i];
    if (c.records < 100) continue;
    const double dead = static_cast<double>(c.dead_letters) / static_cast<double>(c.records);
    const double late = static_cast<double>(c.late) / static_cast<double>(c.records);
    if (dead + late <= config.warn_bad_input_ratio) continue;
    char pct[64];
    std::snprintf(pct, sizeof pct, "%.0f%% dead letters and %.0f%% late events", dead * 100,
                  late * 100);
    std::string hint = dead >= late ? "check the stream's format, schema and field types"
                                    : "check the time unit (epoch milliseconds) and "
                                      "max_out_of_orderness";
    out.push_back("stream '" + config.streams[i].name + "': " + pct + " of " +
                  std::to_string(c.records) + " records (above limits.warn_bad_input_ratio " +
                  std::to_string(static_cast<int>(config.warn_bad_input_ratio * 100)) +
                  "%): this is almost always a configuration error; " + hint);
  }
  return out;
}

void EventReader::WaitForInput(int ms) {
  std::vector<pollfd> fds;
  for (const auto& in : inputs_) {
    if (in->ended || !in->source) continue;
    if (in->source->has_buffered()) return;
    const int fd = in->source->wait_fd();
    if (fd >= 0) fds.push_back(pollfd{fd, POLLIN, 0});
  }
  if (fds.empty()) {
    struct timespec pause {
      0, static_cast<long>(ms) * 1000000L
    };
    nanosleep(&pause, nullptr);
    return;
  }
  ::poll(fds.data(), fds.size(), ms);
}

namespace {

// Format 3: per stream, its source's position, then the number of its
// partitions and, for each, its id and watermark. Format 2 (before
// partitions): the source's position, then the one input's watermark.
constexpr uint64_t kPositionFormat = 3;

void SaveInputWatermark(const timing::InputWatermark::Saved& w, std::string* out) {
  PutVarint(out, (w.ended ? 1 : 0) | (w.has_events ? 2 : 0) | (w.punctuation ? 4 : 0));
  PutSigned(out, w.max_ts.millis());
  PutSigned(out, w.last_event_wall_ms);
  if (w.punctuation) PutSigned(out, w.punctuation->millis());
}

bool RestoreInputWatermark(std::string_view* in, timing::InputWatermark::Saved* w) {
  uint64_t flags;
  int64_t max_ts, wall;
  if (!GetVarint(in, &flags) || !GetSigned(in, &max_ts) || !GetSigned(in, &wall)) return false;
  w->ended = flags & 1;
  w->has_events = flags & 2;
  w->max_ts = EventTime::FromMillis(max_ts);
  w->last_event_wall_ms = wall;
  w->punctuation.reset();
  if (flags & 4) {
    int64_t punctuation;
    if (!GetSigned(in, &punctuation)) return false;
    w->punctuation = EventTime::FromMillis(punctuation);
  }
  return true;
}

}  // namespace

std::string EventReader::SavePosition() const {
  std::string out;
  PutVarint(&out, kPositionFormat);
  PutVarint(&out, seq_);
  for (uint64_t c : {counts_.records_read, counts_.events, counts_.dead_letters, counts_.late,
                     counts_.out_of_range, counts_.punctuations})
    PutVarint(&out, c);
  PutSigned(&out, watermarks_.current().time().millis());
  PutVarint(&out, inputs_.size());
  for (const auto& in : inputs_) {
    if (in->source) in->source->SavePosition(&out);
    PutVarint(&out, in->parts.size());
    for (const Part& p : in->parts) {
      PutVarint(&out, static_cast<uint64_t>(p.partition));
      SaveInputWatermark(watermarks_.input(p.wm_input).Save(), &out);
    }
  }
  return out;
}

Status EventReader::RestorePosition(std::string_view saved) {
  auto bad = [] { return Status::Corruption("checkpoint: damaged reader position"); };
  uint64_t version, n;
  int64_t wm;
  if (!GetVarint(&saved, &version) || version < 1 || version > kPositionFormat ||
      !GetVarint(&saved, &seq_))
    return bad();
  for (uint64_t* c : {&counts_.records_read, &counts_.events, &counts_.dead_letters, &counts_.late,
                      &counts_.out_of_range})
    if (!GetVarint(&saved, c)) return bad();
  if (version >= 2 && !GetVarint(&saved, &counts_.punctuations)) return bad();
  if (!GetSigned(&saved, &wm) || !GetVarint(&saved, &n)) return bad();
  if (n != inputs_.size())
    return Status::InvalidArgument("checkpoint was taken with " + std::to_string(n) +
                                   " streams, the pipeline now has " +
                                   std::to_string(inputs_.size()));
  for (auto& in_ptr : inputs_) {
    Input& in = *in_ptr;
    if (!in.source) return Status::InvalidArgument("cannot restore a reader without sources");
    CEPHEUS_RETURN_IF_ERROR(in.source->RestorePosition(&saved));
    TakeAssignment(in);
    uint64_t parts = 1;
    if (version >= 3 && !GetVarint(&saved, &parts)) return bad();
    for (uint64_t i = 0; i < parts; ++i) {
      uint64_t partition = 0;
      if (version >= 3 && !GetVarint(&saved, &partition)) return bad();
      timing::InputWatermark::Saved w;
      if (!RestoreInputWatermark(&saved, &w)) return bad();
      // A partition that is no longer this source's: its watermark is moot.
      for (const Part& p : in.parts)
        if (p.partition == static_cast<int>(partition)) watermarks_.input(p.wm_input).Restore(w);
    }
  }
  watermarks_.RestoreCurrent(Watermark::At(EventTime::FromMillis(wm)));
  return Status::Ok();
}

}  // namespace cepheus::engine
