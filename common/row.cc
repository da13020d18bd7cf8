#include "common/row.h"

#include <new>

namespace cepheus {

void Row::Destroy(const Row* r) {
  r->~Row();
  ::operator delete(const_cast<Row*>(r));
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
