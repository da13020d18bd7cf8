#include "app/pattern_tests.h"

#include <simdjson.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "common/json.h"
#include "common/time_types.h"
#include "engine/exec/runner.h"
#include "engine/format/format.h"
#include "engine/plan/pipeline.h"
#include "engine/plan/pipeline_config.h"
#include "patterns/cost.h"
#include "sinks/outputs.h"
#include "sources/kafka_source.h"

namespace cepheus::app {
namespace {

namespace fs = std::filesystem;

// One expected record; an attribute left out matches anything.
struct Expected {
  std::optional<std::string> pattern, type, key, start, end;
  std::optional<std::map<std::string, std::string>> fields;  // name -> JSON value
};

// One record the pipeline wrote to its matches output.
struct Actual {
  std::string pattern, type, key, start, end;
  std::map<std::string, std::string> fields;
  std::string line;
};

struct TestFile {
  fs::path pipeline;
  std::vector<std::string> only;  // patterns whose output is compared (empty: all)
  std::map<std::string, std::string> inline_events;  // stream -> JSON lines
  std::map<std::string, fs::path> event_files;       // stream -> file in its format
  std::vector<Expected> expect;
  std::optional<uint64_t> late, dead_letters;
};

// A YAML value as JSON: maps and lists recursively; a plain scalar that
// reads as a number, true/false or null stays one, anything else (and any
// quoted scalar) is a string.
std::string ToJson(const YAML::Node& n) {
  std::string out;
  if (n.IsMap()) {
    JsonObject o(out);
    for (const auto& kv : n) o.Raw(kv.first.as<std::string>(), ToJson(kv.second));
    o.End();
    return out;
  }
  if (n.IsSequence()) {
    out = "[";
    for (size_t i = 0; i < n.size(); ++i) out += (i ? "," : "") + ToJson(n[i]);
    return out + "]";
  }
  if (n.IsNull()) return "null";
  const std::string s = n.Scalar();
  if (n.Tag() != "!") {  // plain, not quoted
    if (s == "true" || s == "false" || s == "null") return s;
    char* end = nullptr;
    std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size() && s.find_first_of("xXnN") == std::string::npos)
      return s;
  }
  AppendJsonString(out, s);
  return out;
}

bool SameJsonValue(const std::string& a, const std::string& b) {
  if (a == b) return true;
  char *ea = nullptr, *eb = nullptr;
  const double da = std::strtod(a.c_str(), &ea), db = std::strtod(b.c_str(), &eb);
  if (ea == a.c_str() + a.size() && eb == b.c_str() + b.size() && !a.empty() && !b.empty())
    return std::fabs(da - db) <= 1e-9 * std::max(1.0, std::fabs(da));
  return false;
}

Result<TestFile> ReadTestFile(const fs::path& path) {
  TestFile t;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path.string());
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(path.string() + ":" + std::to_string(e.mark.line + 1) + ":" +
                                   std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  auto err = [&](const YAML::Node& n, const std::string& msg) {
    const YAML::Mark m = n.Mark();
    return Status::InvalidArgument(path.string() + ":" + std::to_string(m.line + 1) + ":" +
                                   std::to_string(m.column + 1) + ": " + msg);
  };
  if (!root.IsMap()) return err(root, "a pattern test is a map with pipeline, events and expect");
  static const char* kKeys[] = {"pipeline",    "pattern", "patterns",    "events",
                                "events_file", "expect",  "expect_late", "expect_dead_letters"};
  for (const auto& kv : root) {
    const std::string k = kv.first.as<std::string>();
    if (std::find(std::begin(kKeys), std::end(kKeys), k) == std::end(kKeys))
      return err(kv.first, "unknown key '" + k +
                               "' (pipeline, pattern(s), events, events_file, expect, "
                               "expect_late, expect_dead_letters)");
  }
  const fs::path base = path.parent_path();
  if (!root["pipeline"] || !root["pipeline"].IsScalar())
    return err(root, "a pattern test needs pipeline: <pipeline file>");
  t.pipeline = base / root["pipeline"].Scalar();
  for (const char* k : {"pattern", "patterns"}) {
    const YAML::Node p = root[k];
    if (!p) continue;
    if (p.IsScalar())
      t.only.push_back(p.Scalar());
    else
      for (const auto& n : p) t.only.push_back(n.as<std::string>());
  }
  // events: a list (a pipeline with one stream) or a map stream -> list.
  auto read_events = [&](const YAML::Node& list, const std::string& stream) -> Status {
    if (!list.IsSequence()) return err(list, "events must be a list of events (maps or lines)");
    std::string& lines = t.inline_events[stream];
    for (const auto& e : list) lines += (e.IsScalar() ? e.Scalar() : ToJson(e)) + "\n";
    return Status::Ok();
  };
  if (const YAML::Node ev = root["events"]) {
    if (ev.IsMap()) {
      for (const auto& kv : ev)
        CEPHEUS_RETURN_IF_ERROR(read_events(kv.second, kv.first.as<std::string>()));
    } else {
      CEPHEUS_RETURN_IF_ERROR(read_events(ev, ""));
    }
  }
  if (const YAML::Node ef = root["events_file"]) {
    if (ef.IsScalar()) {
      t.event_files[""] = base / ef.Scalar();
    } else {
      for (const auto& kv : ef)
        t.event_files[kv.first.as<std::string>()] = base / kv.second.Scalar();
    }
  }
  const YAML::Node ex = root["expect"];
  if (!ex || !ex.IsSequence())
    return err(root, "a pattern test needs expect: a list of matches ([] for none)");
  for (const auto& e : ex) {
    if (!e.IsMap())
      return err(e, "an expected match is a map like {pattern: p, key: k, fields: {...}}");
    Expected x;
    for (const auto& kv : e) {
      const std::string k = kv.first.as<std::string>();
      if (k == "fields") {
        if (!kv.second.IsMap())
          return err(kv.second, "fields must be a map of EMIT names to values");
        x.fields.emplace();
        for (const auto& f : kv.second) (*x.fields)[f.first.as<std::string>()] = ToJson(f.second);
      } else if (k == "pattern" || k == "type" || k == "key" || k == "start" || k == "end") {
        (k == "pattern" ? x.pattern
         : k == "type"  ? x.type
         : k == "key"   ? x.key
         : k == "start" ? x.start
                        : x.end) = kv.second.as<std::string>();
      } else {
        return err(kv.first, "unknown key '" + k +
                                 "' in an expected match (pattern, type, key, start, end, fields)");
      }
    }
    t.expect.push_back(std::move(x));
  }
  if (root["expect_late"]) t.late = root["expect_late"].as<uint64_t>();
  if (root["expect_dead_letters"]) t.dead_letters = root["expect_dead_letters"].as<uint64_t>();
  return t;
}

Result<Actual> ParseRecord(const std::string& line) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(line).get(doc)) return Status::Internal("unreadable match record: " + line);
  Actual a;
  a.line = line;
  std::string_view v;
  for (auto [name, dst] :
       {std::pair{"pattern", &a.pattern}, std::pair{"type", &a.type}, std::pair{"key", &a.key},
        std::pair{"start", &a.start}, std::pair{"end", &a.end}})
    if (!doc[name].get(v)) *dst = std::string(v);
  simdjson::dom::object fields;
  if (!doc["fields"].get(fields))
    for (auto [k, val] : fields) a.fields[std::string(k)] = simdjson::minify(val);
  return a;
}

