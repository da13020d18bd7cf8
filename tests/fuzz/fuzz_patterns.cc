// libFuzzer target: the pattern parser, checker and NFA compiler on arbitrary
// text. Every input must end in patterns or positioned errors: no crash, no
// hang, no sanitizer report.
#include <cstddef>
#include <cstdint>
#include <string>

#include "patterns/compiled.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cepheus;
  static const patterns::StreamCatalog catalog = [] {
    patterns::StreamCatalog c;
    c["s"] = patterns::StreamInfo{Schema::Create({{"key", FieldType::kString},
                                                  {"type", FieldType::kString},
                                                  {"v", FieldType::kInt},
                                                  {"x", FieldType::kDouble},
                                                  {"ok", FieldType::kBool},
                                                  {"ts", FieldType::kTimestamp}})
                                      .value(),
                                  {"key"}};
    return c;
  }();
  std::string text(reinterpret_cast<const char*>(data), size);
  std::string warnings;
  auto compiled =
      patterns::CompilePatternFile(patterns::SourceFile("f.cep", text), catalog, &warnings);
  if (compiled.ok())
    for (const auto& p : compiled.value()) (void)p->ToText();
  return 0;
}
