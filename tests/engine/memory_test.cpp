// What the engine's memory does: the pages a load faults in, present memory and its recycling,
// packed panels taking the rows' place, and KV caches copied from one session to another.
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/thread_pool.h"
#include "model/model.h"
#include "model/present_memory.h"
#include "model/synth.h"
#include "unit/test_util.h"

namespace llmops::engine {
namespace {

// Under AddressSanitizer present memory comes from the heap (model/present_memory.h).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kOnHeap = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kOnHeap = true;
#else
constexpr bool kOnHeap = false;
#endif
#else
constexpr bool kOnHeap = false;
#endif

// Bytes of the process's mapping of path that are resident (its Rss in /proc/self/smaps).
uint64_t mapped_resident_bytes(const std::string& path) {
  std::ifstream smaps("/proc/self/smaps");
  uint64_t kb = 0;
  bool in = false;
  for (std::string line; std::getline(smaps, line);) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < line.find(' ')) {
      in = line.size() >= path.size() && line.compare(line.size() - path.size(), path.size(), path) == 0;
    } else if (in && line.rfind("Rss:", 0) == 0) {
      kb += std::stoull(line.substr(4));
    }
  }
  return kb * 1024;
}

// Load faults in every page a decode step reads (so the first request does not pay for them),
// but not the embedding table, of which a token reads one row: it would only cost memory.
TEST(Model, LoadFaultsInWhatDecodeReadsButNotTheEmbeddingTable) {
  llmops::test::TempDir dir;
  const std::string path = dir.file("m.gguf");
  ASSERT_TRUE(write_synth_model(*find_synth_shape("llama-15M"), GgmlType::kQ8_0, 4, path).ok());
  auto m = Model::load(path);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ASSERT_NE((*m)->classifier().data, (*m)->token_embedding().data);
  const uint64_t embd = (*m)->token_embedding().bytes(), rest = (*m)->weight_bytes() - embd;
  const uint64_t resident = mapped_resident_bytes(std::filesystem::canonical(path).string());
  EXPECT_GE(resident, rest * 9 / 10) << "the weights a decode step reads were not faulted in";
  EXPECT_LT(resident, rest + embd / 4) << "the embedding table was faulted in whole";
}

// A KV cache given back serves the next one that fits (no new mapping to fault in); zeroed memory
// is never a recycled block.
TEST(PresentMemory, AGivenBackBlockServesTheNextUnzeroedRequest) {
  if (kOnHeap) GTEST_SKIP() << "under AddressSanitizer blocks come from the heap";
  const size_t big = size_t{3} << 20;
  auto* p = static_cast<uint8_t*>(map_present(big, false));
  std::memset(p, 7, big);
  unmap_present(p, big);
  auto* q = static_cast<uint8_t*>(map_present(big - (big / 8), false));  // up to 25% smaller fits
  EXPECT_EQ(q, p);
  unmap_present(q, big - (big / 8));  // gives back the whole block
  auto* z = static_cast<uint8_t*>(map_present(big, true));
  EXPECT_NE(z, p);
  EXPECT_EQ(z[0], 0);
  EXPECT_EQ(z[big - 1], 0);
  auto* r = static_cast<uint8_t*>(map_present(big, false));
  EXPECT_EQ(r, p);
  EXPECT_EQ(r[big - 1], 7) << "the whole block came back";
  unmap_present(r, big);
  auto* far = static_cast<uint8_t*>(map_present(big / 2, false));  // half a free block: a new one
  EXPECT_NE(far, p);
  unmap_present(far, big / 2);
  unmap_present(z, big);
}

// The smaps fields of the mapping that starts at p: its size and its huge-page bytes (kB).
struct MappingInfo {
  bool found = false;
  uint64_t size_kb = 0, huge_kb = 0;
};
MappingInfo mapping_at(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  MappingInfo info;
  bool in = false;
  for (std::string line; std::getline(smaps, line);) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < line.find(' ')) {
      in = std::stoull(line.substr(0, line.find('-')), nullptr, 16) == reinterpret_cast<uintptr_t>(p);
      info.found = info.found || in;
    } else if (in && line.rfind("Size:", 0) == 0) {
      info.size_kb = std::stoull(line.substr(5));
    } else if (in && line.rfind("AnonHugePages:", 0) == 0) {
      info.huge_kb = std::stoull(line.substr(14));
    }
  }
  return info;
}

