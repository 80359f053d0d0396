// Products cut across a ThreadPool (kernels/gemm.h): every transpose, shapes that do and do not
// split evenly, alpha and beta, float and double, against a plain triple loop; and OpenBLAS left
// to run on the calling thread only.
#include <gtest/gtest.h>

#include <cblas.h>

#include <random>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/thread_pool.h"

namespace llmops::engine {
namespace {

template <typename T>
std::vector<T> random_matrix(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(u(rng));
  return v;
}

template <typename T>
void check_shapes(double tolerance) {
  std::mt19937 rng(3);
  ThreadPool pool(3);
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (auto [m, n, k] : {std::array<int, 3>{1, 1, 1}, {37, 300, 50}, {300, 37, 64}, {128, 129, 70}, {16, 2000, 40}}) {
        const int lda = ta ? m : k, ldb = tb ? k : n, ldc = n;
        const auto a = random_matrix<T>(static_cast<size_t>(ta ? k : m) * lda, rng);
        const auto b = random_matrix<T>(static_cast<size_t>(tb ? n : k) * ldb, rng);
        const auto c0 = random_matrix<T>(static_cast<size_t>(m) * ldc, rng);
        const T alpha = T(1.5), beta = T(0.5);
        auto c_pool = c0, c_one = c0;
        gemm(&pool, ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c_pool.data(), ldc);
        gemm(nullptr, ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c_one.data(), ldc);
        for (int i = 0; i < m; ++i) {
          for (int j = 0; j < n; ++j) {
            double ref = 0;
            for (int p = 0; p < k; ++p) {
              const double av = ta ? a[static_cast<size_t>(p) * lda + i] : a[static_cast<size_t>(i) * lda + p];
              const double bv = tb ? b[static_cast<size_t>(j) * ldb + p] : b[static_cast<size_t>(p) * ldb + j];
              ref += av * bv;
            }
            ref = alpha * ref + beta * static_cast<double>(c0[static_cast<size_t>(i) * ldc + j]);
            const size_t at = static_cast<size_t>(i) * ldc + j;
            ASSERT_NEAR(c_pool[at], ref, tolerance) << "ta " << ta << " tb " << tb << " " << m << "×" << n << "×" << k << " at " << i << "," << j;
            ASSERT_NEAR(c_pool[at], c_one[at], tolerance);
          }
        }
      }
    }
  }
}

TEST(Gemm, PoolProductsEqualTheSingleThreadedOnesInFloat) { check_shapes<float>(1e-4); }
TEST(Gemm, PoolProductsEqualTheSingleThreadedOnesInDouble) { check_shapes<double>(1e-11); }

TEST(Gemm, TheSameThreadCountGivesTheSameBits) {
  std::mt19937 rng(9);
  const int m = 256, n = 192, k = 96;
  const auto a = random_matrix<float>(static_cast<size_t>(m) * k, rng), b = random_matrix<float>(static_cast<size_t>(n) * k, rng);
  ThreadPool p1(2), p2(2);
  std::vector<float> c1(static_cast<size_t>(m) * n), c2(c1.size());
  gemm(&p1, false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c1.data(), n);
  gemm(&p2, false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c2.data(), n);
  EXPECT_EQ(c1, c2);
}

TEST(Gemm, OpenBlasRunsOnTheCallingThreadOnly) {
  blas_on_calling_threads();
  EXPECT_EQ(openblas_get_num_threads(), 1);
}

}  // namespace
}  // namespace llmops::engine
