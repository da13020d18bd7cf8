// libFuzzer target: the pipeline YAML loader. Any text ends in a config or a
// positioned error; yaml-cpp exceptions never escape.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/plan/pipeline_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto c = cepheus::engine::ParsePipelineConfig(text, "/tmp/fuzz/pipeline.yaml");
  (void)c;
  return 0;
}
