#include "engine/nfa/match_buffer.h"

#include <algorithm>

namespace cepheus::engine {

namespace {
constexpr size_t kChunk = 1024;
}

NodePool::~NodePool() = default;

BufNode* NodePool::New(RowPtr row, EventId id, int state, int var, BufNode* prev) {
  if (free_.empty()) {
    chunks_.push_back(std::make_unique<BufNode[]>(kChunk));
    BufNode* c = chunks_.back().get();
    for (size_t i = kChunk; i-- > 0;) free_.push_back(&c[i]);
  }
  BufNode* n = free_.back();
  free_.pop_back();
  n->row = std::move(row);
  n->prev = prev;
  Ref(prev);
  n->refs = 1;
  n->state = state;
  n->var = var;
  n->id = id;
  ++live_;
  return n;
}

void NodePool::Unref(BufNode* n) {
  while (n && --n->refs == 0) {
    BufNode* prev = n->prev;
    n->prev = nullptr;
    n->row = RowPtr();
    free_.push_back(n);
    --live_;
    n = prev;
  }
}

std::vector<const BufNode*> PathOf(const BufNode* last) {
  std::vector<const BufNode*> path;
  for (const BufNode* n = last; n; n = n->prev) path.push_back(n);
  std::reverse(path.begin(), path.end());
  return path;
}

}  // namespace cepheus::engine
