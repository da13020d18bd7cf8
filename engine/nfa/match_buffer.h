// The shared match buffer: every event a run takes is stored once, as a node
// linked to the node of the event before it in that run's match. Runs that
// branch from a common prefix share the prefix's nodes (like Flink's
// SharedBuffer, SASE's stacks). Nodes are reference counted: a node lives while
// a run, a held match or a later node points at it, so the buffer never holds
// events of dead runs. Not thread-safe: each worker owns its pool.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/row.h"
#include "common/time_types.h"

namespace cepheus::engine {

// Identity of an event within its key: event time, then arrival order among
// events of that key with the same time. Independent of parallelism and of
// how other keys' events interleave.
struct EventId {
  int64_t ts = 0;
  uint32_t tie = 0;
  auto operator<=>(const EventId&) const = default;
};

struct BufNode {
  RowPtr row;
  BufNode* prev = nullptr;  // holds a reference
  uint32_t refs = 0;
  int32_t state = 0;
  int32_t var = 0;
  EventId id;
};

class NodePool {
 public:
  NodePool() = default;
  NodePool(const NodePool&) = delete;
  NodePool& operator=(const NodePool&) = delete;
  ~NodePool();

  // A node with one reference (the caller's); takes a reference on `prev`.
  BufNode* New(RowPtr row, EventId id, int state, int var, BufNode* prev);
  static void Ref(BufNode* n) {
    if (n) ++n->refs;
  }
  // Drops one reference; frees the node and, transitively, predecessors
  // nobody else holds.
  void Unref(BufNode* n);
  size_t live() const { return live_; }

 private:
  std::vector<std::unique_ptr<BufNode[]>> chunks_;
  std::vector<BufNode*> free_;
  size_t live_ = 0;
};

// Events of a match, first to last.
std::vector<const BufNode*> PathOf(const BufNode* last);

}  // namespace cepheus::engine
