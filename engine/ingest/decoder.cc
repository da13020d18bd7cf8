#include "engine/ingest/decoder.h"

#include <simdjson.h>

#include "common/json.h"

#include <charconv>
#include <cstring>

namespace cepheus::engine {

bool ParseTimestampText(std::string_view text, int64_t* ms) {
  int64_t v;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc() && p == text.data() + text.size()) {
    *ms = v;
    return true;
  }
  auto t = ParseRfc3339(text);
  if (!t) return false;
  *ms = t->millis();
  return true;
}

namespace {

// Shared tail of both decoders: required fields present, time set, row built.
bool Finish(const DecoderOptions& o, RowBuilder& b, uint64_t seq, RowPtr* out, std::string* error) {
  for (int f : o.required) {
    if (!b.IsSet(static_cast<size_t>(f))) {
      *error = "missing " + std::string(f == o.time_field ? "event time" : "key") + " field '" +
               o.schema->field(static_cast<size_t>(f)).name + "'";
      return false;
    }
  }
  // The time slot holds epoch ms for both timestamp and int fields.
  const EventTime t = EventTime::FromMillis(b.GetInt(static_cast<size_t>(o.time_field)));
  if (t < o.min_time || t >= o.max_time) {
    // (Years 1 to 9999 print as RFC 3339; others only as milliseconds.)
    const bool printable = t.millis() >= -62135596800000 && t.millis() < 253402300800000;
    *error = "event time " + std::to_string(t.millis()) +
             (printable ? " (" + FormatRfc3339(t) + ")" : std::string()) +
             " is outside the accepted range [" + FormatRfc3339(o.min_time) + ", " +
             FormatRfc3339(o.max_time) + ") (event_time.min_time / max_time)";
    return false;
  }
  *out = b.Build(t, seq);
  return true;
}

// Where a JSON record goes wrong, for records simdjson rejects as incomplete:
// an object that closes before the end of the line is followed by junk; one
// that never closes is cut short. Scans strings and nesting only.
std::string IncompleteJsonReason(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) {
        const size_t rest = text.find_first_not_of(" \t\r", i + 1);
        if (rest != std::string_view::npos)
          return "invalid JSON: unexpected text after the object (at byte " + std::to_string(rest) +
                 ")";
        break;
      }
    }
  }
  if (in_string) return "invalid JSON: the record ends inside a string (missing '\"')";
  if (depth > 0)
    return "invalid JSON: the record ends before its object closes (missing '}' or ']')";
  return "invalid JSON: malformed object";
}

const char* JsonTypeName(simdjson::ondemand::json_type t) {
  switch (t) {
    case simdjson::ondemand::json_type::array:
      return "an array";
    case simdjson::ondemand::json_type::object:
      return "an object";
    case simdjson::ondemand::json_type::number:
      return "a number";
    case simdjson::ondemand::json_type::string:
      return "a string";
    case simdjson::ondemand::json_type::boolean:
      return "a boolean";
    case simdjson::ondemand::json_type::null:
      return "null";
  }
  return "?";
}

class JsonlDecoder final : public RecordDecoder {
 public:
  explicit JsonlDecoder(DecoderOptions o) : o_(std::move(o)), builder_(o_.schema->size()) {}

  bool Decode(std::string_view text, uint64_t seq, RowPtr* out, std::string* error,
              size_t readable_after) override {
    simdjson::padded_string_view view;
    if (readable_after >= simdjson::SIMDJSON_PADDING) {
      view = simdjson::padded_string_view(text.data(), text.size(), text.size() + readable_after);
    } else {
      buf_.assign(text.data(), text.size());
      buf_.resize(text.size() + simdjson::SIMDJSON_PADDING);
      view = simdjson::padded_string_view(buf_.data(), text.size(), buf_.size());
    }
    builder_.Reset();
    text_ = text;
    simdjson::ondemand::document doc;
    if (auto err = parser_.iterate(view).get(doc)) return Fail(error, err);
    if (!ReadObject(doc, error)) return false;
    // Anything after the object (another value, stray words) is junk.
    const char* rest;
    if (!doc.current_location().get(rest)) {
      *error = "invalid JSON: unexpected text after the object";
      return false;
    }
    return Finish(o_, builder_, seq, out, error);
  }

