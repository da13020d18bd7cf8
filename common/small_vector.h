// SmallVector: a vector of trivially copyable T that keeps up to N elements
// inline, so copying a short one (a run's aggregate words, on every branch of
// a partial match) does not allocate. Only what the engine needs.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <type_traits>

namespace cepheus {

template <typename T, size_t N>
class SmallVector {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  SmallVector() = default;
  SmallVector(size_t n, T value) { assign(n, value); }
  SmallVector(const SmallVector& o) { CopyFrom(o); }
  SmallVector(SmallVector&& o) noexcept { MoveFrom(std::move(o)); }
  SmallVector& operator=(const SmallVector& o) {
    if (this != &o) {
      size_ = 0;
      CopyFrom(o);
    }
    return *this;
  }
  SmallVector& operator=(SmallVector&& o) noexcept {
    if (this != &o) {
      heap_.reset();
      size_ = 0;
      MoveFrom(std::move(o));
    }
    return *this;
  }

  void assign(size_t n, T value) {
    Reserve(n);
    size_ = n;
    for (size_t i = 0; i < n; ++i) data()[i] = value;
  }
  T* data() { return heap_ ? heap_.get() : inline_; }
  const T* data() const { return heap_ ? heap_.get() : inline_; }
  size_t size() const { return size_; }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }

 private:
  void Reserve(size_t n) {
    if (n > N && (!heap_ || n > capacity_)) {
      heap_.reset(new T[n]);
      capacity_ = n;
    }
  }
  void CopyFrom(const SmallVector& o) {
    Reserve(o.size_);
    size_ = o.size_;
    if (size_) std::memcpy(data(), o.data(), size_ * sizeof(T));
  }
  void MoveFrom(SmallVector&& o) {
    if (o.heap_) {
      heap_ = std::move(o.heap_);
      capacity_ = o.capacity_;
    } else if (o.size_) {
      std::memcpy(inline_, o.inline_, o.size_ * sizeof(T));
    }
    size_ = o.size_;
    o.size_ = 0;
  }

  T inline_[N];
  std::unique_ptr<T[]> heap_;
  size_t capacity_ = 0;
  size_t size_ = 0;
};

}  // namespace cepheus
