// The cepheus command line: check and run pipelines.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "app/logging.h"
#include "app/pattern_tests.h"
#include "common/paths.h"
#include "common/text.h"
#include "engine/batch/backtest.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/checkpoint_coordinator.h"
#include "engine/exec/restore.h"
#include "engine/exec/runner.h"
#include "engine/plan/pipeline.h"
#include "metrics/http_server.h"
#include "patterns/cost.h"
#include "sinks/outputs.h"
#include "sources/file_source.h"
#include "sources/kafka_source.h"
#include "state/dir_lock.h"

namespace {

std::atomic<cepheus::engine::PipelineRunner*> g_runner{nullptr};
std::atomic<bool> g_stop_requested{false};
std::atomic<bool> g_reload_requested{false};

void OnSignal(int) {
  g_stop_requested.store(true);
  if (auto* r = g_runner.load()) r->Stop();
}
void OnHangup(int) { g_reload_requested.store(true); }

cepheus::Result<cepheus::engine::CompiledPipeline> Load(const std::string& path) {
  auto cfg = cepheus::engine::LoadPipelineConfig(path);
  if (!cfg.ok()) return cfg.status();
  return cepheus::engine::CompilePipeline(std::move(cfg.value()));
}

// The outputs of a pipeline; late events and dead letters default to
// standard error, watermarks to nowhere. `matches_file` (if set) overrides
// the matches output.
// Whether --log-level was given (it wins over the pipeline's log.level).
bool g_log_level_given = false;
bool g_log_format_given = false;
bool g_log_json = false;  // the log format in use

struct OpenedOutputs {
  std::unique_ptr<cepheus::io::Sink> matches, late, dead, watermarks;
  std::vector<std::unique_ptr<cepheus::io::Sink>> routed;  // like config.routed_outputs
  cepheus::engine::RunOutputs Get() const {
    cepheus::engine::RunOutputs o{matches.get(), late.get(), dead.get(), watermarks.get(), {}};
    for (const auto& r : routed) o.routed.push_back(r.get());
    return o;
  }
};

cepheus::Result<OpenedOutputs> OpenOutputs(const cepheus::engine::PipelineConfig& cfg,
                                           const std::string& matches_file,
                                           cepheus::sinks::FileMode mode,
                                           const std::string& kafka_test_ledger) {
  using cepheus::io::SinkConfig;
  using cepheus::io::SinkKind;
  OpenedOutputs out;
  const SinkConfig configs[] = {
      matches_file.empty() ? cfg.matches : SinkConfig{SinkKind::kFile, matches_file, {}},
      cfg.late.value_or(SinkConfig{SinkKind::kStderr, "", {}}),
      cfg.dead_letter.value_or(SinkConfig{SinkKind::kStderr, "", {}})};
  std::unique_ptr<cepheus::io::Sink>* slots[] = {&out.matches, &out.late, &out.dead};
  const char* names[] = {"matches", "late", "dead_letter"};
  cepheus::sinks::OutputContext ctx;
  ctx.state_dir = cfg.checkpoints_enabled ? cfg.state_dir : "";
  ctx.kafka_test_ledger = kafka_test_ledger;
  for (int i = 0; i < 3; ++i) {
    ctx.name = names[i];
    auto o = cepheus::sinks::MakeOutput(configs[i], mode, ctx);
    if (!o.ok()) return o.status();
    *slots[i] = std::move(o.value());
  }
  if (cfg.watermarks) {
    ctx.name = "watermarks";
    auto o = cepheus::sinks::MakeOutput(*cfg.watermarks, mode, ctx);
    if (!o.ok()) return o.status();
    out.watermarks = std::move(o.value());
  }
  // A backtest writes every match to its one output (matches_file).
  if (matches_file.empty()) {
    for (const auto& r : cfg.routed_outputs) {
      ctx.name = r.name;
      auto o = cepheus::sinks::MakeOutput(r.sink, mode, ctx);
      if (!o.ok()) return o.status();
      out.routed.push_back(std::move(o.value()));
    }
  }
  return out;
}

// The nearest existing directory at or above `p`, for writability checks.
std::filesystem::path ExistingAncestor(std::filesystem::path p) {
  std::error_code ec;
  if (p.empty()) p = ".";
  p = std::filesystem::absolute(p, ec);
  while (!p.empty() && !std::filesystem::exists(p, ec) && p != p.parent_path()) p = p.parent_path();
  return p;
}

// What `check` verifies beyond the text: every input file exists and can be
// read, and every output file and the state directory can be created and
// written (the nearest existing directory above each is writable).
// Every problem found, one message each (empty: all usable).
std::vector<std::string> CheckFilesUsable(const cepheus::engine::PipelineConfig& cfg) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> problems;
  for (const auto& s : cfg.streams) {
    if (s.source.kind != cepheus::io::SourceKind::kFile || s.source.path == "-") continue;
    if (!fs::exists(s.source.path, ec))
      problems.push_back("stream '" + s.name + "': input file '" + s.source.path +
                         "' does not exist");
    else if (fs::is_directory(s.source.path, ec) || ::access(s.source.path.c_str(), R_OK) != 0)
      problems.push_back("stream '" + s.name + "': input '" + s.source.path +
                         "' is not a readable file");
  }
  std::vector<std::pair<std::string, fs::path>> writable;
  for (const auto& [name, o] : {std::pair{"matches", &cfg.matches},
                                {"late", cfg.late ? &*cfg.late : nullptr},
                                {"dead_letter", cfg.dead_letter ? &*cfg.dead_letter : nullptr},
                                {"watermarks", cfg.watermarks ? &*cfg.watermarks : nullptr}})
    if (o && o->is_file()) writable.emplace_back(std::string("output '") + name + "'", o->path);
  for (const auto& r : cfg.routed_outputs)
    if (r.sink.is_file()) writable.emplace_back("output '" + r.name + "'", r.sink.path);
  if (cfg.checkpoints_enabled) writable.emplace_back("the state directory", cfg.state_dir + "/x");
  for (const auto& [what, file] : writable) {
    const fs::path dir = ExistingAncestor(file.parent_path());
    if (!fs::is_directory(dir, ec) || ::access(dir.c_str(), W_OK) != 0)
      problems.push_back(what + ": '" + dir.string() + "' is not a writable directory, so '" +
                         file.string() + "' cannot be written");
  }
  return problems;
}

