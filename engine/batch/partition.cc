#include "engine/batch/partition.h"

#include <algorithm>
#include <iterator>

namespace cepheus::engine::batch {

PartSet NewPartSet(size_t keyings) {
  PartSet p(keyings);
  for (auto& v : p) v.resize(kGroups);
  return p;
}

void MergeParts(PartSet& src, PartSet* dst) {
  for (size_t k = 0; k < src.size(); ++k) {
    for (size_t g = 0; g < src[k].size(); ++g) {
      Partition& d = (*dst)[k][g];
      Partition& s = src[k][g];
      d.entries.insert(d.entries.end(), std::make_move_iterator(s.entries.begin()),
                       std::make_move_iterator(s.entries.end()));
      d.sections.insert(d.sections.end(), s.sections.begin(), s.sections.end());
      for (auto& a : s.arenas) d.arenas.push_back(std::move(a));
    }
  }
}

void SortEntries(std::vector<Entry>& v) {
  EntryLess less;
  if (v.size() < 2 || std::is_sorted(v.begin(), v.end(), less)) return;
  std::vector<uint64_t> hashes;
  for (const Entry& e : v) {
    if (std::find(hashes.begin(), hashes.end(), e.hash) != hashes.end()) continue;
    hashes.push_back(e.hash);
    if (hashes.size() > 64) {  // many keys: a plain sort is as good
      std::sort(v.begin(), v.end(), less);
      return;
    }
  }
  std::sort(hashes.begin(), hashes.end());
  std::vector<size_t> start(hashes.size() + 1, 0);
  for (const Entry& e : v)
    ++start[static_cast<size_t>(std::lower_bound(hashes.begin(), hashes.end(), e.hash) -
                                hashes.begin()) +
            1];
  for (size_t i = 1; i < start.size(); ++i) start[i] += start[i - 1];
  std::vector<Entry> out(v.size());
  std::vector<size_t> pos(start.begin(), start.end() - 1);
  for (Entry& e : v)
    out[pos[static_cast<size_t>(std::lower_bound(hashes.begin(), hashes.end(), e.hash) -
                                hashes.begin())]++] = std::move(e);
  for (size_t b = 0; b < hashes.size(); ++b) {
    auto first = out.begin() + static_cast<std::ptrdiff_t>(start[b]);
    auto last = out.begin() + static_cast<std::ptrdiff_t>(start[b + 1]);
    if (!std::is_sorted(first, last, less)) std::sort(first, last, less);
  }
  v = std::move(out);
}

}  // namespace cepheus::engine::batch
