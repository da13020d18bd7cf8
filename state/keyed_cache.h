// KeyedStateCache: an operator's keyed state, kept deserialized in memory
// and backed by a StateBackend -- the part of a keyed operator that is not
// about what it computes. Used by the CEP operator (a KeyMatcher per pattern
// and key); a window operator keeps its panes in it the same way.
//
// - Values live in spaces (one per pattern, say): a space has a backend
//   namespace for its values, one for its timer index, and a codec.
// - A bounded cache: past `capacity` keys in memory (over all spaces) the
//   least recently used tenth is written back and dropped; a later use loads
//   it again. Values changed since the last write-back are written at the
//   next barrier (WriteBack), all in one backend batch.
// - One event-time timer per value (its codec's Deadline): an in-memory
//   queue for values in memory, and an index (deadline, key) in the backend
//   for every stored value, so that the timers of evicted values still fire
//   (FireDue loads them). Memory does not grow with the number of keys.
//
// The stored value is [signed varint deadline][codec payload]
// (docs/formats.md "Worker state"). Single-threaded; one per worker.
//
// Map is a map from std::string to Entry with stable node addresses and
// lookup by std::string_view (e.g. an Abseil node map with a transparent
// hash, supplied by the user so that this header needs no Abseil).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/time_types.h"
#include "common/varint.h"
#include "state/key_groups.h"
#include "state/state_backend.h"
#include "time/timer_queue.h"

namespace cepheus::state {

// Timer-index entry key: the deadline as 8 bytes that sort like the signed
// value (big-endian, sign bit flipped), then the key.
std::string DeadlineKey(EventTime at, std::string_view key);
bool DecodeDeadlineKey(std::string_view k, EventTime* at, std::string_view* key);
// Deletes both namespaces of a space in every key group (its state is
// dropped when what produced it changed).
Status DeleteSpace(StateBackend* backend, std::string_view values_ns, std::string_view timers_ns);
// The key group of a partition key.
int KeyGroupOfKey(std::string_view key);

struct CacheStats {
  uint64_t keys_evicted = 0;  // written back and dropped from memory
  uint64_t keys_loaded = 0;   // read back from the backend
  uint64_t peak_cached_keys = 0;
  // Lookups of a key for an event (counted by the cache's user), and those not found in
  // memory that asked the backend (found there or not): the hit ratio is
  // 1 - backend_reads / lookups.
  uint64_t lookups = 0;
  uint64_t backend_reads = 0;
};

// How a space's values are stored and when they are due. Off the hot path
// (loads, write-backs, sweeps), hence virtual.
template <typename V>
class ValueCodec {
 public:
  virtual ~ValueCodec() = default;
  // Nothing in flight: deleted from the backend instead of written, and
  // dropped from memory by SweepIdle.
  virtual bool Idle(const V& v) const = 0;
  // When the value's timer is due (Max: none).
  virtual EventTime Deadline(const V& v) const = 0;
  virtual void Encode(const V& v, std::string* out) const = 0;
  virtual Status Decode(std::string_view in, V* out) const = 0;
  // Before a value leaves memory (evicted, swept, ended).
  virtual void Release(V& v) const = 0;
};

template <typename V, template <typename, typename> class MapT>
class KeyedStateCache {
 public:
  struct Entry {
    V value{};
    EventTime scheduled = EventTime::Max();     // earliest timer queued in memory
    uint64_t last_used = 0;                     // batch number, for eviction
    bool dirty = false;                         // changed since written to the backend
    bool stored = false;                        // the backend has an entry
    EventTime stored_timer = EventTime::Max();  // its timer-index entry (Max: none)
  };
  using Map = MapT<std::string, Entry>;
  using Node = std::pair<const std::string, Entry>;

  // Errors (backend failures, damaged values) go to `*error`, first one wins.
  KeyedStateCache(KeyGroupRange groups, CacheStats* stats, Status* error)
      : groups_(groups), stats_(*stats), error_(*error) {}
  ~KeyedStateCache() {
    for (Space& sp : spaces_)
      for (auto& kv : sp.map) sp.codec->Release(kv.second.value);
  }
  KeyedStateCache(const KeyedStateCache&) = delete;
  KeyedStateCache& operator=(const KeyedStateCache&) = delete;

