// Record decoders: turn one input record (a JSONL line, a CSV row) into a Row
// of the stream's schema. A record that does not fit is rejected with a
// reason (it goes to the dead-letter output); nothing is guessed. A decoder
// is used by one thread at a time.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/row.h"
#include "common/schema.h"
#include "common/status.h"
#include "common/time_types.h"

namespace cepheus::engine {

struct DecoderOptions {
  const Schema* schema = nullptr;
  int time_field = -1;
  // Fields a record must carry (key and event-time fields). Others may be
  // absent or null.
  std::vector<int> required;
  // Event times outside [min_time, max_time) are rejected: a time far off
  // (a unit mix-up, a corrupt value) would otherwise poison the watermark.
  EventTime min_time = kDefaultMinEventTime;
  EventTime max_time = kDefaultMaxEventTime;

  // 1900-01-01T00:00:00Z and 2400-01-01T00:00:00Z.
  static constexpr EventTime kDefaultMinEventTime = EventTime::FromMillis(-2208988800000);
  static constexpr EventTime kDefaultMaxEventTime = EventTime::FromMillis(13569465600000);
};

// One record's outcome in DecodeBatch: a row, or the reason it was rejected.
struct DecodedRecord {
  RowPtr row;
  std::string error;
};

class RecordDecoder {
 public:
  virtual ~RecordDecoder() = default;
  // True if the first record is a header (CSV).
  virtual bool wants_header() const { return false; }
  virtual Status SetHeader(std::string_view line) { return Status::Ok(); }
  // Decodes `text`. On failure returns false and sets `*error`.
  // `readable_after`: how many bytes after the end of `text` may be read
  // (the JSON decoder parses in place when that covers its padding).
  virtual bool Decode(std::string_view text, uint64_t seq, RowPtr* out, std::string* error,
                      size_t readable_after = 0) = 0;
  // Decodes lines [0, n) of a batch in one pass if it can; returns how many
  // leading lines it decoded (their results are in `out`). The rest is left
  // to Decode(). Default: none.
  // `line_seqs`: as in DecodeBatch.
  virtual size_t DecodeFast(const std::vector<std::string_view>& lines, size_t readable_after,
                            uint64_t seq, std::vector<DecodedRecord>* out,
                            const std::vector<uint64_t>* line_seqs) {
    return 0;
  }
};

std::unique_ptr<RecordDecoder> MakeJsonlDecoder(DecoderOptions options);

// Decodes `lines` (records of one buffer, in order, contiguous in memory;
// `readable_after` bytes may be read after the last one) into `out`, one
// result per line. Successful rows get sequence numbers from `*seq` upward.
// The JSON decoder parses the whole run of lines in one pass when it can and
// falls back to line-by-line decoding from the first line it cannot vouch for,
// so results (and error reasons) are exactly those of Decode() line by line.
// With `line_seqs`, line i's row gets line_seqs[i] instead (and *seq is unused).
void DecodeBatch(RecordDecoder& decoder, const std::vector<std::string_view>& lines,
                 size_t readable_after, uint64_t* seq, std::vector<DecodedRecord>* out,
                 const std::vector<uint64_t>* line_seqs = nullptr);
std::unique_ptr<RecordDecoder> MakeCsvDecoder(DecoderOptions options);

// Parses a timestamp given as text: epoch milliseconds or RFC 3339.
bool ParseTimestampText(std::string_view text, int64_t* ms);

}  // namespace cepheus::engine
