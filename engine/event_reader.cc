#include "engine/event_reader.h"

#include <poll.h>
#include <sys/stat.h>

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include "common/json.h"
#include "common/varint.h"
#include "engine/match_render.h"

namespace cepheus::engine {

struct EventReader::Input {
  const StreamConfig* config = nullptr;
  int index = 0;
  std::vector<std::string> files;
  std::vector<ReaderOptions::Range> ranges;  // when reading ranges (files unused)
  uint32_t file_index = 0;                   // of the range being read
  size_t next_file = 0;
  std::unique_ptr<LineReader> reader;
  std::unique_ptr<RecordDecoder> decoder;
  bool header_done = false;
  std::string header;  // the CSV header line of the current file
  bool ended = false;
  int wm_input = 0;
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

EventReader::EventReader(const CompiledPipeline& pipeline, ReaderOptions options)
    : pipeline_(pipeline),
      options_(std::move(options)),
      clock_(options_.clock ? options_.clock : &system_clock_) {}

EventReader::~EventReader() = default;

Status EventReader::OpenFile(Input& in) {
  cepheus::Result<std::unique_ptr<LineReader>> reader = Status::Internal("no input");
  if (!in.ranges.empty()) {
    const ReaderOptions::Range& r = in.ranges[in.next_file++];
    in.file_index = r.file_index;
    reader = r.end == UINT64_MAX && r.begin == 0 ? LineReader::Open(r.path)
                                                 : LineReader::OpenRange(r.path, r.begin, r.end);
  } else {
    reader = LineReader::Open(in.files[in.next_file++], options_.read_buffer_bytes);
  }
  if (!reader.ok())
    return Status::IoError("stream '" + in.config->name + "': " + reader.status().message());
  if (in.reader) finished_bytes_ += in.reader->raw_bytes_read();
  in.reader = std::move(reader.value());
  in.reader->set_quoted_records(in.config->source.is_csv());
  in.header_done = !in.decoder->wants_header();  // every CSV file has its header
  if (!in.header_done && !in.ranges.empty() && in.ranges[in.next_file - 1].begin > 0) {
    // A range after the first: the header is the file's first record.
    const std::string& path = in.ranges[in.next_file - 1].path;
    auto head = LineReader::Open(path);
    if (!head.ok()) return head.status();
    head.value()->set_quoted_records(true);
    std::string_view line;
    while (head.value()->Next(&line, 0) == LineReader::Result::kLine) {
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
      in.header.assign(line);
      Status hs = in.decoder->SetHeader(line);
      if (!hs.ok())
        return Status::InvalidArgument(path + ":" + std::to_string(head.value()->line_number()) +
                                       ": " + hs.message());
      in.header_done = true;
      break;
    }
    if (!head.value()->error().ok()) return head.value()->error();
  }
  return Status::Ok();
}

Status EventReader::Open() {
  for (size_t s = 0; s < pipeline_.config.streams.size(); ++s) {
    const StreamConfig& sc = pipeline_.config.streams[s];
    auto in = std::make_unique<Input>();
    in->config = &sc;
    in->index = static_cast<int>(s);
    if (!options_.ranges.empty() && (s >= options_.ranges.size() || options_.ranges[s].empty())) {
      // Reading ranges, none of this stream's: nothing to read here.
      in->ended = true;
      in->wm_input = watermarks_.AddInput(sc.watermark, true);
      watermarks_.input(in->wm_input).OnEnd();
      inputs_.push_back(std::move(in));
      continue;
    }
    if (s < options_.ranges.size() && !options_.ranges[s].empty()) {
      in->ranges = options_.ranges[s];
      for (const auto& r : in->ranges) {
        struct stat st;
        if (r.end != UINT64_MAX)
          total_bytes_ += r.end - r.begin;
        else if (::stat(r.path.c_str(), &st) == 0)
          total_bytes_ += static_cast<uint64_t>(st.st_size);
      }
    } else {
      in->files = s < options_.files.size() && !options_.files[s].empty()
                      ? options_.files[s]
                      : std::vector<std::string>{sc.source.path};
      for (const auto& f : in->files) {
        struct stat st;
        if (f != "-" && ::stat(f.c_str(), &st) == 0 && S_ISREG(st.st_mode))
          total_bytes_ += static_cast<uint64_t>(st.st_size);
      }
    }
    DecoderOptions dopt;
    dopt.schema = &sc.schema;
    dopt.time_field = sc.schema.IndexOf(sc.time_field);
    dopt.required.push_back(dopt.time_field);
    dopt.min_time = sc.min_time;
    dopt.max_time = sc.max_time;
    for (const auto& k : sc.key) dopt.required.push_back(sc.schema.IndexOf(k));
    for (const Keying& keying : pipeline_.keyings) {
      if (keying.stream != in->index) continue;
      for (int f : keying.fields)
        if (std::find(dopt.required.begin(), dopt.required.end(), f) == dopt.required.end())
          dopt.required.push_back(f);
    }
    in->decoder = sc.source.is_csv() ? MakeCsvDecoder(dopt) : MakeJsonlDecoder(dopt);
    if (!sc.source.is_csv() && !sc.punctuation_field.empty())
      in->punctuation_key = "\"" + sc.punctuation_field + "\"";
    if (!sc.watermark_field.empty()) in->watermark_field = sc.schema.IndexOf(sc.watermark_field);
    CEPHEUS_RETURN_IF_ERROR(OpenFile(*in));
    in->wm_input = watermarks_.AddInput(sc.watermark, in->reader->bounded());
    inputs_.push_back(std::move(in));
  }
  stream_counts_.assign(pipeline_.config.streams.size(), StreamCounts{});
  return Status::Ok();
}

uint64_t EventReader::bytes_read() const {
  uint64_t b = finished_bytes_;
  for (const auto& in : inputs_)
    if (in->reader) b += in->reader->raw_bytes_read();
  return b;
}

Watermark EventReader::UpdateWatermark() { return watermarks_.Update(clock_->NowMillis()); }

Result<EventReader::Turn> EventReader::ReadTurn(std::vector<ReadEvent>* events, std::string* dead,
                                                std::string* late) {
  const int64_t now = clock_->NowMillis();
  bool progress = false, all_ended = true;
  for (auto& in_ptr : inputs_) {
    Input& in = *in_ptr;
    if (in.ended) continue;
    all_ended = false;
    lines_.clear();
    LineReader::Result r = in.reader->NextLines(options_.lines_per_turn, 0, &lines_);
    if (r == LineReader::Result::kTimeout) continue;
    if (r == LineReader::Result::kError) return in.reader->error();
    if (r == LineReader::Result::kEnd) {
      progress = true;
      if (in.next_file < NumFiles(in)) {
        CEPHEUS_RETURN_IF_ERROR(OpenFile(in));
      } else {
        in.ended = true;
        watermarks_.input(in.wm_input).OnEnd();
      }
      continue;
    }
    progress = true;
    texts_.clear();
    metas_.clear();
    punctuations_.clear();
    for (const LineReader::Line& l : lines_) {
      if (l.text.find_first_not_of(" \t") == std::string_view::npos) continue;
      if (!in.header_done) {
        in.header.assign(l.text);
        Status hs = in.decoder->SetHeader(l.text);
        if (!hs.ok())
          return Status::InvalidArgument(in.reader->name() + ":" + std::to_string(l.number) + ": " +
                                         hs.message());
        in.header_done = true;
        continue;
      }
      if (!in.punctuation_key.empty() &&
          l.text.find(in.punctuation_key) != std::string_view::npos) {
        if (auto wm = ReadPunctuation(l.text, in.config->punctuation_field)) {
          punctuations_.push_back(Punctuation{texts_.size(), &l, std::move(*wm)});
          continue;
        }
      }
      texts_.push_back(l.text);
      metas_.push_back(&l);
    }
    if (texts_.empty() && punctuations_.empty()) continue;
    if (!in.ranges.empty()) {
      positions_.clear();
      for (const auto* m : metas_) positions_.push_back(InputPosition(in.file_index, m->offset));
    }
    if (!texts_.empty())
      DecodeBatch(*in.decoder, texts_, in.reader->readable_after(texts_.back()), &seq_, &decoded_,
                  in.ranges.empty() ? nullptr : &positions_);
    StreamCounts& sc = stream_counts_[static_cast<size_t>(in.index)];
    sc.records += texts_.size();
    const uint64_t dead_before = counts_.dead_letters, late_before = counts_.late;
    size_t next_punctuation = 0;
    for (size_t i = 0; i < texts_.size(); ++i) {
      while (next_punctuation < punctuations_.size() && punctuations_[next_punctuation].before == i)
        ApplyPunctuation(in, punctuations_[next_punctuation++], now, dead);
      ++counts_.records_read;
      const LineReader::Line& meta = *metas_[i];
      if (!decoded_[i].row) {
        AppendDeadLetter(in, meta, decoded_[i].error, texts_[i], dead);
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
        AppendDeadLetter(in, meta,
                         "event time " + FormatRfc3339(ts) + " is more than " +
                             FormatDuration(in.config->max_future_skew) +
                             " ahead of the wall clock (event_time.max_future_skew)",
                         texts_[i], dead);
        continue;
      }
      if (options_.judge_lateness) {
        const Watermark wm = watermarks_.current();
        if (wm.IsLate(ts)) {
          ++counts_.late;
          JsonObject o(*late);
          o.String("stream", in.config->name);
          o.String("source", in.reader->name());
          o.Int("line", static_cast<int64_t>(meta.number));
          o.Int("offset", static_cast<int64_t>(meta.offset));
          o.String("event_time", FormatRfc3339(ts));
          o.String("watermark", FormatRfc3339(wm.time()));
          o.Key("event");
          AppendRowJson(late, *row, in.config->schema);
          o.End();
          late->push_back('\n');
          continue;
        }
        watermarks_.input(in.wm_input).OnEvent(ts, now);
        if (in.watermark_field >= 0 && !row->IsNull(static_cast<size_t>(in.watermark_field)))
          watermarks_.input(in.wm_input)
              .OnPunctuation(
                  EventTime::FromMillis(row->GetInt(static_cast<size_t>(in.watermark_field))), now);
        watermarks_.Update(now);
      }
      ++counts_.events;
      events->push_back(ReadEvent{std::move(row), in.index});
    }
    while (next_punctuation < punctuations_.size())
      ApplyPunctuation(in, punctuations_[next_punctuation++], now, dead);
    sc.dead_letters += counts_.dead_letters - dead_before;
    sc.late += counts_.late - late_before;
  }
  if (all_ended) return Turn::kEnd;
  return progress ? Turn::kProgress : Turn::kIdle;
}

void EventReader::ApplyPunctuation(Input& in, const Punctuation& pu, int64_t now,
                                   std::string* dead) {
  ++counts_.records_read;
  ++stream_counts_[static_cast<size_t>(in.index)].records;
  if (!pu.watermark.ok()) {
    AppendDeadLetter(in, *pu.meta, pu.watermark.status().message(), pu.meta->text, dead);
    return;
  }
  ++counts_.punctuations;
  // The complete (batch) mode has no watermark: a punctuation only counts.
  if (!options_.judge_lateness) return;
  watermarks_.input(in.wm_input).OnPunctuation(pu.watermark.value(), now);
  watermarks_.Update(now);
}

void EventReader::AppendDeadLetter(const Input& in, const LineReader::Line& meta,
                                   const std::string& reason, std::string_view record,
                                   std::string* dead) {
  ++counts_.dead_letters;
  JsonObject o(*dead);
  o.String("stream", in.config->name);
  o.String("source", in.reader->name());
  if (meta.number)
    o.Int("line", static_cast<int64_t>(meta.number));
  else
    o.Raw("line", "null");  // unknown when a file is read in ranges
  o.Int("offset", static_cast<int64_t>(meta.offset));
  o.String("reason", reason);
  // JSON output is UTF-8: invalid bytes show as U+FFFD in `record`, and the
  // exact bytes are kept in `record_base64`.
  o.String("record", record);
  if (!IsValidUtf8(record)) {
    std::string exact;
    AppendBase64(exact, record);
    o.String("record_base64", exact);
  }
  o.End();
  dead->push_back('\n');
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
    if (in->ended || !in->reader || in->reader->bounded()) continue;
    if (in->reader->has_buffered()) return;
    fds.push_back(pollfd{in->reader->fd(), POLLIN, 0});
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

size_t EventReader::NumFiles(const Input& in) const {
  return in.ranges.empty() ? in.files.size() : in.ranges.size();
}

std::string EventReader::SavePosition() const {
  std::string out;
  PutVarint(&out, 2);  // format version (2: punctuations)
  PutVarint(&out, seq_);
  for (uint64_t c : {counts_.records_read, counts_.events, counts_.dead_letters, counts_.late,
                     counts_.out_of_range, counts_.punctuations})
    PutVarint(&out, c);
  PutSigned(&out, watermarks_.current().time().millis());
  PutVarint(&out, inputs_.size());
  for (const auto& in : inputs_) {
    PutVarint(&out, in->next_file);
    const std::string& file =
        in->files.empty() || in->next_file == 0 ? std::string() : in->files[in->next_file - 1];
    PutVarint(&out, file.size());
    out += file;
    PutVarint(&out, in->ended ? 1 : 0);
    PutVarint(&out, in->reader ? in->reader->position() : 0);
    PutVarint(&out, in->reader ? in->reader->line_number() : 0);
    PutVarint(&out, in->header_done ? 1 : 0);
    PutVarint(&out, in->header.size());
    out += in->header;
    const auto w = watermarks_.input(in->wm_input).Save();
    PutVarint(&out, (w.ended ? 1 : 0) | (w.has_events ? 2 : 0) | (w.punctuation ? 4 : 0));
    PutSigned(&out, w.max_ts.millis());
    PutSigned(&out, w.last_event_wall_ms);
    if (w.punctuation) PutSigned(&out, w.punctuation->millis());
  }
  return out;
}

Status EventReader::RestorePosition(std::string_view saved) {
  auto bad = [] { return Status::Corruption("checkpoint: damaged reader position"); };
  uint64_t version, n;
  int64_t wm;
  if (!GetVarint(&saved, &version) || version < 1 || version > 2 || !GetVarint(&saved, &seq_))
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
    uint64_t next_file, flen, ended, pos, line, header_done, hlen, wflags;
    int64_t max_ts, wall;
    if (!GetVarint(&saved, &next_file) || !GetVarint(&saved, &flen) || flen > saved.size())
      return bad();
    const std::string file(saved.substr(0, flen));
    saved.remove_prefix(flen);
    if (!GetVarint(&saved, &ended) || !GetVarint(&saved, &pos) || !GetVarint(&saved, &line) ||
        !GetVarint(&saved, &header_done) || !GetVarint(&saved, &hlen) || hlen > saved.size())
      return bad();
    in.header.assign(saved.substr(0, hlen));
    saved.remove_prefix(hlen);
    if (!GetVarint(&saved, &wflags) || !GetSigned(&saved, &max_ts) || !GetSigned(&saved, &wall))
      return bad();
    timing::InputWatermark::Saved w;
    w.ended = wflags & 1;
    w.has_events = wflags & 2;
    w.max_ts = EventTime::FromMillis(max_ts);
    w.last_event_wall_ms = wall;
    if (wflags & 4) {
      int64_t punctuation;
      if (!GetSigned(&saved, &punctuation)) return bad();
      w.punctuation = EventTime::FromMillis(punctuation);
    }
    watermarks_.input(in.wm_input).Restore(w);
    if (!in.ranges.empty()) return Status::InvalidArgument("cannot restore a ranged reader");
    if (next_file == 0 || next_file > in.files.size() || in.files[next_file - 1] != file)
      return Status::InvalidArgument("stream '" + in.config->name +
                                     "': the checkpoint was reading '" + file +
                                     "', which is not among the stream's inputs now");
    in.ended = ended != 0;
    if (in.ended) {
      in.reader.reset();
      continue;
    }
    if (next_file != in.next_file) {
      in.next_file = static_cast<size_t>(next_file) - 1;
      CEPHEUS_RETURN_IF_ERROR(OpenFile(in));
    }
    Status s = in.reader->SkipTo(pos, line);
    if (!s.ok()) {
      if (in.reader->bounded()) return s;
      spdlog::warn("stream '{}': {}; continuing with the data that arrives next", in.config->name,
                   s.message());
    }
    in.header_done = header_done != 0;
    if (in.header_done && in.decoder->wants_header())
      CEPHEUS_RETURN_IF_ERROR(in.decoder->SetHeader(in.header));
  }
  watermarks_.RestoreCurrent(Watermark::At(EventTime::FromMillis(wm)));
  return Status::Ok();
}

}  // namespace cepheus::engine
