// KeyMatcher (de)serialization: the per-key state that checkpoints store.
// Format: docs/formats.md, "Key matcher state".
#include <unordered_map>

#include "common/varint.h"
#include "engine/nfa/nfa_runtime.h"

namespace cepheus::engine {
namespace {

constexpr uint8_t kVersion = 1;

// Which aggregate words hold row pointers (they are written as node indexes).
std::vector<bool> RowWords(const patterns::AggLayout& layout) {
  std::vector<bool> rows(static_cast<size_t>(layout.num_words), false);
  auto mark = [&](int w) {
    if (w >= 0) rows[static_cast<size_t>(w)] = true;
  };
  for (const auto& va : layout.vars) {
    mark(va.first);
    mark(va.last);
    mark(va.prev);
    for (const auto& fa : va.fields) {
      mark(fa.min);
      mark(fa.max);
    }
  }
  return rows;
}

Status Damaged(const char* what) {
  return Status::Corruption(std::string("key matcher state is damaged (") + what + ")");
}

}  // namespace

void KeyMatcher::Serialize(const MatcherEnv& env, std::string* out) const {
  // Number every node reachable from a run or a held match, predecessors first.
  std::unordered_map<const BufNode*, uint64_t> index;
  std::vector<const BufNode*> nodes;
  std::vector<const BufNode*> chain;
  auto visit = [&](const BufNode* n) {
    chain.clear();
    for (; n && !index.count(n); n = n->prev) chain.push_back(n);
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      index[*it] = nodes.size();
      nodes.push_back(*it);
    }
  };
  for (const Run& r : runs_) visit(r.node);
  for (const MatchResult& m : held_) visit(m.last);
  // Rows are written once and shared by index, as they are shared in memory
  // (one event taken by several runs is one row).
  std::unordered_map<const Row*, uint64_t> row_index;
  std::vector<const Row*> rows;
  for (const BufNode* n : nodes)
    if (row_index.emplace(n->row.get(), rows.size()).second) rows.push_back(n->row.get());
  const std::vector<bool> row_words = RowWords(env.pattern->aggs);
  auto put_node = [&](const BufNode* n) { PutVarint(out, n ? index.at(n) + 1 : 0); };
  auto put_aggs = [&](const AggWords& w) {
    PutVarint(out, w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      if (i < row_words.size() && row_words[i]) {
        const Row* r = reinterpret_cast<const Row*>(static_cast<uintptr_t>(w[i]));
        PutVarint(out, r ? row_index.at(r) + 1 : 0);
      } else {
        PutVarint(out, w[i]);
      }
    }
  };

  out->push_back(static_cast<char>(kVersion));
  PutSigned(out, last_id_.ts);
  PutVarint(out, last_id_.tie);
  PutVarint(out, position_);
  PutVarint(out, has_fresh_ ? 1 : 0);
  PutVarint(out, rows.size());
  for (const Row* r : rows) r->AppendEncoded(out);
  PutVarint(out, nodes.size());
  for (const BufNode* n : nodes) {
    put_node(n->prev);
    PutVarint(out, static_cast<uint64_t>(n->state));
    PutSigned(out, n->var);
    PutSigned(out, n->id.ts);
    PutVarint(out, n->id.tie);
    PutVarint(out, row_index.at(n->row.get()));
  }
  PutVarint(out, runs_.size());
  for (const Run& r : runs_) {
    put_node(r.node);
    PutVarint(out, static_cast<uint64_t>(r.state));
    PutVarint(out, r.pending);
    PutVarint(out, r.pending_finals);
    PutVarint(out, (r.fresh ? 1 : 0) | (r.completed ? 2 : 0));
    PutSigned(out, r.start.millis());
    PutSigned(out, r.last.millis());
    PutSigned(out, r.deadline.millis());
    PutSigned(out, r.start_id.ts);
    PutVarint(out, r.start_id.tie);
    put_aggs(r.aggs);
  }
  PutVarint(out, held_.size());
  for (const MatchResult& m : held_) {
    PutVarint(out, m.timeout ? 1 : 0);
    put_node(m.last);
    put_aggs(m.aggs);
    PutSigned(out, m.start.millis());
    PutSigned(out, m.end.millis());
    PutSigned(out, m.start_id.ts);
    PutVarint(out, m.start_id.tie);
    PutVarint(out, m.completion.position);
    PutVarint(out, m.completion.phase);
    PutSigned(out, m.completion.deadline);
  }
}

