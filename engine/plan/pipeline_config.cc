#include "engine/plan/pipeline_config.h"

#include "common/text.h"

#include "common/paths.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace cepheus::engine {
namespace {

namespace fs = std::filesystem;

std::string Where(const std::string& path, const YAML::Node& n) {
  YAML::Mark m = n.Mark();
  if (m.line < 0) return path;
  return path + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

Status Err(const std::string& path, const YAML::Node& n, const std::string& msg) {
  return Status::InvalidArgument(Where(path, n) + ": " + msg);
}

// Typed reads of YAML values. A value of the wrong shape or type throws a
// ConfigError (caught in ParsePipelineConfig, the module's edge) that names
// the setting and what it expects, instead of yaml-cpp's "bad conversion".
struct ConfigError {
  YAML::Mark mark;
  std::string message;
};

const char* Shape(const YAML::Node& n) {
  if (n.IsMap()) return "a map";
  if (n.IsSequence()) return "a list";
  if (n.IsNull()) return "nothing";
  return "a value";
}

std::string Str(const YAML::Node& n, const std::string& what) {
  if (!n.IsScalar()) throw ConfigError{n.Mark(), what + ": expected a text value, got " + Shape(n)};
  return n.Scalar();
}

int64_t Int(const YAML::Node& n, const std::string& what) {
  const std::string text = Str(n, what);
  int64_t v;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size())
    throw ConfigError{n.Mark(), what + ": expected a whole number, got '" + text + "'"};
  return v;
}

bool Bool(const YAML::Node& n, const std::string& what) {
  const std::string text = Str(n, what);
  if (text == "true" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "no" || text == "off") return false;
  throw ConfigError{n.Mark(), what + ": expected true or false, got '" + text + "'"};
}

// Every key of the map `n` (the setting `section`) must be one of `known`: a
// misspelt key would otherwise be ignored and silently change what the
// pipeline does.
void CheckKeys(const YAML::Node& n, const std::string& section,
               const std::vector<const char*>& known) {
  if (!n.IsMap()) return;
  for (const auto& kv : n) {
    const std::string k = Str(kv.first, section + " key");
    bool ok = false;
    std::string best, list;
    size_t best_d = 3;
    for (const char* w : known) {
      ok |= k == w;
      list += (list.empty() ? "" : ", ") + std::string(w);
      // Close spellings, and a key cut short or run on (max_out_of_order).
      const std::string_view ws(w);
      const bool prefix =
          k.size() >= 4 && (ws.starts_with(k) || std::string_view(k).starts_with(ws));
      const size_t d = prefix ? 1 : EditDistance(k, w);
      if (d < best_d) {
        best_d = d;
        best = w;
      }
    }
    if (ok) continue;
    throw ConfigError{kv.first.Mark(), "unknown key '" + k + "' in " + section +
                                           (best.empty() ? "" : " (did you mean '" + best + "'?)") +
                                           "; known keys: " + list};
  }
}

std::string Resolve(const std::string& base, const std::string& p) {
  if (p.empty() || p == "-" || fs::path(p).is_absolute()) return p;
  return (fs::path(base) / p).lexically_normal().string();
}

Result<Duration> ReadDuration(const std::string& path, const YAML::Node& n, const char* what) {
  const std::string text = Str(n, what);
  auto d = ParseDuration(text);
  if (!d)
    return Err(path, n,
               std::string(what) + ": '" + text + "' is not a duration (e.g. 500ms, 5s, 10m, 1h)");
  return *d;
}

// Each kind of sink reads its own section: its keys (others are errors,
// with a suggestion) and its settings. Kafka adds an entry here.
struct SinkKindSection {
  io::SinkKind kind;
  std::vector<const char*> keys;
};
const std::vector<SinkKindSection>& SinkSections() {
  static const std::vector<SinkKindSection> kSections = {
      {io::SinkKind::kStdout, {"type"}},
      {io::SinkKind::kStderr, {"type"}},
      {io::SinkKind::kFile, {"type", "path"}},
      {io::SinkKind::kKafka, {"type", "brokers", "topic", "properties", "delivery"}},
  };
  return kSections;
}

// A string setting with ${ENV} references expanded (secrets stay out of
// the file).
Result<std::string> ExpandedStr(const std::string& path, const YAML::Node& n,
                                const std::string& what) {
  auto v = ExpandEnv(Str(n, what));
  if (!v.ok()) return Err(path, n, what + ": " + v.status().message());
  return v;
}

// `brokers` and `properties` of a Kafka source or output: librdkafka
// settings, bootstrap.servers included.
Result<std::map<std::string, std::string>> ReadKafkaConnection(const std::string& path,
                                                               const YAML::Node& n,
                                                               const std::string& section,
                                                               const std::string& what) {
  std::map<std::string, std::string> out;
  if (const YAML::Node props = n["properties"]) {
    if (!props.IsMap())
      return Err(path, props, "properties must map librdkafka settings to values");
    for (const auto& kv : props) {
      const std::string name = Str(kv.first, section + ".properties key");
      auto v = ExpandedStr(path, kv.second, section + ".properties." + name);
      if (!v.ok()) return v.status();
      out[name] = std::move(v.value());
    }
  }
  if (const YAML::Node b = n["brokers"]) {
    std::string brokers;
    for (const YAML::Node& one : b.IsSequence() ? std::vector<YAML::Node>(b.begin(), b.end())
                                                : std::vector<YAML::Node>{b}) {
      auto v = ExpandedStr(path, one, section + ".brokers");
      if (!v.ok()) return v.status();
      brokers += (brokers.empty() ? "" : ",") + v.value();
    }
    out["bootstrap.servers"] = brokers;
  }
  if (!out.count("bootstrap.servers"))
    return Err(path, n, what + " needs brokers: host:port[,host:port...]");
  return out;
}

// outputs.<name> with type: kafka.
Result<io::KafkaSinkSpec> ReadKafkaSink(const std::string& path, const YAML::Node& n,
                                        const std::string& section) {
  io::KafkaSinkSpec k;
  auto props = ReadKafkaConnection(path, n, section, "a kafka output");
  if (!props.ok()) return props.status();
  k.properties = std::move(props.value());
  if (!n["topic"]) return Err(path, n, "a kafka output needs topic: <name>");
  auto topic = ExpandedStr(path, n["topic"], section + ".topic");
  if (!topic.ok()) return topic.status();
  k.topic = std::move(topic.value());
  const std::string delivery =
      n["delivery"] ? Str(n["delivery"], section + ".delivery") : "exactly_once";
  if (delivery == "at_least_once") {
    k.delivery = io::KafkaSinkSpec::Delivery::kAtLeastOnce;
  } else if (delivery == "exactly_once") {
    k.delivery = io::KafkaSinkSpec::Delivery::kExactlyOnce;
  } else {
    return Err(path, n["delivery"],
               section + ".delivery must be exactly_once or at_least_once, not '" + delivery + "'");
  }
  return k;
}

Result<io::SinkConfig> ReadOutput(const std::string& path, const std::string& base,
                                  const YAML::Node& n, const char* name, bool routed = false) {
  const std::string section = std::string("outputs.") + name;
  if (!n.IsMap()) return Err(path, n, section + " must be a map like {type: stdout}");
  const std::string type = n["type"] ? Str(n["type"], section + ".type") : "";
  const std::optional<io::SinkKind> kind = io::ParseSinkKind(type);
  if (!kind)
    return Err(path, n["type"] ? n["type"] : n,
               section + ".type must be stdout, stderr, file or kafka" +
                   (type.empty() ? std::string() : ", not '" + type + "'"));
  for (const SinkKindSection& k : SinkSections()) {
    if (k.kind != *kind) continue;
    std::vector<const char*> keys = k.keys;
    if (routed) keys.push_back("patterns");
    CheckKeys(n, section + ", " + std::string(io::SinkKindName(*kind)) + " output", keys);
  }
  io::SinkConfig o;
  o.kind = *kind;
  if (o.is_file()) {
    if (!n["path"]) return Err(path, n, section + " of type file needs a path");
    o.path = Resolve(base, Str(n["path"], section + ".path"));
  }
  if (o.kind == io::SinkKind::kKafka) {
    auto k = ReadKafkaSink(path, n, section);
    if (!k.ok()) return k.status();
    o.kafka = std::move(k.value());
  }
  return o;
}

// streams.<name>.source with type: kafka.
Result<io::KafkaSourceSpec> ReadKafkaSource(const std::string& path, const YAML::Node& src,
                                            const std::string& section) {
  CheckKeys(src, section + ", kafka source",
            {"type", "brokers", "topic", "topics", "group", "start", "properties", "format",
             "stop_at_end", "metadata"});
  io::KafkaSourceSpec k;
  auto props = ReadKafkaConnection(path, src, section, "a kafka source");
  if (!props.ok()) return props.status();
  k.properties = std::move(props.value());
  if (src["topic"] && src["topics"]) return Err(path, src, "give either topic or topics, not both");
  if (const YAML::Node t = src["topic"]) {
    auto v = ExpandedStr(path, t, section + ".topic");
    if (!v.ok()) return v.status();
    k.topics.push_back(std::move(v.value()));
  } else if (const YAML::Node ts = src["topics"]; ts && ts.IsSequence()) {
    for (const auto& t : ts) {
      auto v = ExpandedStr(path, t, section + ".topics");
      if (!v.ok()) return v.status();
      k.topics.push_back(std::move(v.value()));
    }
  }
  if (k.topics.empty())
    return Err(path, src, "a kafka source needs topic: <name> (or topics: [...])");
  if (const YAML::Node g = src["group"]) {
    auto v = ExpandedStr(path, g, section + ".group");
    if (!v.ok()) return v.status();
    k.group = std::move(v.value());
  }
  if (const YAML::Node st = src["start"]) {
    const std::string text = Str(st, section + ".start");
    if (text == "earliest") {
      k.start.kind = io::KafkaStart::Kind::kEarliest;
    } else if (text == "latest") {
      k.start.kind = io::KafkaStart::Kind::kLatest;
    } else if (auto t = ParseTimeOrEpochMillis(text)) {
      k.start.kind = io::KafkaStart::Kind::kTime;
      k.start.time_ms = t->millis();
    } else {
      return Err(
          path, st,
          "start must be earliest, latest or a time (RFC 3339 or epoch milliseconds), not '" +
              text + "'");
    }
  }
  if (src["format"] && Str(src["format"], section + ".format") != "jsonl")
    return Err(path, src["format"], "a kafka source reads JSON messages: format must be jsonl");
  if (src["stop_at_end"]) k.stop_at_end = Bool(src["stop_at_end"], section + ".stop_at_end");
  if (const YAML::Node md = src["metadata"]) {
    if (!md.IsMap())
      return Err(path, md,
                 "metadata maps message metadata to fields, like {key: user, timestamp: ts}");
    CheckKeys(md, section + ".metadata", {"key", "timestamp", "topic", "partition", "offset"});
    auto& f = k.metadata;
    for (auto [name, dst] : {std::pair{"key", &f.key}, std::pair{"timestamp", &f.timestamp},
                             std::pair{"topic", &f.topic}, std::pair{"partition", &f.partition},
                             std::pair{"offset", &f.offset}})
      if (md[name]) *dst = Str(md[name], section + ".metadata." + name);
  }
  return k;
}

Result<SourceConfig> ReadSource(const std::string& path, const std::string& base,
                                const YAML::Node& src, const std::string& section) {
  const std::string type = src["type"] ? Str(src["type"], section + ".type") : "file";
  const std::optional<io::SourceKind> kind = io::ParseSourceKind(type);
  if (!kind)
    return Err(path, src["type"],
               "source type '" + type + "' is not supported here (supported: file, kafka)");
  SourceConfig out;
  switch (*kind) {
    case io::SourceKind::kKafka: {
      auto kafka = ReadKafkaSource(path, src, section);
      if (!kafka.ok()) return kafka.status();
      out.kafka = std::move(kafka.value());
      break;
    }
    case io::SourceKind::kFile: {
      CheckKeys(src, section + ", file source", {"type", "path", "format"});
      if (!src["path"])
        return Err(path, src, "a file source needs a path (or \"-\" for standard input)");
      out.path = Resolve(base, Str(src["path"], section + ".path"));
      const std::string format = src["format"] ? Str(src["format"], section + ".format") : "jsonl";
      if (format != "jsonl" && format != "csv")
        return Err(path, src, "format must be jsonl or csv, not '" + format + "'");
      out.format = format == "csv" ? RecordFormat::kCsv : RecordFormat::kJsonl;
      break;
    }
  }
  out.kind = *kind;
  return out;
}

// The stream's `schema:` map, field by field in order.
Status ReadSchema(const std::string& path, const YAML::Node& n, const std::string& sec,
                  StreamConfig& s) {
  const YAML::Node schema = n["schema"];
  if (!schema || !schema.IsMap() || schema.size() == 0)
    return Err(path, n,
               "stream '" + s.name +
                   "' needs a schema: {field: type, ...} with types string, int, double, bool, "
                   "timestamp");
  std::vector<Field> fields;
  for (const auto& f : schema) {
    const std::string field = Str(f.first, sec + ".schema field");
    const std::string type = Str(f.second, sec + ".schema." + field);
    auto t = ParseFieldType(type);
    if (!t)
      return Err(path, f.second,
                 "unknown type '" + type + "' (string, int, double, bool, timestamp)");
    fields.push_back(Field{field, *t});
  }
  auto sch = Schema::Create(std::move(fields));
  if (!sch.ok()) return Err(path, schema, sch.status().message());
  s.schema = std::move(sch.value());
  return Status::Ok();
}

// The stream's `event_time:` (a field name, or a map with the watermark settings).
Status ReadEventTime(const std::string& path, const YAML::Node& et, const std::string& sec,
                     StreamConfig& s) {
  if (et.IsScalar()) {
    s.time_field = Str(et, sec + ".event_time");
  } else {
    CheckKeys(
        et, sec + ".event_time",
        {"field", "max_out_of_orderness", "idle_timeout", "follow_wall_clock_when_idle", "min_time",
         "max_time", "max_future_skew", "watermark", "punctuation_field", "watermark_field"});
    if (!et["field"]) return Err(path, et, "event_time needs a field");
    s.time_field = Str(et["field"], sec + ".event_time.field");
    if (et["max_out_of_orderness"]) {
      auto d = ReadDuration(path, et["max_out_of_orderness"], "max_out_of_orderness");
      if (!d.ok()) return d.status();
      s.watermark.max_out_of_orderness = *d;
    }
    if (et["idle_timeout"]) {
      auto d = ReadDuration(path, et["idle_timeout"], "idle_timeout");
      if (!d.ok()) return d.status();
      s.watermark.idle_timeout = *d;
    }
    if (et["follow_wall_clock_when_idle"])
      s.watermark.follow_wall_clock_when_idle =
          Bool(et["follow_wall_clock_when_idle"], sec + ".event_time.follow_wall_clock_when_idle");
    for (auto [key, dst] : {std::pair{"min_time", &s.min_time}, {"max_time", &s.max_time}}) {
      if (!et[key]) continue;
      const std::string text = Str(et[key], sec + ".event_time." + key);
      auto t = ParseTimeOrEpochMillis(text);
      if (t)
        *dst = *t;
      else
        return Err(path, et[key],
                   std::string("event_time.") + key + ": '" + text +
                       "' is not a date, an RFC 3339 time or epoch milliseconds");
    }
    if (s.min_time >= s.max_time)
      return Err(path, et, "event_time.min_time must be before event_time.max_time");
    if (et["max_future_skew"]) {
      auto d = ReadDuration(path, et["max_future_skew"], "max_future_skew");
      if (!d.ok()) return d.status();
      s.max_future_skew = *d;
    }
    if (et["watermark"]) {
      const std::string mode = Str(et["watermark"], sec + ".event_time.watermark");
      if (mode != "bounded" && mode != "punctuated")
        return Err(path, et["watermark"],
                   "event_time.watermark must be bounded (generated from event times, and "
                   "punctuations) or punctuated (punctuations only), not '" +
                       mode + "'");
      s.watermark.from_event_times = mode == "bounded";
    }
    if (et["punctuation_field"])
      s.punctuation_field = Str(et["punctuation_field"], sec + ".event_time.punctuation_field");
    if (et["watermark_field"]) {
      s.watermark_field = Str(et["watermark_field"], sec + ".event_time.watermark_field");
      const int wf = s.schema.IndexOf(s.watermark_field);
      if (wf < 0)
        return Err(path, et["watermark_field"],
                   "watermark_field '" + s.watermark_field + "' is not in the schema");
      const FieldType t = s.schema.field(static_cast<size_t>(wf)).type;
      if (t != FieldType::kTimestamp && t != FieldType::kInt)
        return Err(path, et["watermark_field"],
                   "watermark_field '" + s.watermark_field +
                       "' must be a timestamp (or int epoch milliseconds)");
    }
    if (!s.watermark.from_event_times && s.source.is_csv() && s.watermark_field.empty())
      return Err(path, et,
                 "a punctuated CSV stream needs event_time.watermark_field (CSV has no "
                 "punctuation records)");
  }
  return Status::Ok();
}

// The fields a Kafka source fills from message metadata must be in the
// schema, with a type that can hold the value.
Status CheckKafkaMetadata(const std::string& path, const YAML::Node& src, const StreamConfig& s) {
  const auto& f = s.source.kafka.metadata;
  const std::pair<const std::string*, std::vector<FieldType>> wanted[] = {
      {&f.key, {FieldType::kString}},
      {&f.timestamp, {FieldType::kTimestamp, FieldType::kInt}},
      {&f.topic, {FieldType::kString}},
      {&f.partition, {FieldType::kInt}},
      {&f.offset, {FieldType::kInt}}};
  for (const auto& [name, types] : wanted) {
    if (name->empty()) continue;
    const int i = s.schema.IndexOf(*name);
    if (i < 0)
      return Err(path, src["metadata"],
                 "metadata field '" + *name + "' is not in the schema of stream '" + s.name + "'");
    const FieldType t = s.schema.field(static_cast<size_t>(i)).type;
    if (std::find(types.begin(), types.end(), t) == types.end())
      return Err(path, src["metadata"],
                 "metadata field '" + *name + "' has the wrong type in the schema (" +
                     (types[0] == FieldType::kString ? std::string("string")
                      : types[0] == FieldType::kInt  ? std::string("int")
                                                     : std::string("timestamp or int")) +
                     " expected)");
  }
  return Status::Ok();
}

// One entry of `streams:`.
Result<StreamConfig> ReadStream(const std::string& path, const std::string& base_dir,
                                const YAML::Node& name, const YAML::Node& n) {
  StreamConfig s;
  s.name = Str(name, "stream name");
  if (!n.IsMap()) return Err(path, n, "stream '" + s.name + "' must be a map");
  const std::string sec = "streams." + s.name;
  CheckKeys(n, sec, {"source", "schema", "key", "event_time"});
  const YAML::Node src = n["source"];
  if (!src || !src.IsMap())
    return Err(path, n,
               "stream '" + s.name + "' needs source: {type: file, path: ..., format: jsonl|csv}");
  auto source = ReadSource(path, base_dir, src, sec + ".source");
  if (!source.ok()) return source.status();
  s.source = std::move(source.value());
  CEPHEUS_RETURN_IF_ERROR(ReadSchema(path, n, sec, s));
  CEPHEUS_RETURN_IF_ERROR(CheckKafkaMetadata(path, src, s));
  if (const YAML::Node key = n["key"]) {
    if (key.IsSequence())
      for (const auto& k : key) s.key.push_back(Str(k, sec + ".key"));
    else
      s.key.push_back(Str(key, sec + ".key"));
    for (const auto& k : s.key)
      if (s.schema.IndexOf(k) < 0)
        return Err(path, key, "key field '" + k + "' is not in the schema");
  }
  const YAML::Node et = n["event_time"];
  if (!et)
    return Err(path, n,
               "stream '" + s.name +
                   "' needs event_time: {field: <timestamp field>, max_out_of_orderness: 5s}");
  CEPHEUS_RETURN_IF_ERROR(ReadEventTime(path, et, sec, s));
  int tf = s.schema.IndexOf(s.time_field);
  if (tf < 0) return Err(path, et, "event_time field '" + s.time_field + "' is not in the schema");
  if (s.schema.field(static_cast<size_t>(tf)).type != FieldType::kTimestamp &&
      s.schema.field(static_cast<size_t>(tf)).type != FieldType::kInt)
    return Err(
        path, et,
        "event_time field '" + s.time_field + "' must be a timestamp (or int epoch milliseconds)");
  return s;
}

// `patterns:`: files, globs, directories (their .cep files) and inline
// texts, in order; a glob's or directory's files sorted by name.
Status ReadPatterns(const std::string& path, const YAML::Node& root, PipelineConfig& cfg) {
  const YAML::Node pats = root["patterns"];
  if (!pats || !pats.IsSequence() || pats.size() == 0)
    return Err(path, root, "'patterns' must list pattern files (or {inline: \"PATTERN ...\"})");
  for (const auto& p : pats) {
    PatternSource ps;
    if (p.IsMap()) CheckKeys(p, "a patterns entry", {"file", "inline"});
    YAML::Node file;
    if (p.IsScalar())
      file.reset(static_cast<const YAML::Node&>(p));
    else if (p.IsMap() && p["inline"])
      ps.inline_text = Str(p["inline"], "patterns inline");
    else if (p.IsMap() && p["file"])
      file.reset(p["file"]);
    else
      return Err(path, p,
                 "a pattern entry is a file path, a glob, a directory, {file: path} or {inline: "
                 "text}");
    if (!ps.inline_text.empty() || (p.IsMap() && p["inline"])) {
      cfg.patterns.push_back(std::move(ps));
      continue;
    }
    const std::string spec = Resolve(cfg.base_dir, Str(file, "patterns file"));
    std::error_code ec;
    if (spec.find_first_of("*?[") == std::string::npos &&
        !std::filesystem::is_directory(spec, ec)) {
      ps.path = spec;  // a missing file is reported when the patterns compile
      cfg.patterns.push_back(std::move(ps));
      continue;
    }
    auto files = ExpandPathSpec(spec, ".cep");
    if (!files.ok())
      return Err(path, file,
                 "patterns entry '" + file.as<std::string>() + "' " + files.status().message());
    for (std::string& f : *files) cfg.patterns.push_back(PatternSource{std::move(f), ""});
  }
  return Status::Ok();
}

// Two outputs appending to one file would interleave (and the exactly-once
// file sink stages each output's records on its own); an output that is
// also an input would be truncated before it is read.
Status CheckOutputFiles(const std::string& path, const YAML::Node& outs,
                        const PipelineConfig& cfg) {
  std::map<std::string, std::string> files;
  for (const auto& kv : outs) {
    const std::string k = Str(kv.first, "outputs key");
    const io::SinkConfig* routed = nullptr;
    for (const auto& r : cfg.routed_outputs)
      if (r.name == k) routed = &r.sink;
    const io::SinkConfig& o = routed              ? *routed
                              : k == "matches"    ? cfg.matches
                              : k == "late"       ? *cfg.late
                              : k == "watermarks" ? *cfg.watermarks
                                                  : *cfg.dead_letter;
    if (!o.is_file()) continue;
    for (const auto& [other_path, other] : files)
      if (SameFile(other_path, o.path))
        return Err(path, kv.second,
                   "outputs '" + other + "' and '" + k + "' write the same file " + o.path);
    files.emplace(o.path, k);
    // Opening an output truncates it: one that is also an input would be
    // destroyed before a record is read.
    for (const StreamConfig& s : cfg.streams)
      if (s.source.path != "-" && SameFile(s.source.path, o.path))
        return Err(path, kv.second,
                   "output '" + k + "' writes " + o.path + ", the input of stream '" + s.name +
                       "' (it would be truncated before it is read)");
  }
  return Status::Ok();
}

// `outputs:`: matches, late, dead_letter, watermarks.
Status ReadOutputs(const std::string& path, const YAML::Node& root, PipelineConfig& cfg) {
  if (const YAML::Node outs = root["outputs"]) {
    if (!outs.IsMap())
      return Err(path, outs, "'outputs' must be a map (matches, late, dead_letter, watermarks)");
    for (const auto& kv : outs) {
      std::string k = Str(kv.first, "outputs key");
      const bool standard =
          k == "matches" || k == "late" || k == "dead_letter" || k == "watermarks";
      if (!standard && !(kv.second.IsMap() && kv.second["patterns"]))
        return Err(path, kv.first,
                   "unknown output '" + k +
                       "' (matches, late, dead_letter, watermarks; an output of its own for some "
                       "patterns names them: patterns: [name, glob*])");
      auto o = ReadOutput(path, cfg.base_dir, kv.second, k.c_str(), !standard);
      if (!o.ok()) return o.status();
      if (k == "matches") {
        cfg.matches = *o;
      } else if (k == "late") {
        cfg.late = *o;
      } else if (k == "dead_letter") {
        cfg.dead_letter = *o;
      } else if (k == "watermarks") {
        cfg.watermarks = *o;
      } else {
        PipelineConfig::RoutedOutput r{k, *o, {}};
        const YAML::Node pats = kv.second["patterns"];
        if (pats.IsScalar()) {
          r.patterns.push_back(Str(pats, "outputs." + k + ".patterns"));
        } else if (pats.IsSequence() && pats.size() > 0) {
          for (const auto& pn : pats) r.patterns.push_back(Str(pn, "outputs." + k + ".patterns"));
        } else {
          return Err(path, pats,
                     "outputs." + k + ".patterns must list pattern names or globs, like [card_*]");
        }
        cfg.routed_outputs.push_back(std::move(r));
      }
    }
    CEPHEUS_RETURN_IF_ERROR(CheckOutputFiles(path, outs, cfg));
  }
  return Status::Ok();
}

Status ReadLimits(const std::string& path, const YAML::Node& root, PipelineConfig& cfg) {
  if (const YAML::Node lim = root["limits"]) {
    if (!lim.IsMap()) return Err(path, lim, "limits must be a map like {max_runs_per_key: 10000}");
    // A map value is a pattern's own budget: limits: { card_testing: {...} }.
    std::vector<std::string> pattern_keys;
    for (const auto& kv : lim)
      if (kv.second.IsMap()) pattern_keys.push_back(Str(kv.first, "limits key"));
    std::vector<const char*> known = {"max_runs_per_key", "max_live_runs", "warn_bad_input_ratio"};
    for (const std::string& k : pattern_keys) known.push_back(k.c_str());
    CheckKeys(lim, "limits", known);
    for (const std::string& name : pattern_keys) {
      const YAML::Node pl = lim[name];
      const std::string section = "limits." + name;
      CheckKeys(pl, section, {"max_runs_per_key", "max_state_bytes"});
      PipelineConfig::PatternLimits l;
      if (pl["max_runs_per_key"]) {
        const int64_t v = Int(pl["max_runs_per_key"], section + ".max_runs_per_key");
        if (v < 1)
          return Err(path, pl["max_runs_per_key"],
                     section + ".max_runs_per_key must be at least 1");
        l.max_runs_per_key = static_cast<size_t>(v);
      }
      if (pl["max_state_bytes"]) {
        const std::string text = Str(pl["max_state_bytes"], section + ".max_state_bytes");
        const std::optional<uint64_t> b = ParseByteSize(text);
        if (!b || *b == 0)
          return Err(path, pl["max_state_bytes"],
                     section + ".max_state_bytes must be a size like 64MiB, not '" + text + "'");
        l.max_state_bytes = *b;
      }
      if (!l.max_runs_per_key && !l.max_state_bytes)
        return Err(path, pl, section + " needs max_runs_per_key or max_state_bytes");
      cfg.pattern_limits[name] = l;
    }
    if (lim["max_live_runs"]) {
      const int64_t v = Int(lim["max_live_runs"], "limits.max_live_runs");
      if (v < 1000)
        return Err(path, lim["max_live_runs"],
                   "limits.max_live_runs must be at least 1000 (omit it to size it from memory)");
      cfg.max_live_runs = static_cast<size_t>(v);
    }
    if (lim["max_runs_per_key"]) {
      int64_t v = Int(lim["max_runs_per_key"], "limits.max_runs_per_key");
      if (v < 1) return Err(path, lim["max_runs_per_key"], "max_runs_per_key must be at least 1");
      cfg.max_runs_per_key = static_cast<size_t>(v);
    }
    if (lim["warn_bad_input_ratio"]) {
      const std::string text = Str(lim["warn_bad_input_ratio"], "limits.warn_bad_input_ratio");
      double v = -1;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || p != text.data() + text.size() || v < 0 || v > 1)
        return Err(
            path, lim["warn_bad_input_ratio"],
            "limits.warn_bad_input_ratio must be a fraction between 0 and 1, not '" + text + "'");
      cfg.warn_bad_input_ratio = v;
    }
  }
  return Status::Ok();
}

