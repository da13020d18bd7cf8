#include "engine/format/format.h"

#include <cstdio>

#include "common/hash.h"
#include "common/json.h"
#include "common/text.h"

namespace cepheus::engine {
namespace {

void AppendValue(std::string* out, const patterns::Value& v) {
  using T = patterns::Value::Type;
  switch (v.type) {
    case T::kNull:
      *out += "null";
      break;
    case T::kInt:
      *out += std::to_string(v.i);
      break;
    case T::kDouble:
      AppendJsonDouble(*out, v.d);
      break;
    case T::kBool:
      *out += v.i ? "true" : "false";
      break;
    case T::kString:
      AppendJsonString(*out, v.s);
      break;
    case T::kTimestamp:
      AppendJsonString(*out, FormatRfc3339(EventTime::FromMillis(v.i)));
      break;
  }
}

void AppendField(std::string* out, const Row& row, size_t i, FieldType t) {
  AppendValue(out, patterns::ReadField(row, static_cast<int>(i), t));
}

}  // namespace

std::string_view KeyView(const Row& row, const std::vector<int>& fields, const Schema& schema,
                         std::string* scratch) {
  if (fields.size() == 1) {
    size_t i = static_cast<size_t>(fields[0]);
    if (schema.field(i).type == FieldType::kString && !row.IsNull(i)) return row.GetString(i);
  }
  *scratch = KeyString(row, fields, schema);
  return *scratch;
}

std::string KeyString(const Row& row, const std::vector<int>& fields, const Schema& schema) {
  std::string key;
  for (size_t k = 0; k < fields.size(); ++k) {
    if (k) key.push_back('|');
    size_t i = static_cast<size_t>(fields[k]);
    if (row.IsNull(i)) continue;
    switch (schema.field(i).type) {
      case FieldType::kString:
        key.append(row.GetString(i));
        break;
      case FieldType::kInt:
      case FieldType::kTimestamp:
        key += std::to_string(row.GetInt(i));
        break;
      case FieldType::kDouble: {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", row.GetDouble(i));
        key += buf;
        break;
      }
      case FieldType::kBool:
        key += row.GetBool(i) ? "true" : "false";
        break;
    }
  }
  return key;
}

uint64_t MatchId(std::string_view pattern, std::string_view key, const BufNode* last,
                 bool timeout) {
  uint64_t h = HashCombine(StableHash(pattern), StableHash(key));
  h = HashCombine(h, timeout ? 1 : 0);
  // Last event first: no need to materialize the path.
  for (const BufNode* n = last; n; n = n->prev) {
    h = HashCombine(h, static_cast<uint64_t>(n->id.ts));
    h = HashCombine(h, n->id.tie);
    h = HashCombine(h, static_cast<uint64_t>(n->var));
  }
  return h;
}

void AppendRowJson(std::string* out, const Row& row, const Schema& schema) {
  out->push_back('{');
  for (size_t i = 0; i < schema.size(); ++i) {
    if (i) out->push_back(',');
    AppendJsonString(*out, schema.field(i).name);
    out->push_back(':');
    AppendField(out, row, i, schema.field(i).type);
  }
  out->push_back('}');
}

MatchRenderer::MatchRenderer(const patterns::CompiledPattern& p) : p_(p) {
  for (bool timeout : {false, true}) {
    std::string& prefix = timeout ? timeout_prefix_ : match_prefix_;
    prefix = "{\"pattern\":";
    AppendJsonString(prefix, p.name);
    prefix += timeout ? ",\"type\":\"timeout\",\"key\":" : ",\"type\":\"match\",\"key\":";
    auto& keys = timeout ? timeout_keys_ : emit_keys_;
    for (const auto& f : timeout ? p.timeout_emit : p.emit) {
      std::string k;
      AppendJsonString(k, f.name);
      keys.push_back(k + ":");
    }
  }
}

uint64_t MatchRenderer::Render(std::string_view key, const MatchResult& m, std::string* out) const {
  const patterns::CompiledPattern& p = p_;
  out->append(m.timeout ? timeout_prefix_ : match_prefix_);
  AppendJsonString(*out, key);
  out->append(",\"start\":\"");
  AppendRfc3339(out, m.start);
  out->append("\",\"end\":\"");
  AppendRfc3339(out, m.end);
  if (m.timeout) {
    // When it timed out: the event time its deadline passed (Flink hands
    // the same to a TimedOutPartialMatchHandler as the context timestamp).
    out->append("\",\"timeout_at\":\"");
    AppendRfc3339(out, EventTime::FromMillis(m.completion.deadline));
  }
  out->append("\",\"id\":\"");
  const uint64_t match_id = MatchId(p.name, key, m.last, m.timeout);
  AppendHex16(out, match_id);
  out->append("\",\"fields\":{");
  const auto& fields = m.timeout ? p.timeout_emit : p.emit;
  const auto& keys = m.timeout ? timeout_keys_ : emit_keys_;
  patterns::EvalContext ctx{m.last->row.get(), m.aggs.data(), -1};
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) out->push_back(',');
    out->append(keys[i]);
    AppendValue(out, p.program.Eval(fields[i].expr, ctx));
  }
  out->push_back('}');
  if (m.timeout ? p.timeout_emit_events : p.emit_events) {
    const auto path = PathOf(m.last);
    out->append(",\"events\":");
    JsonObject ev(*out);
    for (size_t v = 0; v < p.vars.size(); ++v) {
      bool any = false;
      for (const BufNode* n : path) {
        if (n->var != static_cast<int>(v)) continue;
        if (!any) {
          ev.Key(p.vars[v]);
          out->push_back('[');
        } else {
          out->push_back(',');
        }
        any = true;
        AppendRowJson(out, *n->row, *p.schema);
      }
      if (any) out->push_back(']');
    }
    ev.End();
  }
  out->push_back('}');
  return match_id;
}

