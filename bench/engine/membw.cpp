// Memory read bandwidth, the ceiling of decode speed: the median of seven passes summing a
// 1 GiB float array with N threads, in GB/s, the sum vectorised (built with -ffast-math), so
// the adds keep up with the reads. The median, not the best: on these VMs one pass in a few
// came out near twice the others (59.8 against 34.3 GB/s), which no decode could reach.
// Usage: bench_membw [THREADS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const size_t n = (size_t{1} << 30) / sizeof(float);
  std::vector<float> data(n, 1.0f);
  std::vector<double> rates;
  volatile float sink = 0;
  for (int pass = 0; pass < 7; ++pass) {
    std::vector<float> partial(static_cast<size_t>(threads));
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        size_t b = n / threads * t, e = t + 1 == threads ? n : n / threads * (t + 1);
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = b; i + 4 <= e; i += 4) {
          s0 += data[i];
          s1 += data[i + 1];
          s2 += data[i + 2];
          s3 += data[i + 3];
        }
        partial[static_cast<size_t>(t)] = s0 + s1 + s2 + s3;
      });
    }
    for (auto& t : ts) t.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (float p : partial) sink = sink + p;
    rates.push_back(static_cast<double>(n * sizeof(float)) / s / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  std::printf("%.2f\n", rates[rates.size() / 2]);
  return 0;
}
