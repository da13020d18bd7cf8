// PipelineConfig: a pipeline YAML file, validated. Relative paths in the file
// are resolved against the directory of the YAML file, so a pipeline runs the
// same from any working directory. Plain values.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/schema.h"
#include "common/status.h"
#include "common/time_types.h"
#include "io/sink.h"
#include "io/source.h"
#include "state/state_backend.h"
#include "time/watermark.h"

namespace cepheus::engine {

// How a stream's records are framed and encoded.
enum class RecordFormat { kJsonl, kCsv };

struct SourceConfig {
  io::SourceKind kind = io::SourceKind::kFile;
  // kFile: a file, or standard input.
  std::string path;  // "-" for standard input
  // kKafka: topics, group, start, properties (bootstrap.servers included).
  io::KafkaSourceSpec kafka;
  RecordFormat format = RecordFormat::kJsonl;
  bool is_csv() const { return format == RecordFormat::kCsv; }
};

struct StreamConfig {
  std::string name;
  SourceConfig source;
  Schema schema;
  std::vector<std::string> key;
  std::string time_field;
  timing::WatermarkOptions watermark;
  // A JSONL record with this key (and whatever else) is a watermark
  // punctuation, not an event: {"__watermark": <epoch ms or RFC 3339>}.
  std::string punctuation_field = "__watermark";
  // Optional: a field of every event that carries the input's watermark
  // after that event (a timestamp or int field; null: no watermark).
  std::string watermark_field;
  // Event times outside [min_time, max_time) are dead letters (default years
  // 1900 to 2400): a corrupt or mis-scaled time must not move the watermark.
  EventTime min_time = EventTime::FromMillis(-2208988800000);
  EventTime max_time = EventTime::FromMillis(13569465600000);
  // Live guard: an event more than this ahead of the wall clock is a dead
  // letter (one far-future event would otherwise make every later event
  // late). Zero: off (the default; backfills of old data never trip it).
  Duration max_future_skew = Duration::Millis(0);
};

struct PatternSource {
  std::string path;  // file, or empty for inline
  std::string inline_text;
  std::string display_name() const { return path.empty() ? "<inline pattern>" : path; }
};

struct PipelineConfig {
  std::string path;      // the YAML file
  std::string base_dir;  // its directory
  std::vector<StreamConfig> streams;
  std::vector<PatternSource> patterns;
  io::SinkConfig matches;                     // default: stdout
  std::optional<io::SinkConfig> late;         // default: stderr
  std::optional<io::SinkConfig> dead_letter;  // default: stderr
  // Where the combined watermark goes each time it advances (default: nowhere).
  std::optional<io::SinkConfig> watermarks;
  // Outputs of their own for some patterns (`outputs: { NAME: { type: ...,
  // patterns: [card_*] } }`): a pattern's matches and timeouts go to the
  // first of these whose list names it (a name or a glob), the rest to
  // `matches`. In file order.
  struct RoutedOutput {
    std::string name;
    io::SinkConfig sink;
    std::vector<std::string> patterns;
  };
  std::vector<RoutedOutput> routed_outputs;
  int parallelism = 0;  // 0: number of cores
  size_t max_runs_per_key = 10000;
  // Budgets of one pattern (limits: { <pattern>: {...} }), per key: a lower
  // cap on its runs, and a cap on its estimated state bytes (converted to a
  // run cap with the cost model's size of a run: patterns/cost.h).
  struct PatternLimits {
    std::optional<size_t> max_runs_per_key;
    std::optional<uint64_t> max_state_bytes;
  };
  std::map<std::string, PatternLimits> pattern_limits;
  // A stream whose dead letters plus late events exceed this fraction of its
  // records (at least 100 of them) gets a loud warning in the log and the
  // summary: that is almost always a configuration error (wrong format,
  // epoch seconds read as milliseconds, too little allowed lateness).
  double warn_bad_input_ratio = 0.2;
  // Partial matches held in memory by the whole process (limits.max_live_runs);
  // 0: sized from the machine (a quarter of physical memory at ~512 bytes per
  // run). Past it the oldest runs are cut, counted and logged, so a pattern
  // that explodes (skip till any) cannot bring in the OOM killer.
  size_t max_live_runs = 0;
  std::string state_dir = "state";
  state::BackendKind state_backend = state::BackendKind::kRocksDb;
  size_t state_cache_keys = 100000;  // per worker (rocksdb); 0: no limit
  bool checkpoints_enabled = true;
  Duration checkpoint_interval = Duration::Seconds(10);  // 0: only at stop and end
  int checkpoint_retain = 3;
  // Where /metrics, /healthz and /readyz are served ("host:port"; empty:
  // metrics: off). Loopback by default: nothing is exposed unless asked.
  std::string metrics_listen = "127.0.0.1:9464";
  // patterns_reload: watch -- `run` also reloads when the pipeline file or a
  // pattern file changes (always: on SIGHUP).
  bool watch_patterns = false;
  // log: the level (the command line's --log-level wins) and how often `run`
  // logs a progress line (0: never).
  std::string log_level = "info";
  bool log_json = false;  // log.format: json (the command line's --log-format wins)
  Duration progress_interval = Duration::Seconds(30);
  bool checkpoint_copy_files = false;  // see CheckpointOptions::copy_files

  const StreamConfig* FindStream(const std::string& name) const;
};

// Loads and validates `path`. Errors name the file, line and what is wrong.
Result<PipelineConfig> LoadPipelineConfig(const std::string& path);
Result<PipelineConfig> ParsePipelineConfig(const std::string& yaml_text, const std::string& path);

}  // namespace cepheus::engine