  // A new space; `label` names it in error messages. Returns its index.
  int AddSpace(std::string values_ns, std::string timers_ns, std::string label,
               const ValueCodec<V>* codec) {
    Space& sp = spaces_.emplace_back();
    sp.values_ns = std::move(values_ns);
    sp.timers_ns = std::move(timers_ns);
    sp.label = std::move(label);
    sp.codec = codec;
    sp.group_cold_min.assign(kDefaultKeyGroups, EventTime::Max());
    return static_cast<int>(spaces_.size()) - 1;
  }
  // Backs the cache with `backend` (null: memory only, nothing evicted);
  // at most `capacity` keys in memory (0: no bound).
  void Attach(StateBackend* backend, size_t capacity) {
    backend_ = backend;
    capacity_ = capacity;
  }

  // The key's node if it is in memory.
  Node* Find(int s, std::string_view key) {
    Space& sp = spaces_[static_cast<size_t>(s)];
    auto it = sp.map.find(key);
    return it == sp.map.end() ? nullptr : &*it;
  }
  void PrefetchKey(int s, std::string_view key) {
    spaces_[static_cast<size_t>(s)].map.prefetch(key);
  }
  // The key's node: in memory, loaded from the backend, or new (default value).
  Node* FindOrLoad(int s, std::string_view key) {
    if (Node* n = Find(s, key)) return n;
    if (lookup_backend_) ++stats_.backend_reads;
    return Load(s, key);
  }
  // The value is about to change: written back at the next barrier.
  void Touch(Node& n) {
    n.second.dirty = true;
    n.second.last_used = batch_no_;
  }
  // Queues the node's timer for deadline `d` (its codec's Deadline), unless
  // an earlier one is queued.
  void ScheduleAt(int s, Node& n, EventTime d) {
    Entry& e = n.second;
    if (d != EventTime::Max() && d < e.scheduled) {
      e.scheduled = d;
      spaces_[static_cast<size_t>(s)].timers.Push(d, &n);
    }
  }
  void Schedule(int s, Node& n) {
    ScheduleAt(s, n, spaces_[static_cast<size_t>(s)].codec->Deadline(n.second.value));
  }

  // Calls fire(node, loaded) for every value whose timer is due at `wm`, in
  // memory or in the backend (`loaded`: read back for this; `fire` may
  // flush output after each of those), then queues its next timer. A value
  // whose deadline moved later since it was scheduled may be woken at the
  // earlier time: `fire` finds nothing due then.
  template <typename Fire>
  void FireDue(int s, EventTime wm, Fire&& fire) {
    Space& sp = spaces_[static_cast<size_t>(s)];
    while (auto t = sp.timers.PopDue(wm)) {
      Node* n = t->payload;
      Entry& e = n->second;
      if (e.scheduled != t->at) continue;  // superseded by an earlier timer
      e.scheduled = EventTime::Max();
      Touch(*n);
      fire(*n, false);
      Schedule(s, *n);  // idle values are left to SweepIdle
    }
    // Timers of values that were evicted: load them and let time pass.
    if (lookup_backend_ && sp.cold_min <= wm) FireStored(s, wm, fire);
  }

  // The key's input is over: end(node, false) and the key is forgotten (in
  // memory; see EndAll for the backend).
  template <typename End>
  void Erase(int s, std::string_view key, End&& end) {
    Space& sp = spaces_[static_cast<size_t>(s)];
    auto it = sp.map.find(key);
    if (it == sp.map.end()) return;
    end(*it, false);
    sp.codec->Release(it->second.value);
    sp.map.erase(it);
    --cached_;
    // Timers point at map nodes: none may point at the erased one.
    if (sp.map.empty())
      sp.timers.Clear();
    else
      RebuildTimers(sp);
  }
  // End of input: end(node, loaded) for every key of the space, those only
  // in the backend included (loaded), then memory is empty.
  template <typename End>
  void EndAll(int s, End&& end) {
    Space& sp = spaces_[static_cast<size_t>(s)];
    if (lookup_backend_) EndStored(s, end);
    sp.cold_min = EventTime::Max();
    sp.group_cold_min.assign(sp.group_cold_min.size(), EventTime::Max());
    for (auto& kv : sp.map) {
      end(kv, false);
      sp.codec->Release(kv.second.value);
    }
    cached_ -= sp.map.size();
    sp.map.clear();
    sp.timers.Clear();
  }

