// Row: one decoded event, immutable once built. A row is a single heap block:
// header, one 8-byte slot per schema field, then the bytes of its string fields.
// Numbers, bools and timestamps live in their slot; a string slot holds the
// (offset, length) of its bytes in the block. Rows are shared by reference
// count (RowPtr): the event-time buffer, the match buffer and the output may
// all hold the same row. The count is atomic, so a row may be shared between
// threads; its contents are never written after Build(), so reads need no lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/schema.h"
#include "common/time_types.h"

namespace cepheus {

class RowPtr;
class RowArena;

class Row {
 public:
  EventTime time() const { return EventTime::FromMillis(time_ms_); }
  uint32_t num_slots() const { return num_slots_; }
  bool IsNull(size_t i) const { return (null_mask_ >> i) & 1u; }
  int64_t GetInt(size_t i) const { return static_cast<int64_t>(slots()[i]); }
  double GetDouble(size_t i) const {
    double d;
    std::memcpy(&d, &slots()[i], sizeof d);
    return d;
  }
  bool GetBool(size_t i) const { return slots()[i] != 0; }
  std::string_view GetString(size_t i) const {
    uint64_t s = slots()[i];
    return std::string_view(strings() + (s >> 32), static_cast<size_t>(s & 0xffffffffu));
  }
  // Arrival sequence number, assigned by the source (ties in event time are
  // broken by it).
  uint64_t seq() const { return seq_; }
  // Total bytes held by this row.
  size_t ByteSize() const { return sizeof(Row) + num_slots_ * 8 + string_bytes_; }

  // Spill encoding (docs/formats.md): u32 body length, then the body:
  // i64 time, u64 seq, u64 null mask, u32 slots, u32 string bytes, the slots,
  // the string bytes. Little-endian, as in memory.
  void AppendEncoded(std::string* out) const;
  // Decodes one row at *p (advancing it); null if [*p, end) is not a whole
  // well-formed row.
  static RowPtr DecodeFrom(const char** p, const char* end);
  // The length of the encoded row starting at `p` given `avail` bytes there
  // (which may hold only part of it), or 0 if too few bytes to tell.
  static size_t EncodedLength(const char* p, size_t avail);
  // A copy of this row placed in `arena`. Its memory goes with the arena, so
  // every reference to it must be gone before the arena is destroyed.
  RowPtr CopyTo(RowArena* arena) const;

  void Ref() const { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() const {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) Destroy(this);
  }

 private:
  friend class RowBuilder;
  Row() = default;
  static void Destroy(const Row* r);
  const uint64_t* slots() const { return reinterpret_cast<const uint64_t*>(this + 1); }
  uint64_t* mutable_slots() { return reinterpret_cast<uint64_t*>(this + 1); }
  const char* strings() const { return reinterpret_cast<const char*>(slots() + num_slots_); }

  mutable std::atomic<uint32_t> refs_{1};
  uint32_t num_slots_ = 0;
  uint32_t string_bytes_ : 31 = 0;
  uint32_t in_arena_ : 1 = 0;  // memory belongs to a RowArena
  int64_t time_ms_ = 0;
  uint64_t seq_ = 0;
  uint64_t null_mask_ = 0;
};

// Owning reference to a Row (like intrusive_ptr).
class RowPtr {
 public:
  RowPtr() = default;
  explicit RowPtr(const Row* adopt) : r_(adopt) {}  // takes over one reference
  RowPtr(const RowPtr& o) : r_(o.r_) {
    if (r_) r_->Ref();
  }
  RowPtr(RowPtr&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  RowPtr& operator=(RowPtr o) noexcept {
    std::swap(r_, o.r_);
    return *this;
  }
  ~RowPtr() {
    if (r_) r_->Unref();
  }
  const Row* get() const { return r_; }
  const Row* operator->() const { return r_; }
  const Row& operator*() const { return *r_; }
  explicit operator bool() const { return r_ != nullptr; }

 private:
  const Row* r_ = nullptr;
};

// Bump allocation of rows that share one lifetime (a batch job's partition):
// one contiguous block after another, freed all at once. Not thread-safe.
class RowArena {
 public:
  RowArena() = default;
  RowArena(const RowArena&) = delete;
  RowArena& operator=(const RowArena&) = delete;
  ~RowArena();
  void* Allocate(size_t bytes);
  size_t bytes() const { return total_; }

 private:
  static constexpr size_t kChunk = 1 << 20;
  std::vector<char*> chunks_;
  size_t used_ = kChunk;  // in the last chunk
  size_t total_ = 0;
};

// Builds one row. Set every slot (or leave it null), then Build().
// Not thread-safe; reusable after Build().
class RowBuilder {
 public:
  explicit RowBuilder(size_t num_slots) : slots_(num_slots, 0) {}
  void Reset() {
    std::fill(slots_.begin(), slots_.end(), 0);
    strings_.clear();
    null_mask_ = ~uint64_t{0} >> (64 - slots_.size());
    if (slots_.empty()) null_mask_ = 0;
  }
  void SetInt(size_t i, int64_t v) {
    slots_[i] = static_cast<uint64_t>(v);
    null_mask_ &= ~(uint64_t{1} << i);
  }
  void SetDouble(size_t i, double v) {
    std::memcpy(&slots_[i], &v, sizeof v);
    null_mask_ &= ~(uint64_t{1} << i);
  }
  void SetBool(size_t i, bool v) {
    slots_[i] = v ? 1 : 0;
    null_mask_ &= ~(uint64_t{1} << i);
  }
  void SetString(size_t i, std::string_view v) {
    slots_[i] = (static_cast<uint64_t>(strings_.size()) << 32) | v.size();
    strings_.append(v);
    null_mask_ &= ~(uint64_t{1} << i);
  }
  bool IsSet(size_t i) const { return !((null_mask_ >> i) & 1u); }
  int64_t GetInt(size_t i) const { return static_cast<int64_t>(slots_[i]); }
  RowPtr Build(EventTime time, uint64_t seq) const;

 private:
  std::vector<uint64_t> slots_;
  std::string strings_;
  uint64_t null_mask_ = 0;
};

}  // namespace cepheus
