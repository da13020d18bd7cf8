#include "state/keyed_cache.h"

#include "common/hash.h"

namespace cepheus::state {

std::string DeadlineKey(EventTime at, std::string_view key) {
  std::string out;
  out.reserve(8 + key.size());
  PutFixed64BE(&out, static_cast<uint64_t>(at.millis()) ^ (uint64_t{1} << 63));
  out.append(key);
  return out;
}

bool DecodeDeadlineKey(std::string_view k, EventTime* at, std::string_view* key) {
  uint64_t u;
  if (!GetFixed64BE(&k, &u)) return false;
  *at = EventTime::FromMillis(static_cast<int64_t>(u ^ (uint64_t{1} << 63)));
  *key = k;
  return true;
}

Status DeleteSpace(StateBackend* backend, std::string_view values_ns, std::string_view timers_ns) {
  for (int g = 0; g < kDefaultKeyGroups; ++g) {
    CEPHEUS_RETURN_IF_ERROR(backend->DeleteNamespace(g, values_ns));
    CEPHEUS_RETURN_IF_ERROR(backend->DeleteNamespace(g, timers_ns));
  }
  return Status::Ok();
}

int KeyGroupOfKey(std::string_view key) { return KeyGroupOf(StableHash(key), kDefaultKeyGroups); }

}  // namespace cepheus::state