int Check(const std::string& path, bool dot, bool cost, double key_rate) {
  auto p = Load(path);
  if (!p.ok()) {
    std::cerr << p.status().message() << (p.status().message().ends_with("\n") ? "" : "\n");
    return 1;
  }
  std::cerr << p->warnings;
  const std::vector<std::string> problems = CheckFilesUsable(p->config);
  for (const std::string& problem : problems) std::cerr << path << ": error: " << problem << "\n";
  if (!problems.empty()) return 1;
  if (cost) {
    cepheus::patterns::CostOptions options;
    options.key_rate = key_rate;
    for (size_t i = 0; i < p->patterns.size(); ++i) {
      // Each pattern under its own cap (limits.<pattern>, or the global one).
      options.max_runs_per_key = p->pattern_run_cap[i];
      const auto& pat = *p->patterns[i];
      std::cout << cepheus::patterns::FormatCost(pat, cepheus::patterns::BoundCost(pat, options),
                                                 options);
    }
  } else {
    for (const auto& pat : p->patterns) std::cout << (dot ? pat->ToDot() : pat->ToText());
  }
  std::cerr << path << ": OK (" << p->config.streams.size() << " stream(s), " << p->patterns.size()
            << " pattern(s))\n";
  return 0;
}

// When the latest checkpoint is that of a finished run: has every output
// apply it (Recover publishes what a kill between its metadata and its
// commit left pending; for outputs that did publish, it changes nothing).
cepheus::Status CompleteFinishedOutputs(const cepheus::engine::PipelineConfig& cfg,
                                        const std::string& kafka_test_ledger) {
  if (!cfg.checkpoints_enabled) return cepheus::Status::Ok();
  cepheus::engine::CheckpointStore store(cfg.state_dir);
  auto usable = store.Usable();
  if (!usable.ok() || usable->empty() || !usable->front().metadata.finished)
    return cepheus::Status::Ok();
  auto outputs = OpenOutputs(cfg, "", cepheus::sinks::FileMode::kExactlyOnce, kafka_test_ledger);
  if (!outputs.ok()) return outputs.status();
  const cepheus::engine::RunOutputs o = outputs->Get();
  std::vector<std::pair<const char*, cepheus::io::Sink*>> slots = {{"matches", o.matches},
                                                                   {"late", o.late},
                                                                   {"dead_letter", o.dead_letter},
                                                                   {"watermarks", o.watermarks}};
  for (size_t i = 0; i < cfg.routed_outputs.size() && i < o.routed.size(); ++i)
    slots.emplace_back(cfg.routed_outputs[i].name.c_str(), o.routed[i]);
  return cepheus::engine::RecoverSinks(&usable->front().metadata, slots);
}