// Blocks of 2 MiB or more start on a huge-page boundary and have huge pages for their whole 2 MiB
// spans where the kernel's THP setting allows asking for them (the tail stays 4 KiB pages, so no
// memory is committed past what was asked for). A KV cache's block comes back whole when given
// back; a weights block (map_whole) goes back to the system at once.
TEST(PresentMemory, LargeBlocksAreWholeHugePages) {
  if (kOnHeap) GTEST_SKIP() << "under AddressSanitizer blocks come from the heap";
  const size_t huge = size_t{2} << 20, bytes = 3 * huge + 12345;
  auto* p = static_cast<uint8_t*>(map_whole(bytes));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % huge, 0u);
  std::memset(p, 1, bytes);
  MappingInfo info = mapping_at(p);
  ASSERT_TRUE(info.found);
  EXPECT_GE(info.size_kb * 1024, bytes);  // a neighbouring mapping may have merged with it
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string setting;
  std::getline(thp, setting);
  if (!setting.empty() && setting.find("[never]") == std::string::npos) {
    EXPECT_GE(info.huge_kb * 1024, 3 * huge) << "no huge pages though THP is '" << setting << "'";
  }
  unmap_whole(p, bytes);
  errno = 0;
  EXPECT_EQ(msync(p, bytes, MS_ASYNC), -1) << "an unloaded model's weights block is still mapped";
  EXPECT_EQ(errno, ENOMEM);
  // A populated block: aligned, in huge pages, and given back it serves the next KV cache of its
  // size, whole.
  auto* cache = static_cast<uint8_t*>(map_present(bytes, false));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(cache) % huge, 0u);
  if (!setting.empty() && setting.find("[never]") == std::string::npos) {
    EXPECT_GE(mapping_at(cache).huge_kb * 1024, 3 * huge) << "no huge pages though THP is '" << setting << "'";
  }
  std::memset(cache, 1, bytes);
  unmap_present(cache, bytes);
  auto* again = static_cast<uint8_t*>(map_present(bytes, false));
  EXPECT_EQ(again, cache);
  EXPECT_EQ(again[bytes - 1], 1);
  unmap_present(again, bytes);
  // A KV cache past the populate limit stays lazily faulted in 4 KiB pages, in an aligned block.
  auto* lazy = static_cast<uint8_t*>(map_present(kPopulateLimit + huge, false));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(lazy) % huge, 0u);
  lazy[0] = 1;
  EXPECT_EQ(mapping_at(lazy).huge_kb, 0u);
  unmap_present(lazy, kPopulateLimit + huge);
}