bool Matches(const Expected& x, const Actual& a) {
  if (x.pattern && *x.pattern != a.pattern) return false;
  if (x.type && *x.type != a.type) return false;
  if (x.key && *x.key != a.key) return false;
  if (x.start && *x.start != a.start) return false;
  if (x.end && *x.end != a.end) return false;
  if (x.fields) {
    if (x.fields->size() != a.fields.size()) return false;
    for (const auto& [k, v] : *x.fields) {
      auto it = a.fields.find(k);
      if (it == a.fields.end() || !SameJsonValue(v, it->second)) return false;
    }
  }
  return true;
}

std::string Describe(const Expected& x) {
  std::string s;
  auto add = [&](const char* k, const std::optional<std::string>& v) {
    if (v) s += std::string(s.empty() ? "" : " ") + k + "=" + *v;
  };
  add("pattern", x.pattern);
  add("type", x.type);
  add("key", x.key);
  add("start", x.start);
  add("end", x.end);
  if (x.fields) {
    std::string f;
    for (const auto& [k, v] : *x.fields) f += (f.empty() ? "" : ",") + k + ":" + v;
    s += (s.empty() ? "" : " ") + std::string("fields={") + f + "}";
  }
  return s;
}

// Points every stream of `cfg` at a file in `dir` holding its events: the
// inline JSON lines of `inline_events`, or a copy of its `event_files` entry
// (in the stream's format), or nothing. Key "" means the only stream.
Status UseInputs(const std::string& what, const fs::path& dir,
                 const std::map<std::string, std::string>& inline_events,
                 const std::map<std::string, fs::path>& event_files, engine::PipelineConfig* cfg) {
  auto key_of = [&](auto& m, const std::string& name) {
    if (m.count(name)) return name;
    return (cfg->streams.size() == 1 && m.count("")) ? std::string() : std::string("\x01");
  };
  for (const auto& [name, _] : inline_events)
    if (!name.empty() && !cfg->FindStream(name))
      return Status::InvalidArgument(what + ": events for unknown stream '" + name + "'");
  if (cfg->streams.size() > 1 && (inline_events.count("") || event_files.count("")))
    return Status::InvalidArgument(what +
                                   ": the pipeline has several streams: give events per stream "
                                   "(events: { stream: [...] })");
  for (engine::StreamConfig& s : cfg->streams) {
    const fs::path input = dir / (s.name + ".input");
    std::ofstream out(input, std::ios::binary);
    const std::string k = key_of(inline_events, s.name);
    const std::string fk = key_of(event_files, s.name);
    if (inline_events.count(k)) {
      out << inline_events.at(k);
      s.source.format = engine::RecordFormat::kJsonl;  // events written as JSON objects
    } else if (event_files.count(fk)) {
      std::ifstream in(event_files.at(fk), std::ios::binary);
      if (!in)
        return Status::NotFound(what + ": cannot read events file " + event_files.at(fk).string());
      out << in.rdbuf();
    }
    s.source.kind = io::SourceKind::kFile;
    s.source.path = input.string();
  }
  return Status::Ok();
}