// How `run` may start without destroying what an earlier run left: it
// resumes from an unfinished checkpoint; otherwise (a fresh start, or the
// previous run finished) it would begin again from the first record and
// replace the output files, which it only does when asked (--restart).
cepheus::Status CheckStart(const cepheus::engine::PipelineConfig& cfg, bool restart) {
  namespace fs = std::filesystem;
  if (cfg.checkpoints_enabled && !restart) {
    cepheus::engine::CheckpointStore store(cfg.state_dir);
    auto usable = store.Usable();
    if (!usable.ok()) return usable.status();
    if (!usable->empty()) {
      const auto& m = usable->front().metadata;
      if (!m.finished) return cepheus::Status::Ok();  // resumes
      return cepheus::Status::InvalidArgument(
          "the previous run of this pipeline finished (checkpoint " + std::to_string(m.id) +
          " in '" + cfg.state_dir +
          "'): its outputs are complete. Run with --restart to process the inputs again from "
          "the beginning (this replaces the output files).");
    }
  }
  if (restart) return cepheus::Status::Ok();
  std::vector<const cepheus::io::SinkConfig*> outputs = {
      &cfg.matches, cfg.late ? &*cfg.late : nullptr, cfg.dead_letter ? &*cfg.dead_letter : nullptr,
      cfg.watermarks ? &*cfg.watermarks : nullptr};
  for (const auto& r : cfg.routed_outputs) outputs.push_back(&r.sink);
  for (const auto* o : outputs) {
    if (!o || !o->is_file()) continue;
    std::error_code ec;
    const auto size = fs::file_size(o->path, ec);
    if (!ec && size > 0)
      return cepheus::Status::InvalidArgument(
          "output file '" + o->path + "' already holds " + std::to_string(size) +
          " bytes from an earlier run, and this run starts from the beginning: run with "
          "--restart to replace it, or move it away");
  }
  return cepheus::Status::Ok();
}