// pack_for_decode: Q4_0 matrices decode from their panels, which take the rows' place in memory
// (their mapped pages are dropped), and a decoded sequence gives what the rows gave, up to float
// order, and what a batch of sequences gives it, to the bit.
TEST(Model, Q4_0PanelsReplaceTheRowsForDecode) {
  if (!packed_serves_decode(GgmlType::kQ4_0)) GTEST_SKIP() << "no AVX-512 VNNI here: Q4_0 decodes from its rows";
  llmops::test::TempDir dir;
  const std::string path = dir.file("m.gguf");
  ASSERT_TRUE(write_synth_model(*find_synth_shape("llama-15M"), GgmlType::kQ4_0, 4, path).ok());
  auto rows = Model::load(path), panels = Model::load(path);
  ASSERT_TRUE(rows.ok() && panels.ok());
  const std::string canonical = std::filesystem::canonical(path).string();
  const uint64_t before = mapped_resident_bytes(canonical);
  const uint64_t packed = (*panels)->pack_for_decode();
  EXPECT_GT(packed, 0u);
  EXPECT_EQ((*panels)->layers()[0].wq.packed != nullptr, true);
  EXPECT_EQ((*panels)->layers()[0].wq.type, GgmlType::kQ4_0);
  // Both models map the file: dropping one's pages of the packed matrices shows in the total.
  EXPECT_LT(mapped_resident_bytes(canonical), before - packed / 2) << "the packed rows stayed resident";
  ThreadPool pool(2);
  const int vocab = (*rows)->config().vocab_size, dim = (*rows)->config().dim;
  const std::vector<int32_t> toks = {1, 50, 300, 7, 1000};
  Session a(**rows, 8, &pool), b(**panels, 8, &pool), c(**panels, 8, &pool), other(**panels, 8, &pool);
  for (Session* s : {&a, &b, &c}) ASSERT_TRUE(s->prefill(toks.data(), 4, 0).ok());
  ASSERT_TRUE(other.prefill(toks.data(), 2, 0).ok());
  auto la = a.forward(toks[4], 4);
  ASSERT_TRUE(la.ok());
  const std::vector<float> from_rows(*la, *la + vocab);
  auto lb = b.forward(toks[4], 4);
  ASSERT_TRUE(lb.ok());
  float largest = 0, worst = 0;
  for (int i = 0; i < vocab; ++i) largest = std::max(largest, std::fabs(from_rows[i]));
  for (int i = 0; i < vocab; ++i) worst = std::max(worst, std::fabs((*lb)[i] - from_rows[i]));
  EXPECT_LT(worst, 1e-3f * largest);
  // The same step alone and in a batch with another sequence: the same final hidden state (the
  // classifier, Q6_K here, has a row kernel of its own for one token).
  Runner r(**panels, &pool);
  b.reset();
  ASSERT_TRUE(b.prefill(toks.data(), 4, 0).ok());
  const BatchToken one[] = {{&b, toks[4], 4, true}};
  auto hb = r.run(one, 1, Runner::Output::kHidden);
  ASSERT_TRUE(hb.ok());
  const std::vector<float> alone(*hb, *hb + dim);
  const BatchToken two[] = {{&c, toks[4], 4, true}, {&other, 9, 2, true}};
  auto hc = r.run(two, 2, Runner::Output::kHidden);
  ASSERT_TRUE(hc.ok());
  EXPECT_EQ(std::vector<float>(*hc, *hc + dim), alone);
}

TEST(Model, ACopiedPrefixContinuesExactlyAsTheOriginal) {
  llmops::test::TempDir dir;
  ASSERT_TRUE(write_synth_model(*find_synth_shape("tiny"), GgmlType::kQ8_0, 2, dir.file("m.gguf")).ok());
  auto m = Model::load(dir.file("m.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  const std::vector<int32_t> toks = {1, 17, 42, 9, 300, 5, 77};
  Session a(**m, 16);
  ASSERT_TRUE(a.prefill(toks.data(), 6, 0).ok());
  auto want = a.forward(toks[6], 6);
  ASSERT_TRUE(want.ok());
  std::vector<float> expected(*want, *want + (*m)->config().vocab_size);
  Session b(**m, 12);  // another size: the per-layer strides differ
  EXPECT_EQ(b.copy_prefix(a, 6), 6);
  EXPECT_EQ(b.length(), 6);
  auto got = b.forward(toks[6], 6);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(std::vector<float>(*got, *got + (*m)->config().vocab_size), expected);
  // Clipped to what the source holds and to the destination's positions.
  Session c(**m, 4);
  EXPECT_EQ(c.copy_prefix(a, 100), 4);
  // fp16 caches copy as fp16 caches; a cache of the other type is not taken.
  Session h(**m, 16, nullptr, KvType::kF16), h2(**m, 12, nullptr, KvType::kF16);
  ASSERT_TRUE(h.prefill(toks.data(), 6, 0).ok());
  auto half_want = h.forward(toks[6], 6);
  ASSERT_TRUE(half_want.ok());
  std::vector<float> half_expected(*half_want, *half_want + (*m)->config().vocab_size);
  EXPECT_NE(half_expected, expected);
  EXPECT_EQ(h2.copy_prefix(h, 6), 6);
  auto half_got = h2.forward(toks[6], 6);
  ASSERT_TRUE(half_got.ok());
  EXPECT_EQ(std::vector<float>(*half_got, *half_got + (*m)->config().vocab_size), half_expected);
  Session other(**m, 12);
  EXPECT_EQ(other.copy_prefix(h, 6), 0);
  EXPECT_EQ(other.length(), 0);
  EXPECT_EQ(h2.copy_prefix(a, 6), 0);
}

}  // namespace
}  // namespace llmops::engine
