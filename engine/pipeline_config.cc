#include "engine/pipeline_config.h"

#include "common/paths.h"

#include <yaml-cpp/yaml.h>

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

std::string Resolve(const std::string& base, const std::string& p) {
  if (p.empty() || p == "-" || fs::path(p).is_absolute()) return p;
  return (fs::path(base) / p).lexically_normal().string();
}

bool ParseInt64(const std::string& text, int64_t* out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && p == text.data() + text.size();
}

Result<Duration> ReadDuration(const std::string& path, const YAML::Node& n, const char* what) {
  auto d = ParseDuration(n.as<std::string>());
  if (!d)
    return Err(path, n,
               std::string(what) + ": '" + n.as<std::string>() +
                   "' is not a duration (e.g. 500ms, 5s, 10m, 1h)");
  return *d;
}

Result<OutputConfig> ReadOutput(const std::string& path, const std::string& base,
                                const YAML::Node& n, const char* name) {
  if (!n.IsMap())
    return Err(path, n, std::string("outputs.") + name + " must be a map like {type: stdout}");
  OutputConfig o;
  o.type = n["type"] ? n["type"].as<std::string>() : "";
  if (o.type != "stdout" && o.type != "stderr" && o.type != "file")
    return Err(path, n, std::string("outputs.") + name + ".type must be stdout, stderr or file");
  if (o.type == "file") {
    if (!n["path"])
      return Err(path, n, std::string("outputs.") + name + " of type file needs a path");
    o.path = Resolve(base, n["path"].as<std::string>());
  }
  return o;
}