void MatchRenderer::RenderTo(std::string_view key, const MatchResult& m, io::RecordBatch* matches,
                             io::RecordBatch* errors) const {
  if (m.skip_error == MatchResult::SkipError::kNone) {
    const uint64_t id =
        Render(key, m,
               matches->Begin(m.timeout ? io::RecordKind::kTimeout : io::RecordKind::kMatch, key,
                              m.end.millis(), p_.name));
    matches->End(id);
  } else {
    RenderSkipError(key, m,
                    errors->Begin(io::RecordKind::kDeadLetter, key, m.end.millis(), p_.name));
    errors->End();
  }
}

void MatchRenderer::RenderSkipError(std::string_view key, const MatchResult& m,
                                    std::string* out) const {
  std::string match;
  (void)Render(key, m, &match);
  const std::string& x = p_.vars[static_cast<size_t>(p_.skip_var)];
  const std::string strategy =
      std::string("AFTER MATCH SKIP TO ") +
      (p_.skip == patterns::SkipStrategy::Kind::kToFirst ? "FIRST " : "LAST ") + x + " STRICT";
  JsonObject o(*out);
  o.String("pattern", p_.name);
  o.String("key", key);
  o.String("reason", m.skip_error == MatchResult::SkipError::kNoSuchStage
                         ? strategy + ": the match has no '" + x + "' event to skip to"
                         : strategy +
                               ": the skip target is the match's own first event, which "
                               "would skip nothing");
  o.Raw("match", match);
  o.End();
}

void RenderDeadLetter(const RecordOrigin& at, std::string_view reason, std::string_view record,
                      io::RecordBatch* out) {
  JsonObject o(*out->Begin(io::RecordKind::kDeadLetter, {}, 0, at.stream));
  o.String("stream", at.stream);
  o.String("source", at.source);
  if (at.line)
    o.Int("line", static_cast<int64_t>(at.line));
  else
    o.Raw("line", "null");  // unknown when a file is read in ranges
  o.Int("offset", static_cast<int64_t>(at.offset));
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
  out->End();
}

void RenderLate(const RecordOrigin& at, std::string_view key, const Row& row, const Schema& schema,
                Watermark wm, io::RecordBatch* out) {
  std::string* text = out->Begin(io::RecordKind::kLate, key, row.time().millis(), at.stream);
  JsonObject o(*text);
  o.String("stream", at.stream);
  o.String("source", at.source);
  o.Int("line", static_cast<int64_t>(at.line));
  o.Int("offset", static_cast<int64_t>(at.offset));
  o.String("event_time", FormatRfc3339(row.time()));
  o.String("watermark", FormatRfc3339(wm.time()));
  o.Key("event");
  AppendRowJson(text, row, schema);
  o.End();
  out->End();
}

void RenderWatermark(Watermark wm, io::RecordBatch* out) {
  JsonObject o(*out->Begin(io::RecordKind::kWatermark, {},
                           wm.is_max() ? INT64_MAX : wm.time().millis(), {}));
  if (wm.is_max()) {
    o.Raw("watermark", "null");
    o.Raw("watermark_ms", "null");
    o.Raw("end_of_input", "true");
  } else {
    o.String("watermark", FormatRfc3339(wm.time()));
    o.Int("watermark_ms", wm.time().millis());
  }
  o.End();
  out->End();
}

}  // namespace cepheus::engine