int Run(const std::string& path, int parallelism, bool restart, int64_t checkpoint_delay_ms,
        const std::string& kafka_test_ledger) {
  auto p = Load(path);
  if (!p.ok()) {
    std::cerr << p.status().message() << (p.status().message().ends_with("\n") ? "" : "\n");
    return 1;
  }
  const auto& cfg = p->config;
  if (!g_log_level_given) spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  if (!g_log_format_given && cfg.log_json) cepheus::app::SetLogFormat(g_log_json = true);
  if (g_log_json) {
    // Every line of standard error is then a JSON object: one message per
    // diagnostic, its source line and caret included.
    std::istringstream lines(p->warnings);
    std::string message;
    for (std::string line; std::getline(lines, line);) {
      if (line.find(": warning: ") != std::string::npos && !message.empty()) {
        spdlog::warn("{}", message);
        message.clear();
      }
      if (!line.empty()) message += (message.empty() ? "" : "\n") + line;
    }
    if (!message.empty()) spdlog::warn("{}", message);
  } else {
    std::cerr << p->warnings;
  }
  // One process owns the state directory; taking the lock also proves it is
  // writable before any work is done.
  std::unique_ptr<cepheus::state::DirLock> lock;
  if (cfg.checkpoints_enabled) {
    auto l = cepheus::state::DirLock::Acquire(cfg.state_dir);
    if (!l.ok()) {
      std::cerr << "error: " << l.status().message() << "\n";
      return 1;
    }
    lock = std::move(l.value());
  }
  if (cepheus::Status start = CheckStart(cfg, restart); !start.ok()) {
    // A run killed after its final checkpoint's metadata but before its
    // outputs published that checkpoint: publish it now, so the refusal's
    // "its outputs are complete" holds.
    if (cepheus::Status done = CompleteFinishedOutputs(cfg, kafka_test_ledger); !done.ok()) {
      std::cerr << "error: " << done.message() << "\n";
      return 2;
    }
    std::cerr << "error: " << start.message() << "\n";
    // A refusal to destroy earlier output is the user's call (1); state that
    // cannot be read is a failure (2).
    return start.code() == cepheus::Status::Code::kInvalidArgument ? 1 : 2;
  }
  if (restart) spdlog::info("--restart: starting from the beginning; output files are replaced");
  auto outputs = OpenOutputs(cfg, "",
                             cfg.checkpoints_enabled ? cepheus::sinks::FileMode::kExactlyOnce
                                                     : cepheus::sinks::FileMode::kPlain,
                             kafka_test_ledger);
  if (!outputs.ok()) {
    std::cerr << "error: " << outputs.status().message() << "\n";
    return 1;
  }
  if (!p->config.late)
    spdlog::info("no 'late' output configured: late events go to standard error");
  if (!p->config.dead_letter)
    spdlog::info("no 'dead_letter' output configured: undecodable records go to standard error");
  cepheus::engine::RunOptions opts;
  opts.sources = &cepheus::sources::AllSources();
  opts.progress_interval = cfg.progress_interval;
  opts.parallelism = parallelism > 0 ? parallelism
                     : p->config.parallelism > 0
                         ? p->config.parallelism
                         : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (cfg.checkpoints_enabled) {
    auto& ck = opts.checkpoint;
    ck.enabled = true;
    ck.backend = cfg.state_backend;
    ck.state_dir = cfg.state_dir;
    ck.interval = cfg.checkpoint_interval;
    ck.retain = cfg.checkpoint_retain;
    ck.copy_files = cfg.checkpoint_copy_files;
    ck.cache_keys = ck.backend == cepheus::state::BackendKind::kMemory ? 0 : cfg.state_cache_keys;
    ck.restart = restart;
  }
  opts.max_live_runs = cfg.max_live_runs;
  if (opts.max_live_runs == 0) {
    // A quarter of physical memory, at about 512 bytes per partial match.
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page > 0)
      opts.max_live_runs = static_cast<size_t>(pages) * static_cast<size_t>(page) / 4 / 512;
  }
  // Testing aid (hidden flag): stretch two moments of every checkpoint so a
  // crash test can kill the process inside them.
  std::optional<cepheus::engine::DelayHooks> delay_hooks;
  if (checkpoint_delay_ms > 0) {
    delay_hooks.emplace(checkpoint_delay_ms);
    opts.checkpoint_hooks = &*delay_hooks;
  }
  // Metrics, health and readiness over HTTP (metrics.listen; loopback by
  // default). A port already taken is reported and the run goes on without.
  cepheus::metrics::Registry registry;
  cepheus::metrics::Readiness readiness;
  std::unique_ptr<cepheus::metrics::HttpServer> http;
  opts.metrics = &registry;
  opts.readiness = &readiness;
  if (!cfg.metrics_listen.empty()) {
    auto server = cepheus::metrics::HttpServer::Start(cfg.metrics_listen, &registry, &readiness);
    if (server.ok()) {
      http = std::move(server.value());
      const std::string host = cfg.metrics_listen.substr(0, cfg.metrics_listen.rfind(':'));
      spdlog::info("metrics on http://{}:{}/metrics (also /healthz, /readyz)", host, http->port());
    } else {
      spdlog::warn(
          "{}; running without metrics (set metrics.listen to a free port, or "
          "metrics: off)",
          server.status().message());
    }
  }
  // Hot reload (SIGHUP, or a changed file with patterns_reload: watch): the
  // new pipeline is loaded and checked while the old one runs; if it is
  // valid, the run stops at a checkpoint and continues from it with the new
  // pattern set -- the same mapping as a restart (unchanged patterns keep
  // their partial matches, changed and removed ones drop theirs, new ones
  // start empty, each logged); if not, the old set runs on and the error is
  // logged and counted.
  auto& c_reloads = registry.GetCounter("cepheus_reloads_total", "Pattern set reloads applied");
  auto& c_reload_failures = registry.GetCounter("cepheus_reload_failures_total",
                                                "Reloads refused (the new pipeline was invalid)");
  std::mutex reload_mu;
  std::optional<cepheus::engine::CompiledPipeline> pending;  // guarded by reload_mu
  std::atomic<bool> watcher_done{false};
  const std::string state_dir = cfg.state_dir;
  const bool checkpoints = cfg.checkpoints_enabled;
  auto watched_files = [](const cepheus::engine::PipelineConfig& c) {
    std::vector<std::string> files{c.path};
    for (const auto& ps : c.patterns)
      if (!ps.path.empty()) files.push_back(ps.path);
    return files;
  };
  auto mtimes = [](const std::vector<std::string>& files) {
    std::vector<int64_t> out;
    for (const auto& f : files) {
      std::error_code ec;
      const auto t = std::filesystem::last_write_time(f, ec);
      out.push_back(ec ? -1 : static_cast<int64_t>(t.time_since_epoch().count()));
    }
    return out;
  };
  std::vector<std::string> watched = watched_files(cfg);
  std::vector<int64_t> seen = mtimes(watched);
  std::atomic<bool> watch{cfg.watch_patterns};
  std::thread watcher([&] {
    int ticks = 0;
    while (!watcher_done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      bool reload = g_reload_requested.exchange(false);
      if (watch.load() && ++ticks % 10 == 0) {
        const std::vector<int64_t> now = mtimes(watched);
        if (now != seen) {
          seen = now;
          reload = true;
          spdlog::info("reload: a pattern file or the pipeline file of {} changed", path);
        }
      }
      if (!reload) continue;
      auto next = Load(path);
      std::string why;
      if (!next.ok())
        why = next.status().message();
      else if (!checkpoints || !next->config.checkpoints_enabled)
        why = "hot reload needs checkpoints (the state moves to the new pattern set through one)";
      else if (next->config.state_dir != state_dir)
        why = "a reload cannot move the state directory (" + state_dir + " -> " +
              next->config.state_dir + "); restart to do that";
      if (!why.empty()) {
        c_reload_failures.Add(1);
        spdlog::error("reload refused, the running pattern set stays: {}", why);
        continue;
      }
      watched = watched_files(next->config);
      seen = mtimes(watched);
      {
        std::lock_guard<std::mutex> l(reload_mu);
        pending = std::move(next.value());
      }
      spdlog::info("reload: the new pipeline is valid; applying it at a checkpoint");
      if (auto* r = g_runner.load()) r->Stop();
    }
  });
  struct JoinWatcher {
    std::atomic<bool>& done;
    std::thread& t;
    ~JoinWatcher() {
      done.store(true);
      if (t.joinable()) t.join();
    }
  } join_watcher{watcher_done, watcher};
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGHUP, OnHangup);
  auto current = std::make_unique<cepheus::engine::CompiledPipeline>(std::move(p.value()));
  while (true) {
    cepheus::engine::RunOutputs outs = outputs->Get();
    cepheus::engine::PipelineRunner runner(*current, outs, opts);
    g_runner.store(&runner);
    // A stop or reload that came before the runner existed applies now.
    if (g_stop_requested.load()) runner.Stop();
    {
      std::lock_guard<std::mutex> l(reload_mu);
      if (pending) runner.Stop();
    }
    auto summary = runner.Run();
    g_runner.store(nullptr);
    if (!summary.ok()) {
      std::cerr << "error: " << summary.status().message() << "\n";
      return 2;
    }
    std::optional<cepheus::engine::CompiledPipeline> next;
    {
      std::lock_guard<std::mutex> l(reload_mu);
      if (summary->stopped && !g_stop_requested.load() && pending) next.swap(pending);
    }
    if (!next) {
      spdlog::info("{}: {} records, {} events, {} matches, {} timeouts, {} late, {} dead letters{}",
                   path, summary->reader.records_read, summary->reader.events, summary->matches,
                   summary->timeouts, summary->reader.late, summary->reader.dead_letters,
                   summary->stopped ? " (stopped)" : "");
      return 0;
    }
    // The run stopped at a checkpoint: continue from it with the new set.
    std::cerr << next->warnings;
    spdlog::info("reload: continuing from the checkpoint with {} pattern(s)",
                 next->patterns.size());
    outputs->matches.reset();  // the outputs recover from that checkpoint when reopened
    outputs->late.reset();
    outputs->dead.reset();
    outputs->watermarks.reset();
    outputs->routed.clear();
    auto reopened =
        OpenOutputs(next->config, "", cepheus::sinks::FileMode::kExactlyOnce, kafka_test_ledger);
    if (!reopened.ok()) {
      std::cerr << "error: " << reopened.status().message() << "\n";
      return 2;
    }
    outputs = std::move(reopened);
    current = std::make_unique<cepheus::engine::CompiledPipeline>(std::move(*next));
    opts.checkpoint.restart = false;
    opts.progress_interval = current->config.progress_interval;
    watch.store(current->config.watch_patterns);
    c_reloads.Add(1);
  }
}