Status ReadState(const std::string& path, const YAML::Node& root, PipelineConfig& cfg) {
  if (const YAML::Node st = root["state"]) {
    if (!st.IsMap())
      return Err(path, st, "state must be a map like {backend: rocksdb, dir: state}");
    CheckKeys(st, "state", {"backend", "dir", "cache_keys"});
    if (st["dir"]) cfg.state_dir = Resolve(cfg.base_dir, Str(st["dir"], "state.dir"));
    if (st["backend"]) {
      const auto kind = state::ParseBackendKind(Str(st["backend"], "state.backend"));
      if (!kind) return Err(path, st["backend"], "state.backend must be rocksdb or memory");
      cfg.state_backend = *kind;
    }
    if (st["cache_keys"]) {
      int64_t v = Int(st["cache_keys"], "state.cache_keys");
      if (v < 1)
        return Err(path, st["cache_keys"],
                   "state.cache_keys must be at least 1 (keys kept in memory per worker; "
                   "to keep every key in memory use backend: memory)");
      cfg.state_cache_keys = static_cast<size_t>(v);
    }
  }
  return Status::Ok();
}

// metrics: off | { listen: "host:port" } (default 127.0.0.1:9464).
Status ReadMetrics(const std::string& path, const YAML::Node& root, PipelineConfig& cfg) {
  const YAML::Node m = root["metrics"];
  if (!m) return Status::Ok();
  if (m.IsScalar()) {
    const std::string v = m.as<std::string>();
    if (v == "off" || v == "false") {
      cfg.metrics_listen.clear();
      return Status::Ok();
    }
    return Err(path, m, "metrics must be off or a map like {listen: 127.0.0.1:9464}");
  }
  if (!m.IsMap()) return Err(path, m, "metrics must be off or a map like {listen: 127.0.0.1:9464}");
  CheckKeys(m, "metrics", {"listen"});
  if (m["listen"]) {
    auto listen = ExpandedStr(path, m["listen"], "metrics.listen");
    if (!listen.ok()) return listen.status();
    const std::string& v = listen.value();
    const size_t colon = v.rfind(':');
    if (colon == std::string::npos || colon + 1 == v.size() ||
        v.find_first_not_of("0123456789", colon + 1) != std::string::npos)
      return Err(path, m["listen"],
                 "metrics.listen must be host:port (e.g. 127.0.0.1:9464, or 0.0.0.0:9464 to "
                 "listen on every interface), not '" +
                     v + "'");
    cfg.metrics_listen = v;
  }
  return Status::Ok();
}

