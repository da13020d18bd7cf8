// The cepheus command line: check and run pipelines.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>
#include <thread>

#include "engine/pipeline.h"
#include "engine/runner.h"
#include "sinks/outputs.h"

namespace {

cepheus::engine::PipelineRunner* g_runner = nullptr;

void OnSignal(int) {
  if (g_runner) g_runner->Stop();
}

cepheus::Result<cepheus::engine::CompiledPipeline> Load(const std::string& path) {
  auto cfg = cepheus::engine::LoadPipelineConfig(path);
  if (!cfg.ok()) return cfg.status();
  return cepheus::engine::CompilePipeline(std::move(cfg.value()));
}

int Check(const std::string& path, bool dot) {
  auto p = Load(path);
  if (!p.ok()) {
    std::cerr << p.status().message() << (p.status().message().ends_with("\n") ? "" : "\n");
    return 1;
  }
  std::cerr << p->warnings;
  for (const auto& pat : p->patterns) std::cout << (dot ? pat->ToDot() : pat->ToText());
  std::cerr << path << ": OK (" << p->config.streams.size() << " stream(s), " << p->patterns.size()
            << " pattern(s))\n";
  return 0;
}

int Run(const std::string& path, int parallelism) {
  auto p = Load(path);
  if (!p.ok()) {
    std::cerr << p.status().message() << (p.status().message().ends_with("\n") ? "" : "\n");
    return 1;
  }
  std::cerr << p->warnings;
  using cepheus::engine::OutputConfig;
  auto matches = cepheus::sinks::MakeOutput(p->config.matches);
  auto late = cepheus::sinks::MakeOutput(p->config.late.value_or(OutputConfig{"stderr", ""}));
  auto dead =
      cepheus::sinks::MakeOutput(p->config.dead_letter.value_or(OutputConfig{"stderr", ""}));
  for (auto* o : {&matches, &late, &dead})
    if (!o->ok()) {
      std::cerr << "error: " << o->status().message() << "\n";
      return 1;
    }
  if (!p->config.late)
    spdlog::info("no 'late' output configured: late events go to standard error");
  if (!p->config.dead_letter)
    spdlog::info("no 'dead_letter' output configured: undecodable records go to standard error");
  cepheus::engine::RunOptions opts;
  opts.parallelism = parallelism > 0 ? parallelism
                     : p->config.parallelism > 0
                         ? p->config.parallelism
                         : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cepheus::engine::RunOutputs outs{matches->get(), late->get(), dead->get()};
  cepheus::engine::PipelineRunner runner(*p, outs, opts);
  g_runner = &runner;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  auto summary = runner.Run();
  g_runner = nullptr;
  if (!summary.ok()) {
    std::cerr << "error: " << summary.status().message() << "\n";
    return 2;
  }
  spdlog::info("{}: {} records, {} events, {} matches, {} timeouts, {} late, {} dead letters{}",
               path, summary->records_read, summary->events, summary->matches, summary->timeouts,
               summary->late, summary->dead_letters, summary->stopped ? " (stopped)" : "");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("cepheus"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  CLI::App app{"Cepheus: complex event processing over keyed event-time streams"};
  app.require_subcommand(1);
  std::string path;
  bool dot = false;
  int parallelism = 0;
  auto* check =
      app.add_subcommand("check", "Validate a pipeline and its patterns; print the compiled NFA");
  check->add_option("pipeline", path, "Pipeline YAML file")->required();
  check->add_flag("--dot", dot, "Print the NFA as Graphviz DOT");
  auto* run = app.add_subcommand("run", "Run a pipeline until its inputs end (or SIGINT/SIGTERM)");
  run->add_option("pipeline", path, "Pipeline YAML file")->required();
  run->add_option("-p,--parallelism", parallelism,
                  "Worker threads (default: pipeline setting, else all cores)")
      ->check(CLI::Range(1, 256));
  app.add_subcommand("version", "Print the version")->callback([] {
    std::cout << "cepheus 0.1.0\n";
  });
  CLI11_PARSE(app, argc, argv);
  if (check->parsed()) return Check(path, dot);
  if (run->parsed()) return Run(path, parallelism);
  return 0;
}
