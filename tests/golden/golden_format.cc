#include "tests/golden/golden_format.h"

#include <simdjson.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "engine/exec/runner.h"
#include "engine/format/format.h"
#include "engine/ingest/decoder.h"
#include "engine/plan/pipeline.h"
#include "patterns/parser.h"
#include "sinks/outputs.h"
#include "sources/file_source.h"
#include "tests/reference/reference_matcher.h"

namespace cepheus::testing {
namespace {

namespace fs = std::filesystem;

std::string Trim(std::string s) {
  size_t b = s.find_first_not_of(" \t\r");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

Result<Schema> ParseSchemaSpec(const std::string& spec) {
  std::vector<Field> fields;
  std::stringstream ss(spec);
  std::string part;
  while (std::getline(ss, part, ',')) {
    std::stringstream ps(Trim(part));
    std::string name, type;
    ps >> name >> type;
    auto t = ParseFieldType(type);
    if (!t) return Status::InvalidArgument("bad schema type '" + type + "'");
    fields.push_back(Field{name, *t});
  }
  return Schema::Create(std::move(fields));
}

int64_t TsOfJsonLine(const std::string& line) {
  auto pos = line.find("\"ts\":");
  if (pos == std::string::npos) return 0;
  std::string rest = Trim(line.substr(pos + 5));
  if (!rest.empty() && rest[0] == '"') {
    auto t = ParseRfc3339(rest.substr(1, rest.find('"', 1) - 1));
    return t ? t->millis() : 0;
  }
  return std::strtoll(rest.c_str(), nullptr, 10);
}

std::string RawJson(simdjson::ondemand::value v) {
  std::string s(v.raw_json_token());
  return Trim(s);
}

int64_t ParseTs(std::string_view text) {
  auto t = ParseRfc3339(text);
  return t ? t->millis() : -1;
}

// Renders the output records of a run as compact, sortable lines.
Status Render(const std::string& text, const char* kind, std::vector<std::string>* out) {
  simdjson::ondemand::parser parser;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.empty()) continue;
    simdjson::padded_string padded(line);
    simdjson::ondemand::document doc;
    if (parser.iterate(padded).get(doc)) return Status::Corruption("bad output line: " + line);
    std::string rendered;
    if (std::string(kind) == "late") {
      std::string_view et;
      if (doc["event_time"].get_string().get(et)) return Status::Corruption(line);
      rendered = "late " + std::to_string(ParseTs(et));
    } else if (std::string(kind) == "dead" && line.find("\"match\":{") != std::string::npos) {
      // A match an AFTER MATCH SKIP ... STRICT could not apply to:
      // "skip-error KEY a@1 b@2 | fields ! reason".
      std::string_view reason;
      if (doc["reason"].get_string().get(reason)) return Status::Corruption(line);
      std::string reason_text(reason);
      // "match" is the record's last member: {..., "match":{...}}
      const size_t at = line.find("\"match\":{") + 8;
      std::vector<std::string> inner;
      CEPHEUS_RETURN_IF_ERROR(
          Render(line.substr(at, line.size() - at - 1) + "\n", "match", &inner));
      if (inner.size() != 1) return Status::Corruption(line);
      rendered = "skip-error " + inner[0].substr(6) + " ! " + reason_text;
    } else if (std::string(kind) == "dead") {
      int64_t ln;
      std::string_view reason;
      if (doc["line"].get_int64().get(ln) || doc["reason"].get_string().get(reason))
        return Status::Corruption(line);
      rendered = "dead line " + std::to_string(ln) + ": " + std::string(reason);
    } else {
      std::string type, key;
      std::vector<std::pair<int64_t, std::string>> evs;
      std::vector<std::string> fields;
      simdjson::ondemand::object obj;
      if (doc.get_object().get(obj)) return Status::Corruption(line);
      std::string start, end;
      for (auto f : obj) {
        std::string_view k;
        if (f.unescaped_key().get(k)) return Status::Corruption(line);
        if (k == "type" || k == "key") {
          std::string_view v;
          if (f.value().get_string().get(v)) return Status::Corruption(line);
          (k == "type" ? type : key) = std::string(v);
        } else if (k == "timeout_at") {
          std::string_view t;
          if (f.value().get_string().get(t)) return Status::Corruption(line);
          fields.insert(fields.begin(), "timeout_at=" + std::to_string(ParseTs(t)));
        } else if (k == "start" || k == "end") {
          std::string_view t;
          if (f.value().get_string().get(t)) return Status::Corruption(line);
          (k == "start" ? start : end) = std::to_string(ParseTs(t));
        } else if (k == "fields") {
          simdjson::ondemand::object fo;
          if (f.value().get_object().get(fo)) return Status::Corruption(line);
          for (auto ff : fo) {
            std::string_view fk;
            if (ff.unescaped_key().get(fk)) return Status::Corruption(line);
            fields.push_back(std::string(fk) + "=" + RawJson(ff.value()));
          }
        } else if (k == "events") {
          simdjson::ondemand::object eo;
          if (f.value().get_object().get(eo)) return Status::Corruption(line);
          for (auto stage : eo) {
            std::string_view var;
            if (stage.unescaped_key().get(var)) return Status::Corruption(line);
            simdjson::ondemand::array arr;
            if (stage.value().get_array().get(arr)) return Status::Corruption(line);
            for (auto row : arr) {
              std::string_view ts;
              if (row["ts"].get_string().get(ts)) return Status::Corruption(line);
              evs.emplace_back(ParseTs(ts), std::string(var));
            }
          }
        }
      }
      rendered = type + " " + key;
      std::stable_sort(evs.begin(), evs.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      if (evs.empty()) rendered += " " + start + ".." + end;
      for (const auto& [ts, var] : evs) rendered += " " + var + "@" + std::to_string(ts);
      if (!fields.empty()) {
        rendered += " |";
        for (const auto& f : fields) rendered += " " + f;
      }
    }
    out->push_back(std::move(rendered));
  }
  return Status::Ok();
}

}  // namespace

Result<GoldenCase> ReadGoldenFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return Status::IoError("cannot open " + path.string());
  GoldenCase c;
  c.name = path.stem().string();
  std::string line, section;
  while (std::getline(in, line)) {
    std::string t = Trim(line);
    if (t == "pattern:" || t == "events:" || t == "expect:") {
      section = t;
      continue;
    }
    if (section.empty()) {
      if (t.rfind("schema:", 0) == 0)
        c.schema = Trim(t.substr(7));
      else if (t.rfind("lateness:", 0) == 0)
        c.lateness_ms = std::stoll(Trim(t.substr(9)));
      continue;  // description comments
    }
    if (section == "pattern:") {
      c.pattern += line + "\n";
    } else if (section == "events:") {
      if (t.empty() || t.rfind("--", 0) == 0) continue;
      if (t[0] == '{') {
        c.events.push_back(t);
      } else {
        // Compact form for the default schema: KEY TYPE V @TS
        std::stringstream ls(t);
        std::string key, type, v, ts;
        ls >> key >> type >> v >> ts;
        if (ts.empty() || ts[0] != '@')
          return Status::InvalidArgument(path.string() + ": event line '" + t +
                                         "' is not 'KEY TYPE V @TS'");
        c.events.push_back("{\"key\":\"" + key + "\",\"type\":\"" + type + "\",\"v\":" + v +
                           ",\"ts\":" + ts.substr(1) + "}");
      }
    } else if (!t.empty() && t.rfind("--", 0) != 0) {
      c.expect.push_back(t);
    }
  }
  std::sort(c.expect.begin(), c.expect.end());
  c.shuffle_allowed = std::none_of(c.expect.begin(), c.expect.end(), [](const std::string& l) {
    return l.rfind("late ", 0) == 0 || l.rfind("dead ", 0) == 0;
  });
  if (c.pattern.empty()) return Status::InvalidArgument(path.string() + ": no pattern: section");
  return c;
}