// log: { level: info, progress: 30s | off }.
Status ReadLog(const std::string& path, const YAML::Node& root, PipelineConfig& cfg) {
  const YAML::Node lg = root["log"];
  if (!lg) return Status::Ok();
  if (!lg.IsMap())
    return Err(path, lg, "log must be a map like {level: info, format: text, progress: 30s}");
  CheckKeys(lg, "log", {"level", "format", "progress"});
  if (lg["format"]) {
    const std::string format = Str(lg["format"], "log.format");
    if (format != "text" && format != "json")
      return Err(path, lg["format"], "log.format must be text or json, not '" + format + "'");
    cfg.log_json = format == "json";
  }
  if (lg["level"]) {
    const std::string level = Str(lg["level"], "log.level");
    for (const char* known : {"trace", "debug", "info", "warn", "error", "off"})
      if (level == known) cfg.log_level = level;
    if (cfg.log_level != level)
      return Err(path, lg["level"],
                 "log.level must be trace, debug, info, warn, error or off, not '" + level + "'");
  }
  if (const YAML::Node pr = lg["progress"]) {
    const std::string text = Str(pr, "log.progress");
    if (text == "off" || text == "false") {
      cfg.progress_interval = Duration::Millis(0);
    } else {
      auto d = ReadDuration(path, pr, "log.progress");
      if (!d.ok()) return d.status();
      cfg.progress_interval = *d;
    }
  }
  return Status::Ok();
}

