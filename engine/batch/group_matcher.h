// GroupMatcher: runs the patterns of one keying over one sorted partition of
// a backtest, on the same CEP operator a live worker runs
// (engine/exec/cep_operator.h), fed one key at a time: a key's events in
// order, then the key ends (watermark +infinity for it).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/batch/backtest.h"
#include "engine/batch/partition.h"
#include "engine/exec/cep_operator.h"
#include "io/record.h"

namespace cepheus::engine::batch {

// The partition key of a keying's event, as text.
class KeyText {
 public:
  KeyText(const CompiledPipeline& p, int keying)
      : keying_(p.keyings[static_cast<size_t>(keying)]),
        schema_(p.config.streams[static_cast<size_t>(keying_.stream)].schema) {}
  std::string_view operator()(const Row& row, std::string* scratch) const {
    return KeyView(row, keying_.fields, schema_, scratch);
  }

 private:
  const Keying& keying_;
  const Schema& schema_;
};

class GroupMatcher {
 public:
  GroupMatcher(const CompiledPipeline& p, int keying);

  // Events arrive sorted by (hash, time, position); a run of equal hashes is
  // buffered so that the (practically never seen) case of two keys sharing a
  // hash can be split by key before matching. Match records go to `out`;
  // per (pattern, key) match counts to `top` (trimmed now and then).
  void Event(const Entry& e, io::RecordBatch* out, std::vector<KeyCount>* top);
  // The partition is over: the last key ends.
  void Finish(io::RecordBatch* out, std::vector<KeyCount>* top);
  void AddStats(BacktestSummary* sum) const;
  // Failed STRICT skips, for the dead-letter output.
  io::RecordBatch TakeErrors() { return std::move(errors_); }
  // Keeps the ten keys with the most matches, in a stable order.
  static void TrimTop(std::vector<KeyCount>* top);

 private:
  void FlushRun(io::RecordBatch* out, std::vector<KeyCount>* top);
  void StartKey(std::string_view key, std::vector<KeyCount>* top);
  // The key's input is over: every partial match ends (watermark +infinity).
  void EndKey(std::vector<KeyCount>* top);

  const uint32_t keying_;
  KeyText key_;
  WorkerStats stats_;
  CepOperator op_;
  std::vector<Entry> run_;
  std::string current_key_, scratch_;
  bool have_key_ = false;
  io::RecordBatch errors_;
};

}  // namespace cepheus::engine::batch
