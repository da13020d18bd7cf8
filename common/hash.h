// Stable 64-bit hashing for keys. Unlike std::hash, the value is part of the
// on-disk contract (key groups in checkpoints), so it never changes between
// builds or platforms.
#pragma once

#include <cstdint>
#include <string_view>

namespace cepheus {

// FNV-1a over the bytes, then a murmur3-style finalizer for good low bits.
inline uint64_t StableHash(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

inline uint64_t HashCombine(uint64_t a, uint64_t b) {
  a ^= b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2);
  return a;
}

}  // namespace cepheus
