#include "common/row.h"

#include <algorithm>
#include <new>

namespace cepheus {

void Row::Destroy(const Row* r) {
  const bool in_arena = r->in_arena_;
  r->~Row();
  if (!in_arena) ::operator delete(const_cast<Row*>(r));
}

RowArena::~RowArena() {
  for (char* c : chunks_) ::operator delete(c);
}

void* RowArena::Allocate(size_t bytes) {
  bytes = (bytes + 7) & ~size_t{7};
  if (used_ + bytes > kChunk || chunks_.empty()) {
    size_t size = std::max(kChunk, bytes);
    chunks_.push_back(static_cast<char*>(::operator new(size)));
    used_ = size == kChunk ? 0 : size;  // an oversized row gets a chunk of its own
    total_ += size;
    if (size != kChunk) return chunks_.back();
  }
  void* p = chunks_.back() + used_;
  used_ += bytes;
  return p;
}

RowPtr Row::CopyTo(RowArena* arena) const {
  const size_t bytes = sizeof(Row) + num_slots_ * 8 + string_bytes_;
  void* mem = arena->Allocate(bytes);
  Row* r = new (mem) Row();
  r->num_slots_ = num_slots_;
  r->string_bytes_ = string_bytes_;
  r->in_arena_ = 1;
  r->time_ms_ = time_ms_;
  r->seq_ = seq_;
  r->null_mask_ = null_mask_;
  std::memcpy(r->mutable_slots(), slots(), num_slots_ * 8 + string_bytes_);
  return RowPtr(r);
}

namespace {
constexpr size_t kEncodedHeader = 8 + 8 + 8 + 4 + 4;
}

void Row::AppendEncoded(std::string* out) const {
  const uint32_t body = static_cast<uint32_t>(kEncodedHeader + num_slots_ * 8 + string_bytes_);
  out->append(reinterpret_cast<const char*>(&body), 4);
  out->append(reinterpret_cast<const char*>(&time_ms_), 8);
  out->append(reinterpret_cast<const char*>(&seq_), 8);
  out->append(reinterpret_cast<const char*>(&null_mask_), 8);
  const uint32_t nslots = num_slots_, sbytes = string_bytes_;
  out->append(reinterpret_cast<const char*>(&nslots), 4);
  out->append(reinterpret_cast<const char*>(&sbytes), 4);
  out->append(reinterpret_cast<const char*>(slots()), num_slots_ * 8 + string_bytes_);
}

size_t Row::EncodedLength(const char* p, size_t avail) {
  if (avail < 4) return 0;
  uint32_t body;
  std::memcpy(&body, p, 4);
  return 4 + size_t{body};
}

RowPtr Row::DecodeFrom(const char** p, const char* end) {
  const char* c = *p;
  uint32_t body;
  if (end - c < 4) return RowPtr();
  std::memcpy(&body, c, 4);
  c += 4;
  if (body < kEncodedHeader || static_cast<size_t>(end - c) < body) return RowPtr();
  int64_t time;
  uint64_t seq, nulls;
  uint32_t nslots, sbytes;
  std::memcpy(&time, c, 8);
  std::memcpy(&seq, c + 8, 8);
  std::memcpy(&nulls, c + 16, 8);
  std::memcpy(&nslots, c + 24, 4);
  std::memcpy(&sbytes, c + 28, 4);
  if (nslots > 64 || kEncodedHeader + size_t{nslots} * 8 + sbytes != body) return RowPtr();
  void* mem = ::operator new(sizeof(Row) + nslots * 8 + sbytes);
  Row* r = new (mem) Row();
  r->num_slots_ = nslots;
  r->string_bytes_ = sbytes;
  r->time_ms_ = time;
  r->seq_ = seq;
  r->null_mask_ = nulls;
  std::memcpy(r->mutable_slots(), c + kEncodedHeader, nslots * 8 + sbytes);
  *p = c + body;
  return RowPtr(r);
}

RowPtr RowBuilder::Build(EventTime time, uint64_t seq) const {
  size_t bytes = sizeof(Row) + slots_.size() * 8 + strings_.size();
  void* mem = ::operator new(bytes);
  Row* r = new (mem) Row();
  r->num_slots_ = static_cast<uint32_t>(slots_.size());
  r->string_bytes_ = static_cast<uint32_t>(strings_.size());
  r->time_ms_ = time.millis();
  r->seq_ = seq;
  r->null_mask_ = null_mask_;
  if (!slots_.empty()) std::memcpy(r->mutable_slots(), slots_.data(), slots_.size() * 8);
  if (!strings_.empty())
    std::memcpy(reinterpret_cast<char*>(r->mutable_slots() + slots_.size()), strings_.data(),
                strings_.size());
  return RowPtr(r);
}

}  // namespace cepheus
