#include "state/key_groups.h"

namespace cepheus::state {

void GroupRange(int worker, int num_groups, int parallelism, int* begin, int* end) {
  // Inverse of WorkerOfGroup: the groups g with g * p / n == worker.
  auto first = [&](int w) {
    return static_cast<int>((static_cast<int64_t>(w) * num_groups + parallelism - 1) / parallelism);
  };
  *begin = first(worker);
  *end = worker + 1 >= parallelism ? num_groups : first(worker + 1);
}

}  // namespace cepheus::state
