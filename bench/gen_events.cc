// Generates the benchmark workload as JSON lines on stdout: N events over
// 1000 keys, type uniform in {A,B,C,D}, price uniform in [0,100), event time
// +1 ms per event. Usage: gen_events N [seed]
#include <cstdio>
#include <cstdlib>
#include <random>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: gen_events N [seed]\n");
    return 2;
  }
  const long long n = std::atoll(argv[1]);
  std::mt19937_64 rng(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 42);
  std::uniform_int_distribution<int> key(0, 999), type(0, 3);
  std::uniform_real_distribution<double> price(0, 100);
  const long long t0 = 1790000000000LL;
  static char buf[1 << 16];
  std::setvbuf(stdout, buf, _IOFBF, sizeof buf);
  for (long long i = 0; i < n; ++i)
    std::printf("{\"key\":\"k%03d\",\"type\":\"%c\",\"price\":%.2f,\"ts\":%lld}\n", key(rng),
                "ABCD"[type(rng)], price(rng), t0 + i);
  return 0;
}