Result<std::vector<std::string>> RunGolden(const GoldenCase& c, const fs::path& dir,
                                           int parallelism, bool shuffle, uint64_t seed) {
  std::vector<std::string> events = c.events;
  int64_t lateness = c.lateness_ms;
  if (shuffle) {
    // Arrival = event time + a jitter below the allowed lateness, the same
    // for events with equal time (they keep their order), so nothing is late.
    if (lateness == 0) lateness = 1000;
    std::mt19937_64 rng(seed);
    std::map<int64_t, int64_t> jitter;
    for (const auto& e : events) {
      int64_t ts = TsOfJsonLine(e);
      if (!jitter.count(ts))
        jitter[ts] = std::uniform_int_distribution<int64_t>(0, lateness - 1)(rng);
    }
    std::stable_sort(events.begin(), events.end(), [&](const std::string& a, const std::string& b) {
      int64_t ta = TsOfJsonLine(a), tb = TsOfJsonLine(b);
      return ta + jitter[ta] < tb + jitter[tb];
    });
  }
  fs::path input = dir / (shuffle ? "events-shuffled.jsonl" : "events.jsonl");
  {
    std::ofstream out(input);
    for (const auto& e : events) out << e << "\n";
  }
  auto schema = ParseSchemaSpec(c.schema);
  if (!schema.ok()) return schema.status();
  engine::PipelineConfig cfg;
  engine::StreamConfig s;
  s.name = "s";
  s.source.path = input.string();
  s.schema = schema.value();
  if (s.schema.IndexOf("key") >= 0) s.key = {"key"};
  s.time_field = "ts";
  s.watermark.max_out_of_orderness = Duration::Millis(lateness);
  cfg.streams.push_back(s);
  engine::PatternSource ps;
  ps.inline_text = c.pattern;
  cfg.patterns.push_back(ps);
  cfg.max_runs_per_key = 1000;
  auto compiled = engine::CompilePipeline(std::move(cfg));
  if (!compiled.ok()) return compiled.status();
  sinks::MemoryOutput matches, late, dead;
  engine::RunOptions opts;
  opts.sources = &sources::FileSources();
  opts.parallelism = parallelism;
  engine::PipelineRunner runner(compiled.value(), engine::RunOutputs{&matches, &late, &dead}, opts);
  auto summary = runner.Run();
  if (!summary.ok()) return summary.status();
  std::vector<std::string> out;
  CEPHEUS_RETURN_IF_ERROR(Render(matches.contents(), "match", &out));
  CEPHEUS_RETURN_IF_ERROR(Render(late.contents(), "late", &out));
  CEPHEUS_RETURN_IF_ERROR(Render(dead.contents(), "dead", &out));
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::vector<std::string>> ReferenceLines(const GoldenCase& c, bool* timeouts_checked) {
  auto schema = ParseSchemaSpec(c.schema);
  if (!schema.ok()) return schema.status();
  patterns::StreamCatalog catalog;
  catalog["s"] = patterns::StreamInfo{schema.value(), {}};
  if (schema->IndexOf("key") >= 0) catalog["s"].key = {"key"};
  patterns::SourceFile file("golden", c.pattern);
  patterns::Diagnostics diags;
  auto asts = patterns::ParsePatterns(file, diags);
  if (diags.HasErrors() || asts.size() != 1) return Status::InvalidArgument(diags.Render(file));
  auto p = patterns::CompilePattern(asts[0], file, catalog, diags);
  if (!p) return Status::InvalidArgument(diags.Render(file));
  *timeouts_checked = p->has_timeout_emit && p->skip == patterns::SkipStrategy::Kind::kNoSkip;
  engine::DecoderOptions dopt;
  dopt.schema = &catalog["s"].schema;
  dopt.time_field = dopt.schema->IndexOf("ts");
  auto decoder = engine::MakeJsonlDecoder(dopt);
  // Arrival order as in the file; late events (behind the watermark) drop out.
  std::map<std::string, std::vector<RowPtr>> by_key;
  int64_t max_ts = INT64_MIN;
  uint64_t seq = 0;
  for (const auto& line : c.events) {
    RowPtr row;
    std::string err;
    if (!decoder->Decode(line, seq++, &row, &err)) continue;
    int64_t ts = row->time().millis();
    if (max_ts != INT64_MIN && ts <= max_ts - c.lateness_ms - 1) continue;
    max_ts = std::max(max_ts, ts);
    by_key[engine::KeyString(*row, p->partition_fields, *dopt.schema)].push_back(row);
  }
  std::vector<std::string> out;
  for (auto& [key, rows] : by_key) {
    std::stable_sort(rows.begin(), rows.end(),
                     [](const RowPtr& a, const RowPtr& b) { return a->time() < b->time(); });
    for (const RefMatch& m : ReferenceMatch(asts[0], *p, rows, *timeouts_checked)) {
      std::string l = std::string(m.timeout ? "timeout " : "match ") + key;
      for (auto [pos, var] : m.path)
        l += " " + p->vars[static_cast<size_t>(var)] + "@" +
             std::to_string(rows[static_cast<size_t>(pos)]->time().millis());
      out.push_back(std::move(l));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace cepheus::testing