  size_t DecodeFast(const std::vector<std::string_view>& lines, size_t readable_after, uint64_t seq,
                    std::vector<DecodedRecord>* out,
                    const std::vector<uint64_t>* line_seqs) override {
    if (lines.size() < 2 || readable_after < simdjson::SIMDJSON_PADDING) return 0;
    const char* base = lines.front().data();
    const size_t len = static_cast<size_t>(lines.back().data() + lines.back().size() - base);
    simdjson::ondemand::document_stream stream;
    if (many_.iterate_many(base, len, std::max<size_t>(len, 1 << 20)).get(stream)) return 0;
    // A document is accepted for line i only once the next document is seen
    // to start exactly at line i+1 (or the stream ends cleanly after line i):
    // a line with trailing junk or a document spanning lines is left to Decode().
    size_t li = 0, done = 0;
    std::string error;
    for (auto it = stream.begin(); it != stream.end(); ++it) {
      if (li >= lines.size() || it.current_index() != static_cast<size_t>(lines[li].data() - base))
        break;
      done = li;
      simdjson::ondemand::document_reference doc;
      if ((*it).get(doc)) break;
      builder_.Reset();
      text_ = lines[li];  // for error reasons (Decode() redoes a failed line anyway)
      if (!ReadObject(doc, &error)) break;
      // Anything after the object on the same line: let Decode() report it.
      const char* next_token;
      if (!doc.current_location().get(next_token) &&
          next_token < lines[li].data() + lines[li].size())
        break;
      DecodedRecord& rec = (*out)[li];
      if (!Finish(o_, builder_, line_seqs ? (*line_seqs)[li] : seq + li, &rec.row, &rec.error))
        break;
      ++li;
    }
    if (li == lines.size() && stream.truncated_bytes() == 0) done = li;
    // Rows past `done` were not vouched for: Decode() redoes them.
    for (size_t i = done; i < lines.size() && i < li; ++i) (*out)[i].row = RowPtr();
    return done;
  }

 private:
  bool Fail(std::string* error, simdjson::error_code err) {
    if (err == simdjson::INCOMPLETE_ARRAY_OR_OBJECT || err == simdjson::TAPE_ERROR)
      *error = IncompleteJsonReason(text_);
    else if (err == simdjson::UTF8_ERROR)
      *error = "invalid JSON: the record is not valid UTF-8";
    else
      *error = std::string("invalid JSON: ") + simdjson::error_message(err);
    return false;
  }

  // Reads the fields of the object `doc` into builder_.
  template <typename Doc>
  bool ReadObject(Doc& doc, std::string* error) {
    simdjson::ondemand::object obj;
    if (auto err = doc.get_object().get(obj)) {
      if (err != simdjson::INCORRECT_TYPE) return Fail(error, err);
      *error = "invalid JSON: a record must be a JSON object";
      return false;
    }
    // Keys are compared raw (without unescaping); records usually list
    // fields in schema order, so the next schema field is tried first.
    size_t guess = 0;
    const size_t nfields = o_.schema->size();
    for (auto field_result : obj) {
      simdjson::ondemand::field field;
      if (auto err = std::move(field_result).get(field)) return Fail(error, err);
      simdjson::ondemand::raw_json_string key = field.key();
      int idx = -1;
      for (size_t k = 0; k < nfields; ++k) {
        size_t i = (guess + k) % nfields;
        if (key.unsafe_is_equal(o_.schema->field(i).name)) {
          idx = static_cast<int>(i);
          guess = i + 1;
          break;
        }
      }
      if (idx < 0) continue;  // fields outside the schema are ignored
      if (!ReadValue(static_cast<size_t>(idx), field.value(), error)) return false;
    }
    return true;
  }

  // Why field i's value `v` could not be read as `want` (`err`: the error
  // of that read): a value of the wrong type, or one of the right type that
  // does not fit (a number out of range, a string with a bad escape).
  bool TypeError(size_t i, const char* want, simdjson::ondemand::value& v, std::string* error,
                 simdjson::error_code err = simdjson::INCORRECT_TYPE) {
    const std::string& name = o_.schema->field(i).name;
    simdjson::ondemand::json_type t;
    if (v.type().get(t)) {
      *error = "field '" + name + "': expected " + want + ", got invalid JSON";
      return false;
    }
    std::string_view raw = v.raw_json_token();
    while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t')) raw.remove_suffix(1);
    if (raw.size() > 40) raw = raw.substr(0, 40);
    if (t == simdjson::ondemand::json_type::number) {
      // An integer too big for 64 bits reads as a wrong type in simdjson.
      const bool integer_syntax = raw.find_first_not_of("-0123456789") == std::string_view::npos;
      if (err == simdjson::NUMBER_OUT_OF_RANGE || err == simdjson::NUMBER_ERROR ||
          (integer_syntax && std::string_view(want).find("integer") != std::string_view::npos))
        *error =
            "field '" + name + "': the number " + std::string(raw) + " is out of range for " + want;
      else
        *error = "field '" + name + "': expected " + want + ", got the number " + std::string(raw);
      return false;
    }
    if (t == simdjson::ondemand::json_type::string && err != simdjson::INCORRECT_TYPE) {
      *error = "field '" + name + "': the string " + std::string(raw) +
               " has an invalid escape or is not valid UTF-8";
      return false;
    }
    *error = "field '" + name + "': expected " + want + ", got " + JsonTypeName(t);
    return false;
  }