Status ReadCheckpoint(const std::string& path, const YAML::Node& root, PipelineConfig& cfg) {
  if (const YAML::Node ck = root["checkpoint"]) {
    if (!ck.IsMap()) return Err(path, ck, "checkpoint must be a map like {interval: 10s}");
    CheckKeys(ck, "checkpoint", {"enabled", "interval", "retain", "copy_files"});
    if (ck["copy_files"])
      cfg.checkpoint_copy_files = Bool(ck["copy_files"], "checkpoint.copy_files");
    if (ck["enabled"]) cfg.checkpoints_enabled = Bool(ck["enabled"], "checkpoint.enabled");
    if (ck["interval"]) {
      const std::string text = Str(ck["interval"], "checkpoint.interval");
      if (text == "off") {
        cfg.checkpoint_interval = Duration::Seconds(0);
      } else {
        auto d = ReadDuration(path, ck["interval"], "checkpoint.interval");
        if (!d.ok()) return d.status();
        if (d->millis() <= 0)
          return Err(path, ck["interval"],
                     "checkpoint.interval must be positive; write 'off' to checkpoint only at a "
                     "stop and at the end, or enabled: false for no checkpoints");
        cfg.checkpoint_interval = *d;
      }
    }
    if (ck["retain"]) {
      const int64_t v = Int(ck["retain"], "checkpoint.retain");
      if (v < 1) return Err(path, ck["retain"], "checkpoint.retain must be at least 1");
      cfg.checkpoint_retain = static_cast<int>(std::min<int64_t>(v, 1000));
    }
  }
  return Status::Ok();
}