// Expands --input arguments: files, globs and directories (their regular
// files), sorted by name. "NAME=SPEC" targets stream NAME.
cepheus::Result<std::vector<std::vector<std::string>>> ExpandInputs(
    const std::vector<std::string>& specs, const cepheus::engine::PipelineConfig& cfg) {
  namespace fs = std::filesystem;
  std::vector<std::vector<std::string>> files(cfg.streams.size());
  for (const std::string& spec : specs) {
    std::string pattern = spec;
    size_t stream = 0;
    auto eq = spec.find('=');
    if (eq != std::string::npos && cfg.FindStream(spec.substr(0, eq))) {
      for (size_t i = 0; i < cfg.streams.size(); ++i)
        if (cfg.streams[i].name == spec.substr(0, eq)) stream = i;
      pattern = spec.substr(eq + 1);
    } else if (cfg.streams.size() > 1) {
      return cepheus::Status::InvalidArgument(
          "the pipeline has several streams: write --input STREAM=" + spec);
    }
    auto expanded = cepheus::ExpandPathSpec(pattern);
    if (!expanded.ok())
      return cepheus::Status::NotFound(
          "--input " + spec + (expanded.status().message().starts_with("matches") ? " " : ": ") +
          expanded.status().message());
    auto& dst = files[stream];
    dst.insert(dst.end(), expanded->begin(), expanded->end());
  }
  return files;
}

std::string HumanBytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(b) / (1ull << 30));
  else if (b >= (1ull << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1ull << 20));
  else
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024);
  return buf;
}

struct BacktestArgs {
  std::vector<std::string> inputs;
  std::string from, to, output, summary_json, memory_budget, spill_dir;
  bool as_live = false;
  int64_t hold_metrics_ms = 0;  // testing: keep /metrics up this long after the end
};