  bool ReadValue(size_t i, simdjson::ondemand::value& v, std::string* error) {
    bool is_null = false;
    if (!v.is_null().get(is_null) && is_null) return true;  // stays null
    switch (o_.schema->field(i).type) {
      case FieldType::kInt: {
        int64_t x;
        if (auto err = v.get_int64().get(x)) return TypeError(i, "an integer", v, error, err);
        builder_.SetInt(i, x);
        return true;
      }
      case FieldType::kDouble: {
        double x;
        if (auto err = v.get_double().get(x)) return TypeError(i, "a number", v, error, err);
        builder_.SetDouble(i, x);
        return true;
      }
      case FieldType::kString: {
        std::string_view x;
        if (auto err = v.get_string().get(x)) return TypeError(i, "a string", v, error, err);
        builder_.SetString(i, x);
        return true;
      }
      case FieldType::kBool: {
        bool x;
        if (v.get_bool().get(x)) return TypeError(i, "true or false", v, error);
        builder_.SetBool(i, x);
        return true;
      }
      case FieldType::kTimestamp: {
        simdjson::ondemand::json_type t;
        if (v.type().get(t)) return TypeError(i, "a timestamp", v, error);
        if (t == simdjson::ondemand::json_type::number) {
          int64_t x;
          if (v.get_int64().get(x)) {
            double d;
            if (auto err = v.get_double().get(d))
              return TypeError(i, "epoch milliseconds", v, error, err);
            // Converting a double outside int64's range is undefined: such
            // a time is refused here (the range check refuses the rest).
            if (!(d > -9.2e18 && d < 9.2e18))
              return TypeError(i, "epoch milliseconds", v, error, simdjson::NUMBER_OUT_OF_RANGE);
            x = static_cast<int64_t>(d);
          }
          builder_.SetInt(i, x);
          return true;
        }
        std::string_view s;
        if (v.get_string().get(s))
          return TypeError(i, "an RFC 3339 time or epoch milliseconds", v, error);
        int64_t ms;
        if (!ParseTimestampText(s, &ms)) {
          *error = "field '" + o_.schema->field(i).name + "': '" + std::string(s) +
                   "' is not an RFC 3339 time or epoch milliseconds";
          return false;
        }
        builder_.SetInt(i, ms);
        return true;
      }
    }
    return true;
  }

  DecoderOptions o_;
  RowBuilder builder_;
  std::string_view text_;  // the record being decoded, for error reasons
  simdjson::ondemand::parser parser_;
  simdjson::ondemand::parser many_;  // for DecodeFast's document streams
  std::string buf_;
};

class CsvDecoder final : public RecordDecoder {
 public:
  explicit CsvDecoder(DecoderOptions o) : o_(std::move(o)), builder_(o_.schema->size()) {}
  bool wants_header() const override { return true; }

  Status SetHeader(std::string_view line) override {
    std::vector<std::string> cols;
    std::string error;
    if (!Split(line, &cols, &error)) return Status::InvalidArgument("CSV header: " + error);
    column_field_.clear();
    std::vector<bool> seen(o_.schema->size(), false);
    for (const auto& c : cols) {
      int idx = o_.schema->IndexOf(c);
      column_field_.push_back(idx);
      if (idx >= 0) seen[static_cast<size_t>(idx)] = true;
    }
    for (int r : o_.required)
      if (!seen[static_cast<size_t>(r)])
        return Status::InvalidArgument("CSV header has no column '" +
                                       o_.schema->field(static_cast<size_t>(r)).name +
                                       "', which every record needs");
    return Status::Ok();
  }