// A scratch directory, removed with the object.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("cepheus-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Runs one test; `report` gets the failure details.
Result<bool> RunOne(const fs::path& file, std::string* report, size_t* matched) {
  auto t = ReadTestFile(file);
  if (!t.ok()) return t.status();
  auto cfg = engine::LoadPipelineConfig(t->pipeline.string());
  if (!cfg.ok()) return cfg.status();
  ScratchDir scratch;
  const fs::path& dir = scratch.path;
  CEPHEUS_RETURN_IF_ERROR(UseInputs(file.string(), dir, t->inline_events, t->event_files, &*cfg));
  cfg->checkpoints_enabled = false;
  cfg->metrics_listen.clear();
  auto pipeline = engine::CompilePipeline(std::move(cfg.value()));
  if (!pipeline.ok()) return pipeline.status();
  for (const std::string& name : t->only) {
    bool found = false;
    for (const auto& p : pipeline->patterns) found |= p->name == name;
    if (!found)
      return Status::InvalidArgument(file.string() + ": the pipeline has no pattern '" + name +
                                     "'");
  }
  sinks::MemoryOutput matches, late, dead;
  engine::RunOptions opts;
  opts.sources = &sources::AllSources();
  opts.parallelism = 1;
  engine::PipelineRunner runner(pipeline.value(), engine::RunOutputs{&matches, &late, &dead}, opts);
  auto summary = runner.Run();
  if (!summary.ok()) return summary.status();
  std::vector<Actual> actual;
  for (const auto& r : matches.records()) {
    auto a = ParseRecord(r.payload);
    if (!a.ok()) return a.status();
    if (!t->only.empty() && std::find(t->only.begin(), t->only.end(), a->pattern) == t->only.end())
      continue;
    actual.push_back(std::move(a.value()));
  }
  std::vector<bool> used(actual.size(), false);
  std::vector<std::string> missing;
  for (const Expected& x : t->expect) {
    bool found = false;
    for (size_t i = 0; i < actual.size() && !found; ++i)
      if (!used[i] && Matches(x, actual[i])) used[i] = found = true;
    if (!found) missing.push_back(Describe(x));
  }
  std::vector<std::string> unexpected;
  for (size_t i = 0; i < actual.size(); ++i)
    if (!used[i]) unexpected.push_back(actual[i].line);
  *matched = actual.size();
  for (const std::string& m : missing) *report += "  - expected, not emitted: " + m + "\n";
  for (const std::string& u : unexpected) *report += "  + emitted, not expected: " + u + "\n";
  if (t->late && *t->late != summary->reader.late)
    *report += "  late events: expected " + std::to_string(*t->late) + ", got " +
               std::to_string(summary->reader.late) + "\n";
  if (t->dead_letters && *t->dead_letters != summary->reader.dead_letters)
    *report += "  dead letters: expected " + std::to_string(*t->dead_letters) + ", got " +
               std::to_string(summary->reader.dead_letters) + "\n";
  return report->empty();
}

}  // namespace