int Backtest(const std::string& path, int parallelism, const BacktestArgs& a) {
  auto p = Load(path);
  if (!p.ok()) {
    std::cerr << p.status().message() << (p.status().message().ends_with("\n") ? "" : "\n");
    return 1;
  }
  std::cerr << p->warnings;
  cepheus::engine::BacktestOptions opts;
  opts.sources = &cepheus::sources::AllSources();
  opts.parallelism = parallelism > 0
                         ? parallelism
                         : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  opts.as_live = a.as_live;
  for (auto [text, dst] : {std::pair{&a.from, &opts.from}, std::pair{&a.to, &opts.to}}) {
    if (text->empty()) continue;
    auto t = cepheus::ParseTimeOrEpochMillis(*text);
    if (!t) {
      std::cerr << "error: '" << *text
                << "' is not a date, an RFC 3339 time or epoch milliseconds (e.g. 2026-08-01, "
                   "2026-08-01T12:00:00Z or 1785542400000)\n";
      return 2;
    }
    *dst = *t;
  }
  if (opts.from && opts.to && *opts.from >= *opts.to) {
    std::cerr << "error: --from (" << cepheus::FormatRfc3339(*opts.from)
              << ") must be before --to (" << cepheus::FormatRfc3339(*opts.to)
              << "): the range would be empty\n";
    return 2;
  }
  if (!a.inputs.empty()) {
    auto files = ExpandInputs(a.inputs, p->config);
    if (!files.ok()) {
      std::cerr << "error: " << files.status().message() << "\n";
      return 1;
    }
    opts.files = std::move(files.value());
  }
  // An output that is also an input would be truncated before it is read.
  {
    const auto& c = p->config;
    std::vector<std::string> outs;
    if (!a.output.empty()) outs.push_back(a.output);
    if (a.output.empty() && c.matches.is_file()) outs.push_back(c.matches.path);
    if (c.late && c.late->is_file()) outs.push_back(c.late->path);
    if (c.dead_letter && c.dead_letter->is_file()) outs.push_back(c.dead_letter->path);
    for (const auto& stream_files : opts.files)
      for (const auto& f : stream_files)
        for (const auto& o : outs)
          if (cepheus::SameFile(f, o)) {
            std::cerr << "error: output " << o
                      << " is also an input (it would be truncated before it is read)\n";
            return 1;
          }
  }
  opts.memory_budget = cepheus::engine::DefaultMemoryBudget();
  if (!a.memory_budget.empty()) {
    auto b = cepheus::ParseByteSize(a.memory_budget);
    if (!b) {
      std::cerr << "error: --memory-budget '" << a.memory_budget
                << "' is not a size (e.g. 512MB, 2GB)\n";
      return 2;
    }
    opts.memory_budget = *b;
  }
  opts.spill_dir = a.spill_dir;
  const bool tty = ::isatty(2);
  // Metrics (metrics.listen, as for `run`): the backtest's progress, then its
  // results per pattern.
  cepheus::metrics::Registry registry;
  cepheus::metrics::Readiness readiness;
  std::unique_ptr<cepheus::metrics::HttpServer> http;
  if (!p->config.metrics_listen.empty()) {
    auto server =
        cepheus::metrics::HttpServer::Start(p->config.metrics_listen, &registry, &readiness);
    if (server.ok()) {
      http = std::move(server.value());
      readiness.SetReady(true);
      const std::string& l = p->config.metrics_listen;
      spdlog::info("metrics on http://{}:{}/metrics", l.substr(0, l.rfind(':')), http->port());
    } else {
      spdlog::warn("{}; backtest without metrics", server.status().message());
    }
  }
  auto& g_events = registry.GetGauge("cepheus_backtest_events", "Events read so far");
  auto& g_bytes = registry.GetGauge("cepheus_backtest_bytes_read", "Input bytes read so far");
  auto& g_ratio = registry.GetMillisGauge("cepheus_backtest_progress_ratio",
                                          "Share of the input read (0 to 1; 1 while matching)");
  auto& g_groups =
      registry.GetGauge("cepheus_backtest_key_groups_done", "Key groups matched (complete mode)");
  opts.progress_every = http ? 1 : tty ? 0.5 : 10;
  double last_line = -1e9;
  opts.on_progress = [&, tty](const cepheus::engine::BacktestProgress& pr) {
    g_events.Set(static_cast<int64_t>(pr.events));
    g_bytes.Set(static_cast<int64_t>(pr.bytes_read));
    g_groups.Set(static_cast<int64_t>(pr.groups_done));
    g_ratio.Set(std::string(pr.phase) != "read" ? 1000
                : pr.total_bytes
                    ? static_cast<int64_t>(1000.0 * static_cast<double>(pr.bytes_read) /
                                           static_cast<double>(pr.total_bytes))
                    : 0);
    // The progress line at its own pace (metrics may ask for more updates).
    if (pr.seconds - last_line < (tty ? 0.5 : 10)) return;
    last_line = pr.seconds;
    double rate = pr.seconds > 0 ? static_cast<double>(pr.events) / pr.seconds : 0;
    char line[256];
    if (std::string(pr.phase) == "read") {
      double frac = pr.total_bytes ? std::min(1.0, static_cast<double>(pr.bytes_read) /
                                                       static_cast<double>(pr.total_bytes))
                                   : 0;
      double eta = frac > 0 ? pr.seconds * (1 - frac) / frac : 0;
      std::snprintf(line, sizeof line,
                    "reading %5.1f%%  %s of %s  %llu events  %.0f events/s  ETA %.0fs", frac * 100,
                    HumanBytes(pr.bytes_read).c_str(), HumanBytes(pr.total_bytes).c_str(),
                    static_cast<unsigned long long>(pr.events), rate, eta);
    } else {
      std::snprintf(line, sizeof line, "matching  key groups %llu/%llu  %llu events",
                    static_cast<unsigned long long>(pr.groups_done),
                    static_cast<unsigned long long>(pr.groups_total),
                    static_cast<unsigned long long>(pr.events));
    }
    if (tty)
      std::cerr << "\r\033[K" << line << std::flush;
    else
      std::cerr << line << "\n";
  };
  // A backtest's files appear whole when it succeeds, or not at all.
  auto outputs = OpenOutputs(p->config, a.output, cepheus::sinks::FileMode::kAtomic, "");
  if (!outputs.ok()) {
    std::cerr << "error: " << outputs.status().message() << "\n";
    return 1;
  }
  cepheus::engine::Backtester bt(*p, outputs->Get(), opts);
  auto s = bt.Run();
  if (tty) std::cerr << "\r\033[K";
  if (!s.ok()) {
    std::cerr << "error: " << s.status().message() << "\n";
    return 2;
  }
  for (auto* o : {outputs->matches.get(), outputs->late.get(), outputs->dead.get()}) {
    cepheus::Status fin = o->Finish();
    if (!fin.ok()) {
      std::cerr << "error: " << fin.message() << "\n";
      return 2;
    }
  }
  // The results, as `run` names them.
  g_events.Set(static_cast<int64_t>(s->reader.events));
  g_ratio.Set(1000);
  registry.GetCounter("cepheus_records_read_total", "Input records read")
      .Add(s->reader.records_read);
  registry.GetCounter("cepheus_dead_letters_total", "Records that could not be decoded")
      .Add(s->reader.dead_letters);
  registry.GetCounter("cepheus_late_events_total", "Events at or behind the watermark")
      .Add(s->reader.late);
  for (const auto& pat : p->patterns) {
    const std::string l = "pattern=\"" + pat->name + "\"";
    auto m = s->matches_per_pattern.find(pat->name);
    auto t = s->timeouts_per_pattern.find(pat->name);
    registry.GetCounter("cepheus_matches_total", "Matches emitted", l)
        .Add(m == s->matches_per_pattern.end() ? 0 : m->second);
    registry.GetCounter("cepheus_timeouts_total", "Partial matches that timed out", l)
        .Add(t == s->timeouts_per_pattern.end() ? 0 : t->second);
  }
  if (http && a.hold_metrics_ms > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(a.hold_metrics_ms));
  std::cerr << "backtest " << (a.as_live ? "(as live)" : "(complete)") << " of " << path << "\n"
            << "  records read   " << s->reader.records_read << "\n"
            << "  events         " << s->reader.events
            << (s->reader.out_of_range
                    ? " (" + std::to_string(s->reader.out_of_range) + " outside --from/--to)"
                    : "")
            << "\n"
            << "  dead letters   " << s->reader.dead_letters << "\n"
            << "  late           " << s->reader.late << "\n";
  for (const auto& [pat, n] : s->matches_per_pattern)
    std::cerr << "  matches        " << n << "  " << pat << " (timeouts "
              << s->timeouts_per_pattern[pat] << ")\n";
  if (const std::string held = s->matcher.HeldSummary(); !held.empty())
    std::cerr << "  held matches   " << held << "\n";
  if (s->matcher.skip_errors)
    std::cerr << "  skip errors    " << s->matcher.skip_errors
              << " matches could not apply SKIP ... STRICT (in the dead_letter output)\n";
  for (const auto& w : s->warnings) std::cerr << "  WARNING        " << w << "\n";
  for (const auto& k : s->top_keys)
    std::cerr << "  top key        " << k.key << "  " << k.matches << " matches of " << k.pattern
              << "\n";
  char tail[160];
  std::snprintf(
      tail, sizeof tail, "  wall time      %.2f s (reading %.2f s), %.0f events/s%s\n", s->seconds,
      s->read_seconds, s->seconds > 0 ? static_cast<double>(s->reader.events) / s->seconds : 0.0,
      s->spill_runs ? (", spilled " + std::to_string(s->spill_runs) + " sorted runs").c_str() : "");
  std::cerr << tail;
  if (!a.summary_json.empty()) {
    std::ofstream out(a.summary_json);
    out << s->ToJson() << "\n";
    if (!out) {
      std::cerr << "error: cannot write " << a.summary_json << "\n";
      return 2;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("cepheus"));
  cepheus::app::SetLogFormat(/*json=*/false);
  CLI::App app{"Cepheus: complex event processing over keyed event-time streams"};
  app.set_version_flag("--version", std::string("cepheus ") + CEPHEUS_VERSION);
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "Log level: trace, debug, info, warn, error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->each([](const std::string& level) {
        spdlog::set_level(spdlog::level::from_str(level));
        g_log_level_given = true;
      });
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "Log format: text or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->each([](const std::string& format) {
        bool json = false;
        cepheus::app::ParseLogFormat(format, &json);
        cepheus::app::SetLogFormat(g_log_json = json);
        g_log_format_given = true;
      });
  std::string path;
  bool dot = false;
  int parallelism = 0;
  bool restart = false;
  auto* check =
      app.add_subcommand("check", "Validate a pipeline and its patterns; print the compiled NFA");
  check->add_option("pipeline", path, "Pipeline YAML file")->required();
  check->add_flag("--dot", dot, "Print the NFA as Graphviz DOT");
  bool cost = false;
  double key_rate = 1.0;
  check->add_flag("--cost", cost,
                  "Print per pattern a bound on live partial matches and state per key");
  check->add_option("--key-rate", key_rate, "For --cost: events per second of one key (default 1)")
      ->check(CLI::PositiveNumber);
  auto* run = app.add_subcommand(
      "run",
      "Run a pipeline until its inputs end, continuing from its latest checkpoint (SIGINT/SIGTERM "
      "stop at a checkpoint)");
  run->add_option("pipeline", path, "Pipeline YAML file")->required();
  run->add_option("-p,--parallelism", parallelism,
                  "Worker threads (default: pipeline setting, else all cores)")
      ->check(CLI::Range(1, 256));
  run->add_flag("--restart", restart,
                "Start from the beginning: discard checkpoints and replace output files (needed "
                "to run a finished pipeline again or to replace earlier output)");
  int64_t checkpoint_delay_ms = 0;
  // For crash tests only; not shown in --help.
  run->add_option("--testing-checkpoint-delay-ms", checkpoint_delay_ms)->group("");
  std::string kafka_test_ledger;
  run->add_option("--testing-kafka-ledger", kafka_test_ledger)->group("");
  BacktestArgs bargs;
  std::vector<std::string> test_files;
  auto* test = app.add_subcommand(
      "test", "Run pattern test files: events through a pipeline, matches compared (exit 0/1)");
  test->add_option("files", test_files, "Pattern test files (YAML)")->required();
  cepheus::app::ExplainArgs xargs;
  auto* explain = app.add_subcommand(
      "explain",
      "Show a pattern's automaton and bound; with --events, what its runs did with each event");
  explain->add_option("pipeline", xargs.pipeline, "Pipeline YAML file")->required();
  explain->add_option("--pattern", xargs.pattern, "The pattern")->required();
  explain->add_option("--key", xargs.key, "Only this key's events and runs");
  explain->add_option("--events", xargs.events_file,
                      "Events of the pattern's stream (a file in its format)");
  explain->add_flag("--dot", xargs.dot, "Print the automaton as Graphviz DOT");
  explain->add_option("--from", xargs.from, "Show events from this time (RFC 3339 or epoch ms)");
  explain->add_option("--to", xargs.to, "Show events before this time");
  auto* backtest =
      app.add_subcommand("backtest", "Run the patterns over bounded history as a batch job");
  backtest->add_option("pipeline", path, "Pipeline YAML file")->required();
  backtest->add_option("--input", bargs.inputs,
                       "Input files, globs or directories (STREAM=SPEC for several streams)");
  backtest->add_option("--from", bargs.from,
                       "Only events at or after this time (date or RFC 3339)");
  backtest->add_option("--to", bargs.to, "Only events before this time");
  backtest->add_option("-o,--output", bargs.output,
                       "Matches to this file (default: the pipeline's matches output)");
  backtest->add_option("-p,--parallelism", parallelism, "Worker threads (default: all cores)")
      ->check(CLI::Range(1, 256));
  backtest->add_flag("--as-live", bargs.as_live,
                     "Judge late events as a live run would (default: every event counts)");
  backtest->add_option("--memory-budget", bargs.memory_budget,
                       "Buffered events before spilling sorted runs to disk (default: 1/4 of RAM)");
  backtest->add_option("--spill-dir", bargs.spill_dir,
                       "Where spill files go (default: the system temp directory)");
  backtest->add_option("--testing-hold-metrics-ms", bargs.hold_metrics_ms)->group("");
  backtest->add_option("--summary-json", bargs.summary_json,
                       "Also write the summary as JSON to this file");
  app.add_subcommand("version", "Print the version")->callback([] {
    std::cout << "cepheus " << CEPHEUS_VERSION << "\n";
  });
  // Usage errors exit 2 (CLI11's own codes are >100), and an unknown command
  // says so rather than "A subcommand is required".
  if (argc > 1 && argv[1][0] != '-') {
    const std::string cmd = argv[1];
    bool known = false;
    for (const auto* sub : app.get_subcommands({})) known |= sub->get_name() == cmd;
    if (!known) {
      std::cerr << "error: unknown command '" << cmd
                << "' (commands: check, run, backtest, version; see cepheus --help)\n";
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (check->parsed()) return Check(path, dot, cost, key_rate);
  if (explain->parsed()) {
    if (!g_log_level_given) spdlog::set_level(spdlog::level::warn);
    return cepheus::app::RunExplain(xargs, std::cout);
  }
  if (test->parsed()) {
    // The engine's info lines would bury the report: warnings and errors only.
    if (!g_log_level_given) spdlog::set_level(spdlog::level::warn);
    return cepheus::app::RunPatternTests(test_files, std::cout);
  }
  if (run->parsed()) return Run(path, parallelism, restart, checkpoint_delay_ms, kafka_test_ledger);
  if (backtest->parsed()) return Backtest(path, parallelism, bargs);
  return 0;
}
