// The backtest's exchange: events partitioned by (keying, key group), each
// partition sorted by (key hash, event time, input position) before it is
// matched or spilled. Single-threaded per partition set.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/row.h"
#include "engine/plan/pipeline.h"
#include "state/key_groups.h"

namespace cepheus::engine::batch {

constexpr int kGroups = state::kDefaultKeyGroups;

struct Entry {
  uint64_t hash;  // of the key: groups a key's events together
  int64_t ts;     // copies of the row's event time and input position, so
  uint64_t seq;   // sorting does not touch the (scattered) rows
  RowPtr row;
};

inline Entry MakeEntry(uint64_t hash, RowPtr row) {
  Entry e{hash, row->time().millis(), row->seq(), std::move(row)};
  return e;
}

// Orders events of a partition by key hash, event time, input position. Two
// keys with the same 64-bit hash would interleave; the group matcher
// separates them.
struct EntryLess {
  bool operator()(const Entry& a, const Entry& b) const {
    if (a.hash != b.hash) return a.hash < b.hash;
    if (a.ts != b.ts) return a.ts < b.ts;
    return a.seq < b.seq;
  }
};

// A partition: events of one keying whose keys fall in one key group.
struct Partition {
  std::vector<Entry> entries;
  // The rows of `entries`, contiguous: a key group's events are read together
  // when matching, and rows allocated in arrival order would be scattered.
  // One arena per reader thread (the last one is filled).
  std::vector<std::unique_ptr<RowArena>> arenas;
  RowArena* arena() {
    if (arenas.empty()) arenas.push_back(std::make_unique<RowArena>());
    return arenas.back().get();
  }
  // Spilled sorted runs: [offset, offset + length) in spill file `run`.
  struct Section {
    int run;
    uint64_t offset, length;
  };
  std::vector<Section> sections;
  bool empty() const { return entries.empty() && sections.empty(); }
  // Forgets the events in memory (and the rows they own).
  void Release() {
    entries.clear();
    entries.shrink_to_fit();
    arenas.clear();
  }
};

// [keying][key group]
using PartSet = std::vector<std::vector<Partition>>;
PartSet NewPartSet(size_t keyings);
// Moves every partition of `src` into the same partition of `dst`.
void MergeParts(PartSet& src, PartSet* dst);

// Sorts a partition by EntryLess. A partition usually holds a few keys whose
// events arrived almost in time order, so: bucket by hash (stable, linear),
// then sort a bucket only if it is not in order already.
void SortEntries(std::vector<Entry>& v);

}  // namespace cepheus::engine::batch
