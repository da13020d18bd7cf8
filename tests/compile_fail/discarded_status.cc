// Must NOT compile (CTest expects the compiler to fail): a Status that is
// dropped without IgnoreError() is an error under -Werror, so an error
// cannot be lost silently.
#include "common/status.h"

cepheus::Status Work() { return cepheus::Status::IoError("disk full"); }

int main() {
  Work();  // dropped: [[nodiscard]] rejects this
  return 0;
}