Result<PipelineConfig> Parse(const YAML::Node& root, const std::string& path) {
  PipelineConfig cfg;
  cfg.path = path;
  cfg.base_dir = fs::path(path).parent_path().string();
  if (cfg.base_dir.empty()) cfg.base_dir = ".";
  if (!root.IsMap())
    return Err(path, root, "a pipeline file is a YAML map with streams, patterns and outputs");
  CheckKeys(root, "the pipeline",
            {"name", "streams", "patterns", "outputs", "parallelism", "limits", "state",
             "checkpoint", "metrics", "log", "patterns_reload"});
  if (const YAML::Node pr = root["patterns_reload"]) {
    const std::string v = Str(pr, "patterns_reload");
    if (v != "watch" && v != "signal")
      return Err(path, pr, "patterns_reload must be watch or signal, not '" + v + "'");
    cfg.watch_patterns = v == "watch";
  }
  const YAML::Node streams = root["streams"];
  if (!streams || !streams.IsMap() || streams.size() == 0)
    return Err(path, root,
               "'streams' must map stream names to their source, schema, key and event_time");
  for (const auto& kv : streams) {
    auto s = ReadStream(path, cfg.base_dir, kv.first, kv.second);
    if (!s.ok()) return s.status();
    cfg.streams.push_back(std::move(s.value()));
  }
  // Standard input can feed one stream only.
  const StreamConfig* on_stdin = nullptr;
  for (const StreamConfig& sc : cfg.streams) {
    if (sc.source.path != "-") continue;
    if (on_stdin)
      return Err(path, streams[sc.name],
                 "streams '" + on_stdin->name + "' and '" + sc.name +
                     "' both read standard input (\"-\"); only one stream can");
    on_stdin = &sc;
  }
  CEPHEUS_RETURN_IF_ERROR(ReadPatterns(path, root, cfg));
  CEPHEUS_RETURN_IF_ERROR(ReadOutputs(path, root, cfg));
  if (root["parallelism"]) {
    cfg.parallelism =
        static_cast<int>(std::clamp<int64_t>(Int(root["parallelism"], "parallelism"), -1, 1000));
    if (cfg.parallelism < 0 || cfg.parallelism > 256)
      return Err(path, root["parallelism"], "parallelism must be between 1 and 256 (0: all cores)");
  }
  CEPHEUS_RETURN_IF_ERROR(ReadLimits(path, root, cfg));
  cfg.state_dir = Resolve(cfg.base_dir, cfg.state_dir);
  CEPHEUS_RETURN_IF_ERROR(ReadState(path, root, cfg));
  CEPHEUS_RETURN_IF_ERROR(ReadCheckpoint(path, root, cfg));
  CEPHEUS_RETURN_IF_ERROR(ReadMetrics(path, root, cfg));
  CEPHEUS_RETURN_IF_ERROR(ReadLog(path, root, cfg));
  return cfg;
}

}  // namespace

const StreamConfig* PipelineConfig::FindStream(const std::string& name) const {
  for (const auto& s : streams)
    if (s.name == name) return &s;
  return nullptr;
}

Result<PipelineConfig> ParsePipelineConfig(const std::string& yaml_text, const std::string& path) {
  try {
    YAML::Node root = YAML::Load(yaml_text);
    return Parse(root, path);
  } catch (const ConfigError& e) {
    std::string where = path;
    if (e.mark.line >= 0)
      where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    return Status::InvalidArgument(where + ": " + e.message);
  } catch (const YAML::Exception& e) {
    std::string where = path;
    if (e.mark.line >= 0)
      where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    return Status::InvalidArgument(where + ": " + e.msg);
  }
}

Result<PipelineConfig> LoadPipelineConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError("cannot open pipeline file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParsePipelineConfig(ss.str(), path);
}

}  // namespace cepheus::engine
