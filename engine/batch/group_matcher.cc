#include "engine/batch/group_matcher.h"

#include <algorithm>

namespace cepheus::engine::batch {

GroupMatcher::GroupMatcher(const CompiledPipeline& p, int keying)
    : keying_(static_cast<uint32_t>(keying)),
      key_(p, keying),
      op_(p, state::KeyGroupRange{}, &stats_, nullptr, nullptr) {}

void GroupMatcher::Event(const Entry& e, io::RecordBatch* out, std::vector<KeyCount>* top) {
  if (!run_.empty() && e.hash != run_.front().hash) FlushRun(out, top);
  run_.push_back(e);
}

void GroupMatcher::Finish(io::RecordBatch* out, std::vector<KeyCount>* top) {
  FlushRun(out, top);
  EndKey(top);
}

void GroupMatcher::AddStats(BacktestSummary* sum) const {
  const MatcherStats m = stats_.matcher();
  sum->matcher.Add(m);
  sum->matches += m.matches;
  sum->timeouts += m.timeouts;
  sum->runs_dropped += m.runs_dropped;
  for (const auto& c : op_.pattern_counts()) {
    if (!c.matches && !c.timeouts) continue;
    sum->matches_per_pattern[c.name] += c.matches;
    sum->timeouts_per_pattern[c.name] += c.timeouts;
  }
}

void GroupMatcher::TrimTop(std::vector<KeyCount>* top) {
  std::sort(top->begin(), top->end(), [](const KeyCount& a, const KeyCount& b) {
    if (a.matches != b.matches) return a.matches > b.matches;
    if (a.pattern != b.pattern) return a.pattern < b.pattern;
    return a.key < b.key;
  });
  if (top->size() > 10) top->resize(10);
}

void GroupMatcher::FlushRun(io::RecordBatch* out, std::vector<KeyCount>* top) {
  if (run_.empty()) return;
  std::string first_key(key_(*run_.front().row, &scratch_));
  bool one_key = true;
  for (const Entry& e : run_)
    if (key_(*e.row, &scratch_) != first_key) one_key = false;
  op_.RenderInto(out, &errors_);
  if (one_key) {
    // The usual case: the run is one key; its events are already in order.
    StartKey(first_key, top);
    for (const Entry& e : run_) op_.OnEvent(keying_, e.row, nullptr);
  } else {
    std::stable_sort(run_.begin(), run_.end(), [this](const Entry& a, const Entry& b) {
      std::string sa, sb;
      return key_(*a.row, &sa) < key_(*b.row, &sb);
    });
    for (const Entry& e : run_) {
      std::string_view k = key_(*e.row, &scratch_);
      if (!have_key_ || k != current_key_) StartKey(k, top);
      op_.OnEvent(keying_, e.row, nullptr);
    }
  }
  run_.clear();
}

void GroupMatcher::StartKey(std::string_view key, std::vector<KeyCount>* top) {
  EndKey(top);
  current_key_.assign(key);
  have_key_ = true;
}

void GroupMatcher::EndKey(std::vector<KeyCount>* top) {
  if (!have_key_) return;
  op_.EndKey(keying_, current_key_, [&](const std::string& pattern, uint64_t matches) {
    top->push_back(KeyCount{pattern, current_key_, matches});
    if (top->size() > 40) TrimTop(top);
  });
  have_key_ = false;
}

}  // namespace cepheus::engine::batch