// The event as the engine renders rows (engine/format: AppendRowJson).
static std::string RowJson(const Row& row, const Schema& schema) {
  std::string s;
  engine::AppendRowJson(&s, row, schema);
  return s;
}

int RunPatternTests(const std::vector<std::string>& files, std::ostream& out) {
  int passed = 0, failed = 0;
  for (const std::string& f : files) {
    std::string report;
    size_t matched = 0;
    auto ok = RunOne(f, &report, &matched);
    if (!ok.ok()) {
      ++failed;
      out << "ERROR " << f << "\n  " << ok.status().message()
          << (ok.status().message().ends_with("\n") ? "" : "\n");
    } else if (*ok) {
      ++passed;
      out << "PASS  " << f << " (" << matched << " match(es))\n";
    } else {
      ++failed;
      out << "FAIL  " << f << "\n" << report;
    }
  }
  out << passed << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}

int RunExplain(const ExplainArgs& a, std::ostream& out) {
  auto cfg = engine::LoadPipelineConfig(a.pipeline);
  if (!cfg.ok()) {
    out << cfg.status().message() << "\n";
    return 1;
  }
  ScratchDir scratch;
  if (!a.events_file.empty()) {
    std::map<std::string, fs::path> files;
    // The events are the pattern's stream's; other streams read nothing.
    auto compiled = engine::CompilePipeline(cfg.value());
    if (!compiled.ok()) {
      out << compiled.status().message() << "\n";
      return 1;
    }
    for (const auto& p : compiled->patterns)
      if (p->name == a.pattern) files[p->stream] = a.events_file;
    if (Status s = UseInputs(a.pipeline, scratch.path, {}, files, &*cfg); !s.ok()) {
      out << s.message() << "\n";
      return 1;
    }
  }
  cfg->checkpoints_enabled = false;
  cfg->metrics_listen.clear();
  auto pipeline = engine::CompilePipeline(std::move(cfg.value()));
  if (!pipeline.ok()) {
    out << pipeline.status().message() << "\n";
    return 1;
  }
  const patterns::CompiledPattern* pat = nullptr;
  size_t index = 0;
  for (size_t i = 0; i < pipeline->patterns.size(); ++i)
    if (pipeline->patterns[i]->name == a.pattern) {
      pat = pipeline->patterns[i].get();
      index = i;
    }
  if (!pat) {
    out << a.pipeline << ": there is no pattern '" << a.pattern << "' (patterns:";
    for (const auto& p : pipeline->patterns) out << " " << p->name;
    out << ")\n";
    return 1;
  }
  if (a.dot) {
    out << pat->ToDot();
    return 0;
  }
  out << pat->ToText();
  patterns::CostOptions co;
  co.max_runs_per_key = pipeline->pattern_run_cap[index];
  out << patterns::FormatCost(*pat, patterns::BoundCost(*pat, co), co);
  if (a.events_file.empty()) return 0;
  // The trace: each event, then what each run did with it.
  std::optional<EventTime> from, to;
  for (auto [text, dst] : {std::pair{&a.from, &from}, std::pair{&a.to, &to}}) {
    if (text->empty()) continue;
    *dst = ParseTimeOrEpochMillis(*text);
    if (!*dst) {
      out << "error: '" << *text << "' is not an RFC 3339 time or epoch milliseconds\n";
      return 2;
    }
  }
  bool shown = true;  // the last event is in the range: its notes are shown
  const Schema& schema = *pat->schema;
  auto state = [&](int s) {
    return s < 0 ? std::string("-")
                 : std::to_string(s) + " " + pat->states[static_cast<size_t>(s)].label;
  };
  auto cond = [&](int c) {
    return c < 0 ? std::string() : pat->conditions[static_cast<size_t>(c)].text;
  };
  uint64_t events = 0;
  engine::TraceRequest trace;
  trace.pattern = a.pattern;
  trace.key = a.key;
  trace.on_event = [&](std::string_view key, const Row& row) {
    shown = (!from || row.time() >= *from) && (!to || row.time() < *to);
    if (!shown) return;
    ++events;
    out << "event " << FormatRfc3339(row.time()) << " key " << key << ": " << RowJson(row, schema)
        << "\n";
  };
  trace.on_note = [&](std::string_view key, const engine::TraceNote& n) {
    if (!shown) return;
    using K = engine::TraceNote::Kind;
    out << "  run started " << FormatRfc3339(EventTime::FromMillis(n.run_start_ms)) << "#"
        << n.run_start_tie;
    if (a.key.empty()) out << " (key " << key << ")";
    out << ": ";
    switch (n.kind) {
      case K::kStarted:
        out << "starts, taking the event as " << state(n.to);
        break;
      case K::kTook:
        out << "in " << state(n.from) << ", takes the event as " << state(n.to);
        break;
      case K::kNotTaken:
        out << "in " << state(n.from) << ", skips the event for " << state(n.to)
            << " (false: " << cond(n.cond) << ")";
        break;
      case K::kClosed:
        out << "in " << state(n.from) << ", cannot go to " << state(n.to)
            << (n.cond >= 0 ? " (false: " + cond(n.cond) + ")" : std::string()) << "; strict "
            << "contiguity or a greedy loop closes that way";
        break;
      case K::kUntouched:
        out << "in " << state(n.from) << ", untouched (no next stage's event condition holds)";
        break;
      case K::kNegated:
        out << "in " << state(n.from) << ", the negation "
            << (n.cond >= 0 ? "'" + cond(n.cond) + "' " : std::string())
            << "saw its event: the way to " << state(n.to) << " is gone";
        break;
      case K::kEnded:
        out << "in " << state(n.from) << ", has no way on: dropped";
        break;
      case K::kCut:
        out << "a new version in " << state(n.to) << " was cut by the run cap ("
            << pipeline->pattern_run_cap[index] << " per key)";
        break;
      case K::kTimedOut:
        out << "in " << state(n.from) << ", timed out (ON TIMEOUT EMIT)";
        break;
      case K::kExpired:
        out << "in " << state(n.from) << ", its window closed: dropped";
        break;
      case K::kAbsenceHeld:
        out << "in " << state(n.from) << ", its window closed without the negated event: match";
        break;
    }
    out << "\n";
  };
  sinks::MemoryOutput matches, late, dead;
  engine::RunOptions opts;
  opts.sources = &sources::AllSources();
  opts.parallelism = 1;
  opts.trace = &trace;
  engine::PipelineRunner runner(pipeline.value(), engine::RunOutputs{&matches, &late, &dead}, opts);
  auto summary = runner.Run();
  if (!summary.ok()) {
    out << "error: " << summary.status().message() << "\n";
    return 2;
  }
  uint64_t emitted = 0;
  for (const auto& r : matches.records()) {
    auto rec = ParseRecord(r.payload);
    if (!rec.ok() || rec->pattern != a.pattern || (!a.key.empty() && rec->key != a.key)) continue;
    ++emitted;
    out << rec->type << " " << r.payload << "\n";
  }
  out << events << " event(s) traced, " << emitted << " match(es) and timeout(s)";
  if (summary->reader.late || summary->reader.dead_letters)
    out << "; the input also had " << summary->reader.late << " late event(s) and "
        << summary->reader.dead_letters << " dead letter(s), which no pattern sees";
  out << "\n";
  return 0;
}

}  // namespace cepheus::app