  // Every node of space `s` in memory: f(Node&).
  template <typename F>
  void ForEach(int s, F&& f) {
    for (auto& kv : spaces_[static_cast<size_t>(s)].map) f(kv);
  }
  size_t cached() const { return cached_; }
  bool over_capacity() const { return capacity_ && cached_ > capacity_; }

  // Drops idle values from memory (and their backend entries).
  void SweepIdle() {
    for (Space& sp : spaces_) {
      for (auto it = sp.map.begin(); it != sp.map.end();) {
        Entry& e = it->second;
        if (sp.codec->Idle(e.value)) {
          if (e.stored) writes_.Delete(KeyGroupOfKey(it->first), sp.values_ns, it->first);
          if (backend_) StoreTimer(sp, it->first, e, EventTime::Max());
          sp.codec->Release(e.value);
          sp.map.erase(it++);
          --cached_;
        } else {
          ++it;
        }
      }
      RebuildTimers(sp);
    }
    if (backend_) FlushWrites();
  }
  // The least recently used tenth goes to the backend when over capacity.
  void EvictIfOver() {
    if (over_capacity()) EvictCold();
  }
  // A batch ended (recency is counted in batches).
  void NextBatch() { ++batch_no_; }

  // Writes every changed value to the backend (a barrier).
  Status WriteBack() {
    for (Space& sp : spaces_)
      for (auto& [key, e] : sp.map) WriteBackKey(sp, key, e);
    FlushWrites();
    return error_;
  }

  // After the backend was restored from a checkpoint: keys of `groups` are
  // looked up there. `index_timers`: the checkpoint predates the timer index
  // (it is built from the stored deadlines).
  Status Restore(KeyGroupRange groups, bool index_timers) {
    if (!backend_) return Status::Internal("restore without a state backend");
    for (int g = groups.begin; g < groups.end; ++g) {
      for (Space& sp : spaces_) {
        if (index_timers) CEPHEUS_RETURN_IF_ERROR(IndexTimers(sp, g));
        CEPHEUS_RETURN_IF_ERROR(
            backend_->ScanNamespace(g, sp.timers_ns, "", [&](std::string_view k, std::string_view) {
              EventTime at;
              std::string_view key;
              if (DecodeDeadlineKey(k, &at, &key)) {
                sp.group_cold_min[static_cast<size_t>(g)] = at;
                sp.cold_min = std::min(sp.cold_min, at);
              }
              return false;  // the first entry is the earliest
            }));
      }
    }
    CEPHEUS_RETURN_IF_ERROR(error_);
    lookup_backend_ = true;
    return Status::Ok();
  }

 private:
  using Timers = timing::TimerQueue<Node*>;
  struct Space {
    std::string values_ns, timers_ns, label;
    const ValueCodec<V>* codec = nullptr;
    Map map;
    // A timer points at its key's map node (nodes are stable until erased;
    // erasing rebuilds the timers). A key rescheduled earlier leaves its old
    // timer behind, recognised as superseded (Entry::scheduled) when it pops.
    Timers timers;
    // No timer of a value that is only in the backend is due before this
    // (Max: none, or no backend); the same per key group.
    EventTime cold_min = EventTime::Max();
    std::vector<EventTime> group_cold_min;
  };
  static constexpr size_t kMaxBatchBytes = 4 << 20;
  static constexpr size_t kChunk = 4096;  // stored keys loaded at a time

  void Fail(const Status& s) {
    if (error_.ok()) error_ = s;
  }