// Reads a matcher encoding (see Serialize) section by section. Every node
// taken from the pool is remembered so that a failure gives them all back.
class MatcherDecoder {
 public:
  MatcherDecoder(MatcherEnv& env, std::string_view in)
      : env_(env), p_(*env.pattern), row_words_(RowWords(p_.aggs)), in_(in) {}

  Result<KeyMatcher> Decode() {
    if (in_.empty() || static_cast<uint8_t>(in_[0]) != kVersion) return Damaged("unknown version");
    in_.remove_prefix(1);
    if (const char* what = DecodeAll()) {
      env_.stats->live_runs += static_cast<int64_t>(km_.runs_.size());  // Clear takes them off
      km_.Clear(env_);
      for (BufNode* n : nodes_) env_.pool->Unref(n);
      return Damaged(what);
    }
    // The runs and held matches now own their nodes; drop the creation references.
    for (BufNode* n : nodes_) env_.pool->Unref(n);
    km_.RecomputeNextDeadline();
    km_.RecomputeStateMask();
    env_.stats->live_runs += static_cast<int64_t>(km_.runs_.size());
    return std::move(km_);
  }

 private:
  // Null, or what was damaged.
  const char* DecodeAll() {
    uint64_t u, count;
    if (!GetSigned(&in_, &km_.last_id_.ts) || !GetVarint(&in_, &u)) return "header";
    km_.last_id_.tie = static_cast<uint32_t>(u);
    if (!GetVarint(&in_, &km_.position_) || !GetVarint(&in_, &u)) return "header";
    km_.has_fresh_ = u != 0;
    if (!GetVarint(&in_, &count) || count > in_.size()) return "row count";
    for (uint64_t i = 0; i < count; ++i)
      if (!ReadRow()) return "row";
    if (!GetVarint(&in_, &count) || count > in_.size()) return "node count";
    for (uint64_t i = 0; i < count; ++i)
      if (const char* what = ReadNode()) return what;
    if (!GetVarint(&in_, &count) || count > in_.size()) return "run count";
    for (uint64_t i = 0; i < count; ++i)
      if (const char* what = ReadRun()) return what;
    if (!GetVarint(&in_, &count) || count > in_.size()) return "held count";
    for (uint64_t i = 0; i < count; ++i)
      if (!ReadHeld()) return "held match";
    if (!in_.empty()) return "trailing bytes";
    return nullptr;
  }

  bool ReadRow() {
    const char* cur = in_.data();
    RowPtr row = Row::DecodeFrom(&cur, in_.data() + in_.size());
    if (!row) return false;
    in_.remove_prefix(static_cast<size_t>(cur - in_.data()));
    rows_.push_back(std::move(row));
    return true;
  }

  // A node reference: 0 is null, i is the i-th node read so far.
  bool GetNode(BufNode** n) {
    uint64_t i;
    if (!GetVarint(&in_, &i) || i > nodes_.size()) return false;
    *n = i ? nodes_[i - 1] : nullptr;
    return true;
  }

  const char* ReadNode() {
    BufNode* prev;
    int64_t var, ts;
    uint64_t state, tie, ri;
    if (!GetNode(&prev) || !GetVarint(&in_, &state) || !GetSigned(&in_, &var) ||
        !GetSigned(&in_, &ts) || !GetVarint(&in_, &tie))
      return "node";
    if (state >= p_.states.size() || var < -1 || var >= static_cast<int64_t>(p_.vars.size()))
      return "node refers to another pattern";
    if (!GetVarint(&in_, &ri) || ri >= rows_.size()) return "node row";
    nodes_.push_back(env_.pool->New(rows_[ri], EventId{ts, static_cast<uint32_t>(tie)},
                                    static_cast<int>(state), static_cast<int>(var), prev));
    return nullptr;
  }

