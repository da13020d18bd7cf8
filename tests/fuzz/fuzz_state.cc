// libFuzzer target: the decoders of durable state (a key matcher's state and
// checkpoint metadata). Damaged bytes are refused or give a state that keeps
// matching without fault and releases every node it holds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "engine/checkpoint/checkpoint.h"
#include "engine/nfa/nfa_runtime.h"
#include "patterns/compiled.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cepheus;
  if (size == 0) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 4 == 0) {
    (void)engine::CheckpointMetadata::Decode(bytes, "_metadata");
    return 0;
  }
  static const patterns::StreamCatalog catalog = [] {
    patterns::StreamCatalog c;
    c["s"] = patterns::StreamInfo{Schema::Create({{"key", FieldType::kString},
                                                  {"type", FieldType::kString},
                                                  {"v", FieldType::kInt},
                                                  {"ts", FieldType::kTimestamp}})
                                      .value(),
                                  {"key"}};
    return c;
  }();
  static const auto compiled = patterns::CompilePatternFile(
      patterns::SourceFile("f.cep",
                           "PATTERN p FROM s MATCH a -> b+ -> c WITHIN 100 MILLISECONDS "
                           "DEFINE a AS type = 'A', b AS v >= a.v AND COUNT(b) < 5, "
                           "c AS type = 'C' AND SUM(b.v) > 2 AFTER MATCH SKIP PAST LAST EVENT "
                           "EMIT COUNT(b) AS n ON TIMEOUT EMIT COUNT(b) AS n"),
      catalog);
  if (!compiled.ok()) std::abort();
  const patterns::CompiledPattern& p = *compiled.value()[0];
  engine::NodePool pool;
  engine::MatcherStats stats;
  engine::MatcherEnv env;
  env.pattern = &p;
  env.pool = &pool;
  env.stats = &stats;
  env.report_timeouts = true;
  env.emit = [](const engine::MatchResult&) {};
  {
    auto km = engine::KeyMatcher::Deserialize(env, bytes);
    if (km.ok()) {
      RowBuilder b(4);
      for (int i = 0; i < 6; ++i) {
        b.Reset();
        b.SetString(0, "k");
        b.SetString(1, std::string(1, "ABC"[i % 3]));
        b.SetInt(2, i);
        b.SetInt(3, 1000 + i);
        RowPtr row = b.Build(EventTime::FromMillis(1000 + i), static_cast<uint64_t>(i));
        km->Process(env, row, km->NextId(row->time()));
      }
      km->AdvanceTime(env, EventTime::Max());
      km->Clear(env);
    }
  }
  if (pool.live() != 0) std::abort();  // a refused or finished state holds nothing
  return 0;
}