  bool Decode(std::string_view text, uint64_t seq, RowPtr* out, std::string* error,
              size_t) override {
    // Records are UTF-8, as in JSON lines (outputs are JSON).
    size_t bad = 0;
    if (!IsValidUtf8(text, &bad)) {
      *error = "CSV record is not valid UTF-8 (byte " + std::to_string(bad) + ")";
      return false;
    }
    if (!Split(text, &cols_, error)) return false;
    if (cols_.size() != column_field_.size()) {
      *error = "CSV record has " + std::to_string(cols_.size()) + " columns, the header has " +
               std::to_string(column_field_.size());
      return false;
    }
    builder_.Reset();
    for (size_t c = 0; c < cols_.size(); ++c) {
      int idx = column_field_[c];
      if (idx < 0 || cols_[c].empty()) continue;
      if (!ReadText(static_cast<size_t>(idx), cols_[c], error)) return false;
    }
    return Finish(o_, builder_, seq, out, error);
  }

 private:
  static bool Split(std::string_view line, std::vector<std::string>* cols, std::string* error) {
    cols->clear();
    std::string cur;
    bool quoted = false, was_quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
      char c = line[i];
      if (quoted) {
        if (c == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            cur.push_back('"');
            ++i;
          } else {
            quoted = false;
          }
        } else {
          cur.push_back(c);
        }
      } else if (c == '"' && cur.empty() && !was_quoted) {
        quoted = was_quoted = true;
      } else if (c == ',') {
        cols->push_back(std::move(cur));
        cur.clear();
        was_quoted = false;
      } else if (c == '\r' && i + 1 == line.size()) {
        break;
      } else {
        cur.push_back(c);
      }
    }
    if (quoted) {
      *error = "CSV record has an unterminated quoted field";
      return false;
    }
    cols->push_back(std::move(cur));
    return true;
  }

  bool ReadText(size_t i, const std::string& s, std::string* error) {
    const Field& f = o_.schema->field(i);
    auto bad = [&](const char* want) {
      *error = "field '" + f.name + "': '" + s + "' is not " + want;
      return false;
    };
    switch (f.type) {
      case FieldType::kInt: {
        int64_t v;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || p != s.data() + s.size()) return bad("an integer");
        builder_.SetInt(i, v);
        return true;
      }
      case FieldType::kDouble: {
        double v;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || p != s.data() + s.size()) return bad("a number");
        builder_.SetDouble(i, v);
        return true;
      }
      case FieldType::kString:
        builder_.SetString(i, s);
        return true;
      case FieldType::kBool:
        if (s == "true" || s == "1" || s == "TRUE" || s == "True")
          builder_.SetBool(i, true);
        else if (s == "false" || s == "0" || s == "FALSE" || s == "False")
          builder_.SetBool(i, false);
        else
          return bad("true or false");
        return true;
      case FieldType::kTimestamp: {
        int64_t ms;
        if (!ParseTimestampText(s, &ms)) return bad("an RFC 3339 time or epoch milliseconds");
        builder_.SetInt(i, ms);
        return true;
      }
    }
    return true;
  }

  DecoderOptions o_;
  RowBuilder builder_;
  std::vector<int> column_field_;
  std::vector<std::string> cols_;
};

}  // namespace

void DecodeBatch(RecordDecoder& decoder, const std::vector<std::string_view>& lines,
                 size_t readable_after, uint64_t* seq, std::vector<DecodedRecord>* out,
                 const std::vector<uint64_t>* line_seqs) {
  out->resize(lines.size());
  for (DecodedRecord& r : *out) {
    r.row = RowPtr();
    r.error.clear();
  }
  size_t done = decoder.DecodeFast(lines, readable_after, *seq, out, line_seqs);
  uint64_t next = *seq + done;
  for (size_t i = done; i < lines.size(); ++i) {
    DecodedRecord& r = (*out)[i];
    // Bytes after line i up to the end of the last line are readable too.
    size_t after = static_cast<size_t>(lines.back().data() + lines.back().size() -
                                       (lines[i].data() + lines[i].size())) +
                   readable_after;
    if (decoder.Decode(lines[i], line_seqs ? (*line_seqs)[i] : next, &r.row, &r.error, after))
      ++next;
  }
  *seq = next;
}

std::unique_ptr<RecordDecoder> MakeJsonlDecoder(DecoderOptions options) {
  return std::make_unique<JsonlDecoder>(std::move(options));
}
std::unique_ptr<RecordDecoder> MakeCsvDecoder(DecoderOptions options) {
  return std::make_unique<CsvDecoder>(std::move(options));
}

}  // namespace cepheus::engine