  Node* Load(int s, std::string_view key) {
    Space& sp = spaces_[static_cast<size_t>(s)];
    Entry entry;
    if (lookup_backend_) {
      auto got = backend_->Get(KeyGroupOfKey(key), sp.values_ns, key);
      if (!got.ok()) {
        Fail(got.status());
      } else if (got->has_value()) {
        std::string_view v = **got;
        int64_t deadline = EventTime::Max().millis();
        Status d = GetSigned(&v, &deadline) ? sp.codec->Decode(v, &entry.value)
                                            : Status::Corruption("no deadline");
        if (!d.ok()) {
          Fail(Status::Corruption("state of key '" + std::string(key) + "' of " + sp.label + ": " +
                                  d.message()));
        } else {
          entry.stored = true;
          entry.stored_timer = EventTime::FromMillis(deadline);
          ++stats_.keys_loaded;
        }
      }
    }
    entry.last_used = batch_no_;
    stats_.peak_cached_keys = std::max<uint64_t>(stats_.peak_cached_keys, ++cached_);
    Node* node = &*sp.map.emplace(std::string(key), std::move(entry)).first;
    if (!sp.codec->Idle(node->second.value)) Schedule(s, *node);
    return node;
  }

  // Writes `e` to the backend if it changed (or deletes it if idle).
  void WriteBackKey(Space& sp, const std::string& key, Entry& e) {
    if (!e.dirty || !backend_) return;
    e.dirty = false;
    if (sp.codec->Idle(e.value)) {
      if (e.stored) writes_.Delete(KeyGroupOfKey(key), sp.values_ns, key);
      e.stored = false;
      StoreTimer(sp, key, e, EventTime::Max());
    } else {
      const EventTime d = sp.codec->Deadline(e.value);
      value_scratch_.clear();
      PutSigned(&value_scratch_, d.millis());
      sp.codec->Encode(e.value, &value_scratch_);
      writes_.Put(KeyGroupOfKey(key), sp.values_ns, key, value_scratch_);
      e.stored = true;
      StoreTimer(sp, key, e, d);
    }
    if (writes_.bytes() >= kMaxBatchBytes) FlushWrites();
  }
  // Makes the key's timer-index entry match deadline `d`.
  void StoreTimer(Space& sp, const std::string& key, Entry& e, EventTime d) {
    if (e.stored_timer == d) return;
    const int g = KeyGroupOfKey(key);
    if (e.stored_timer != EventTime::Max())
      writes_.Delete(g, sp.timers_ns, DeadlineKey(e.stored_timer, key));
    if (d != EventTime::Max()) {
      writes_.Put(g, sp.timers_ns, DeadlineKey(d, key), "");
      EventTime& group_min = sp.group_cold_min[static_cast<size_t>(g)];
      group_min = std::min(group_min, d);
      sp.cold_min = std::min(sp.cold_min, d);
    }
    e.stored_timer = d;
  }
  // Applies the collected writes (before anything reads the backend again).
  void FlushWrites() {
    if (writes_.count() == 0) return;
    Status s = backend_->Write(writes_);
    if (!s.ok()) Fail(s);
  }
  void RebuildTimers(Space& sp) {
    std::vector<typename Timers::Timer> timers;
    for (auto& kv : sp.map)
      if (kv.second.scheduled != EventTime::Max()) timers.push_back({kv.second.scheduled, &kv});
    sp.timers.Assign(std::move(timers));
  }

  void EvictCold() {
    struct Candidate {
      uint64_t last_used;
      Space* sp;
      Node* node;
    };
    std::vector<Candidate> all;
    all.reserve(cached_);
    for (Space& sp : spaces_)
      for (auto& kv : sp.map) all.push_back(Candidate{kv.second.last_used, &sp, &kv});
    const size_t target = capacity_ - capacity_ / 10;
    if (all.size() <= target) return;
    const size_t n = all.size() - target;
    std::nth_element(
        all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(),
        [](const Candidate& a, const Candidate& b) { return a.last_used < b.last_used; });
    for (size_t i = 0; i < n; ++i) {
      Space& sp = *all[i].sp;
      Entry& e = all[i].node->second;
      const std::string key = all[i].node->first;
      WriteBackKey(sp, key, e);  // with its timer entry, if it has a deadline
      sp.codec->Release(e.value);
      sp.map.erase(key);
      --cached_;
      ++stats_.keys_evicted;
    }
    FlushWrites();  // before any read: a key may be loaded again in the next batch
    lookup_backend_ = true;
    for (Space& sp : spaces_) RebuildTimers(sp);
  }

