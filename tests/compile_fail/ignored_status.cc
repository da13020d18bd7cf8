// Must compile: dropping a Status on purpose says so with IgnoreError().
#include "common/status.h"

cepheus::Status Work() { return cepheus::Status::IoError("disk full"); }

int main() {
  Work().IgnoreError();  // best effort, on purpose
  return 0;
}