Result<PipelineConfig> Parse(const YAML::Node& root, const std::string& path) {
  PipelineConfig cfg;
  cfg.path = path;
  cfg.base_dir = fs::path(path).parent_path().string();
  if (cfg.base_dir.empty()) cfg.base_dir = ".";
  if (!root.IsMap())
    return Err(path, root, "a pipeline file is a YAML map with streams, patterns and outputs");
  static const std::set<std::string> kTop = {"name",    "streams",     "patterns",
                                             "outputs", "parallelism", "limits",
                                             "state",   "metrics",     "checkpoint"};
  for (const auto& kv : root) {
    std::string k = kv.first.as<std::string>();
    if (!kTop.count(k))
      return Err(path, kv.first,
                 "unknown key '" + k +
                     "' (known: name, streams, patterns, outputs, parallelism, limits, state, "
                     "metrics, checkpoint)");
  }
  const YAML::Node streams = root["streams"];
  if (!streams || !streams.IsMap() || streams.size() == 0)
    return Err(path, root,
               "'streams' must map stream names to their source, schema, key and event_time");
  for (const auto& kv : streams) {
    StreamConfig s;
    s.name = kv.first.as<std::string>();
    const YAML::Node n = kv.second;
    if (!n.IsMap()) return Err(path, n, "stream '" + s.name + "' must be a map");
    const YAML::Node src = n["source"];
    if (!src || !src.IsMap())
      return Err(
          path, n,
          "stream '" + s.name + "' needs source: {type: file, path: ..., format: jsonl|csv}");
    s.source.type = src["type"] ? src["type"].as<std::string>() : "file";
    if (s.source.type != "file")
      return Err(path, src,
                 "source type '" + s.source.type + "' is not supported here (supported: file)");
    if (!src["path"])
      return Err(path, src, "a file source needs a path (or \"-\" for standard input)");
    s.source.path = Resolve(cfg.base_dir, src["path"].as<std::string>());
    s.source.format = src["format"] ? src["format"].as<std::string>() : "jsonl";
    if (s.source.format != "jsonl" && s.source.format != "csv")
      return Err(path, src, "format must be jsonl or csv, not '" + s.source.format + "'");
    const YAML::Node schema = n["schema"];
    if (!schema || !schema.IsMap() || schema.size() == 0)
      return Err(path, n,
                 "stream '" + s.name +
                     "' needs a schema: {field: type, ...} with types string, int, double, bool, "
                     "timestamp");
    std::vector<Field> fields;
    for (const auto& f : schema) {
      auto t = ParseFieldType(f.second.as<std::string>());
      if (!t)
        return Err(path, f.second,
                   "unknown type '" + f.second.as<std::string>() +
                       "' (string, int, double, bool, timestamp)");
      fields.push_back(Field{f.first.as<std::string>(), *t});
    }
    auto sch = Schema::Create(std::move(fields));
    if (!sch.ok()) return Err(path, schema, sch.status().message());
    s.schema = std::move(sch.value());
    if (const YAML::Node key = n["key"]) {
      if (key.IsSequence())
        for (const auto& k : key) s.key.push_back(k.as<std::string>());
      else
        s.key.push_back(key.as<std::string>());
      for (const auto& k : s.key)
        if (s.schema.IndexOf(k) < 0)
          return Err(path, key, "key field '" + k + "' is not in the schema");
    }
    const YAML::Node et = n["event_time"];
    if (!et)
      return Err(path, n,
                 "stream '" + s.name +
                     "' needs event_time: {field: <timestamp field>, max_out_of_orderness: 5s}");
    if (et.IsScalar()) {
      s.time_field = et.as<std::string>();
    } else {
      if (!et["field"]) return Err(path, et, "event_time needs a field");
      s.time_field = et["field"].as<std::string>();
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
        s.watermark.follow_wall_clock_when_idle = et["follow_wall_clock_when_idle"].as<bool>();
      for (auto [key, dst] : {std::pair{"min_time", &s.min_time}, {"max_time", &s.max_time}}) {
        if (!et[key]) continue;
        const std::string text = et[key].as<std::string>();
        int64_t ms;
        auto t = ParseRfc3339(text);
        if (t)
          *dst = *t;
        else if (ParseInt64(text, &ms))
          *dst = EventTime::FromMillis(ms);
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
    }
    int tf = s.schema.IndexOf(s.time_field);
    if (tf < 0)
      return Err(path, et, "event_time field '" + s.time_field + "' is not in the schema");
    if (s.schema.field(static_cast<size_t>(tf)).type != FieldType::kTimestamp &&
        s.schema.field(static_cast<size_t>(tf)).type != FieldType::kInt)
      return Err(path, et,
                 "event_time field '" + s.time_field +
                     "' must be a timestamp (or int epoch milliseconds)");
    cfg.streams.push_back(std::move(s));
  }
  const YAML::Node pats = root["patterns"];
  if (!pats || !pats.IsSequence() || pats.size() == 0)
    return Err(path, root, "'patterns' must list pattern files (or {inline: \"PATTERN ...\"})");
  for (const auto& p : pats) {
    PatternSource ps;
    if (p.IsScalar())
      ps.path = Resolve(cfg.base_dir, p.as<std::string>());
    else if (p.IsMap() && p["inline"])
      ps.inline_text = p["inline"].as<std::string>();
    else if (p.IsMap() && p["file"])
      ps.path = Resolve(cfg.base_dir, p["file"].as<std::string>());
    else
      return Err(path, p, "a pattern entry is a file path, {file: path} or {inline: text}");
    cfg.patterns.push_back(std::move(ps));
  }
  if (const YAML::Node outs = root["outputs"]) {
    if (!outs.IsMap())
      return Err(path, outs, "'outputs' must be a map (matches, late, dead_letter)");
    for (const auto& kv : outs) {
      std::string k = kv.first.as<std::string>();
      auto o = ReadOutput(path, cfg.base_dir, kv.second, k.c_str());
      if (!o.ok()) return o.status();
      if (k == "matches")
        cfg.matches = *o;
      else if (k == "late")
        cfg.late = *o;
      else if (k == "dead_letter")
        cfg.dead_letter = *o;
      else
        return Err(path, kv.first, "unknown output '" + k + "' (matches, late, dead_letter)");
    }
    // Two outputs appending to one file would interleave (and the
    // exactly-once file sink stages each output's records on its own).
    std::map<std::string, std::string> files;
    for (const auto& kv : outs) {
      const std::string k = kv.first.as<std::string>();
      const OutputConfig& o = k == "matches" ? cfg.matches
                              : k == "late"  ? *cfg.late
                                             : *cfg.dead_letter;
      if (o.type != "file") continue;
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
  }
  if (root["parallelism"]) {
    cfg.parallelism = root["parallelism"].as<int>();
    if (cfg.parallelism < 0 || cfg.parallelism > 256)
      return Err(path, root["parallelism"], "parallelism must be between 1 and 256 (0: all cores)");
  }
  if (const YAML::Node lim = root["limits"]) {
    if (lim["max_runs_per_key"]) {
      int64_t v = lim["max_runs_per_key"].as<int64_t>();
      if (v < 1) return Err(path, lim["max_runs_per_key"], "max_runs_per_key must be at least 1");
      cfg.max_runs_per_key = static_cast<size_t>(v);
    }
  }
  cfg.state_dir = Resolve(cfg.base_dir, cfg.state_dir);
  if (const YAML::Node st = root["state"]) {
    if (!st.IsMap())
      return Err(path, st, "state must be a map like {backend: rocksdb, dir: state}");
    for (const auto& kv : st) {
      const std::string k = kv.first.as<std::string>();
      if (k != "backend" && k != "dir" && k != "cache_keys")
        return Err(path, kv.first, "unknown state setting '" + k + "' (backend, dir, cache_keys)");
    }
    if (st["dir"]) cfg.state_dir = Resolve(cfg.base_dir, st["dir"].as<std::string>());
    if (st["backend"]) {
      cfg.state_backend = st["backend"].as<std::string>();
      if (cfg.state_backend != "rocksdb" && cfg.state_backend != "memory")
        return Err(path, st["backend"], "state.backend must be rocksdb or memory");
    }
    if (st["cache_keys"]) {
      int64_t v = st["cache_keys"].as<int64_t>();
      if (v < 0)
        return Err(path, st["cache_keys"], "state.cache_keys must be 0 (no limit) or more");
      cfg.state_cache_keys = static_cast<size_t>(v);
    }
  }
  if (const YAML::Node ck = root["checkpoint"]) {
    if (!ck.IsMap()) return Err(path, ck, "checkpoint must be a map like {interval: 10s}");
    for (const auto& kv : ck) {
      const std::string k = kv.first.as<std::string>();
      if (k != "interval" && k != "retain" && k != "enabled")
        return Err(path, kv.first,
                   "unknown checkpoint setting '" + k + "' (enabled, interval, retain)");
    }
    if (ck["enabled"]) cfg.checkpoints_enabled = ck["enabled"].as<bool>();
    if (ck["interval"]) {
      const std::string text = ck["interval"].as<std::string>();
      if (text == "0" || text == "off") {
        cfg.checkpoint_interval = Duration::Seconds(0);
      } else {
        auto d = ReadDuration(path, ck["interval"], "checkpoint.interval");
        if (!d.ok()) return d.status();
        cfg.checkpoint_interval = *d;
      }
    }
    if (ck["retain"]) {
      int v = ck["retain"].as<int>();
      if (v < 1) return Err(path, ck["retain"], "checkpoint.retain must be at least 1");
      cfg.checkpoint_retain = v;
    }
  }
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