  // Row words may only point at rows of the owner's own path: those are the
  // rows its references keep alive.
  bool GetAggs(AggWords* w, const BufNode* path) {
    uint64_t n;
    if (!GetVarint(&in_, &n) || n != static_cast<uint64_t>(p_.aggs.num_words)) return false;
    w->assign(n, 0);
    for (size_t i = 0; i < n; ++i) {
      uint64_t v;
      if (!GetVarint(&in_, &v)) return false;
      if (row_words_[i] && v) {
        if (v > rows_.size()) return false;
        const Row* row = rows_[v - 1].get();
        bool on_path = false;
        for (const BufNode* q = path; q && !on_path; q = q->prev) on_path = q->row.get() == row;
        if (!on_path) return false;
        v = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(row));
      }
      (*w)[i] = v;
    }
    return true;
  }

  const char* ReadRun() {
    KeyMatcher::Run r;
    uint64_t state, flags, finals, tie;
    int64_t start, last, deadline;
    if (!GetNode(&r.node) || !r.node || !GetVarint(&in_, &state) || !GetVarint(&in_, &r.pending) ||
        !GetVarint(&in_, &finals) || !GetVarint(&in_, &flags) || !GetSigned(&in_, &start) ||
        !GetSigned(&in_, &last) || !GetSigned(&in_, &deadline) ||
        !GetSigned(&in_, &r.start_id.ts) || !GetVarint(&in_, &tie) || !GetAggs(&r.aggs, r.node))
      return "run";
    if (state >= p_.states.size() || state == 0) return "run state";
    const patterns::NfaState& st = p_.states[static_cast<size_t>(state)];
    const uint64_t edges =
        st.edges.size() >= 64 ? ~uint64_t{0} : (uint64_t{1} << st.edges.size()) - 1;
    const uint64_t final_bits = (uint64_t{1} << st.finals.size()) - 1;
    if ((r.pending & ~edges) || (finals & ~final_bits)) return "run edges";
    NodePool::Ref(r.node);
    r.state = static_cast<int>(state);
    r.pending_finals = static_cast<uint32_t>(finals);
    r.fresh = flags & 1;
    r.completed = flags & 2;
    r.start = EventTime::FromMillis(start);
    r.last = EventTime::FromMillis(last);
    r.deadline = EventTime::FromMillis(deadline);
    r.start_id.tie = static_cast<uint32_t>(tie);
    km_.runs_.push_back(std::move(r));
    return nullptr;
  }

  bool ReadHeld() {
    MatchResult m;
    uint64_t timeout, tie, pos, phase;
    int64_t start, end, seq;
    if (!GetVarint(&in_, &timeout) || !GetNode(&m.last) || !m.last || !GetAggs(&m.aggs, m.last) ||
        !GetSigned(&in_, &start) || !GetSigned(&in_, &end) || !GetSigned(&in_, &m.start_id.ts) ||
        !GetVarint(&in_, &tie) || !GetVarint(&in_, &pos) || !GetVarint(&in_, &phase) ||
        !GetSigned(&in_, &seq))
      return false;
    NodePool::Ref(m.last);
    m.timeout = timeout != 0;
    m.start = EventTime::FromMillis(start);
    m.end = EventTime::FromMillis(end);
    m.start_id.tie = static_cast<uint32_t>(tie);
    m.completion = CompletionKey{pos, static_cast<uint8_t>(phase), seq};
    km_.held_.push_back(std::move(m));
    return true;
  }

  MatcherEnv& env_;
  const patterns::CompiledPattern& p_;
  const std::vector<bool> row_words_;
  std::string_view in_;
  KeyMatcher km_;
  std::vector<RowPtr> rows_;
  std::vector<BufNode*> nodes_;
};

Result<KeyMatcher> KeyMatcher::Deserialize(MatcherEnv& env, std::string_view in) {
  return MatcherDecoder(env, in).Decode();
}

}  // namespace cepheus::engine
