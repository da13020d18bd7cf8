// libFuzzer target: the JSON-lines and CSV record decoders. The first byte
// picks the format; for CSV the first line is the header. Batch decoding must
// agree with line-by-line decoding, as the engine relies on.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/ingest/decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cepheus;
  if (size == 0) return 0;
  static const Schema schema = Schema::Create({{"key", FieldType::kString},
                                               {"n", FieldType::kInt},
                                               {"x", FieldType::kDouble},
                                               {"ok", FieldType::kBool},
                                               {"ts", FieldType::kTimestamp}})
                                   .value();
  engine::DecoderOptions o;
  o.schema = &schema;
  o.time_field = 4;
  o.required = {4, 0};
  const bool csv = data[0] & 1;
  // The JSON decoders are reused across inputs, as the engine reuses them
  // (their parsers keep large buffers); CSV decoders hold the header.
  static const auto json_batch = engine::MakeJsonlDecoder(o);
  static const auto json_single = engine::MakeJsonlDecoder(o);
  std::unique_ptr<engine::RecordDecoder> csv_batch, csv_single;
  if (csv) {
    csv_batch = engine::MakeCsvDecoder(o);
    csv_single = engine::MakeCsvDecoder(o);
  }
  engine::RecordDecoder* decoder = csv ? csv_batch.get() : json_batch.get();
  engine::RecordDecoder* single = csv ? csv_single.get() : json_single.get();
  // The text, padded as the line reader pads its buffer.
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t length = text.size();
  text.append(64, ' ');  // before any view is taken: it may move the text
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start <= length) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos || nl > length) nl = length;
    lines.emplace_back(text.data() + start, nl - start);
    start = nl + 1;
  }
  if (csv) {
    if (!decoder->SetHeader(lines.front()).ok()) return 0;
    lines.erase(lines.begin());
    if (lines.empty()) return 0;
  }
  uint64_t seq = 0;
  std::vector<engine::DecodedRecord> batch;
  engine::DecodeBatch(*decoder, lines, 64, &seq, &batch);

  if (csv)
    (void)single->SetHeader(std::string_view(text.data(), std::min(text.find('\n'), length)));
  for (size_t i = 0; i < lines.size(); ++i) {
    RowPtr row;
    std::string error;
    const bool ok = single->Decode(lines[i], 0, &row, &error);
    if (ok != static_cast<bool>(batch[i].row) || (!ok && error != batch[i].error)) std::abort();
  }
  return 0;
}