  // Loads the values whose timer-index entries are due at `wm`, in chunks,
  // and fires them.
  template <typename Fire>
  void FireStored(int s, EventTime wm, Fire& fire) {
    Space& sp = spaces_[static_cast<size_t>(s)];
    FlushWrites();  // the scan must see the timer entries written so far
    std::vector<std::string> due;
    for (int g = groups_.begin; g < groups_.end; ++g) {
      EventTime& group_min = sp.group_cold_min[static_cast<size_t>(g)];
      bool more = group_min <= wm;  // only groups with a due timer are read
      while (more) {
        // No entry of the group is earlier than group_min: the scan starts
        // there, past the deletion markers of the timers fired before (from
        // the start of the namespace it would step over all of them, every time).
        const std::string from = DeadlineKey(group_min, "");
        // Entries written meanwhile (keys evicted between chunks) lower it again.
        group_min = EventTime::Max();
        EventTime next = EventTime::Max();
        due.clear();
        more = false;
        Status st = backend_->ScanNamespace(g, sp.timers_ns, from,
                                            [&](std::string_view k, std::string_view) {
                                              EventTime at;
                                              std::string_view key;
                                              if (!DecodeDeadlineKey(k, &at, &key)) return true;
                                              if (at > wm || due.size() == kChunk) {
                                                next = at;
                                                more = at <= wm;
                                                return false;
                                              }
                                              due.emplace_back(k);
                                              return true;
                                            });
        if (!st.ok()) {
          Fail(st);
          return;
        }
        group_min = std::min(group_min, next);
        for (const std::string& tk : due) {
          writes_.Delete(g, sp.timers_ns, tk);
          const std::string_view key = std::string_view(tk).substr(8);
          Node* node = Find(s, key);
          const bool in_memory = node != nullptr;
          if (!node) node = Load(s, key);
          Entry& e = node->second;
          e.stored_timer = EventTime::Max();  // just deleted
          e.dirty = true;
          if (in_memory) continue;  // its own timer has fired
          e.scheduled = EventTime::Max();
          e.last_used = batch_no_;
          fire(*node, true);
          Schedule(s, *node);
        }
        FlushWrites();
        if (more) EvictIfOver();
      }
    }
    sp.cold_min = EventTime::Max();
    for (int g = groups_.begin; g < groups_.end; ++g)
      sp.cold_min = std::min(sp.cold_min, sp.group_cold_min[static_cast<size_t>(g)]);
  }

  // End of input with keys in the backend: every stored key ends too.
  template <typename End>
  void EndStored(int s, End& end) {
    Space& sp = spaces_[static_cast<size_t>(s)];
    for (int g = groups_.begin; g < groups_.end; ++g) {
      std::vector<std::string> keys;
      Status st =
          backend_->ScanNamespace(g, sp.values_ns, "", [&](std::string_view key, std::string_view) {
            if (!Find(s, key)) keys.emplace_back(key);
            return true;
          });
      if (!st.ok()) Fail(st);
      for (const std::string& k : keys) {
        Node* node = Load(s, k);
        end(*node, true);
        sp.codec->Release(node->second.value);
        sp.map.erase(k);
        --cached_;
      }
    }
  }

  // A checkpoint from before the timer index: one entry per stored key from
  // its deadline prefix.
  Status IndexTimers(Space& sp, int g) {
    Status bad;
    CEPHEUS_RETURN_IF_ERROR(backend_->ScanNamespace(
        g, sp.values_ns, "", [&](std::string_view key, std::string_view value) {
          int64_t deadline;
          if (!GetSigned(&value, &deadline)) {
            bad = Status::Corruption("damaged state of " + sp.label);
            return false;
          }
          if (deadline != EventTime::Max().millis())
            writes_.Put(g, sp.timers_ns, DeadlineKey(EventTime::FromMillis(deadline), key), "");
          if (writes_.bytes() >= kMaxBatchBytes) FlushWrites();
          return true;
        }));
    CEPHEUS_RETURN_IF_ERROR(bad);
    FlushWrites();
    return Status::Ok();
  }

  const KeyGroupRange groups_;
  CacheStats& stats_;
  Status& error_;
  StateBackend* backend_ = nullptr;
  size_t capacity_ = 0;
  bool lookup_backend_ = false;  // the backend may hold keys that are not in memory
  size_t cached_ = 0;
  uint64_t batch_no_ = 0;
  std::vector<Space> spaces_;
  StateWriteBatch writes_;
  std::string value_scratch_;
};

}  // namespace cepheus::state
