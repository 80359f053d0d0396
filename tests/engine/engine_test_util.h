// Paths to ../shared for engine tests, and parsing of its reference files. Tests that need a
// file call require_shared(), which skips with a clear message when ../shared is absent.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "unit/test_util.h"

namespace llmops::engine::test {

inline std::string shared_path(const std::string& rel) { return std::string(LLMOPS_SHARED_DIR) + "/" + rel; }

#define LLMOPS_REQUIRE_SHARED(rel)                                                                       \
  do {                                                                                                  \
    if (!std::filesystem::exists(::llmops::engine::test::shared_path(rel))) {                            \
      GTEST_SKIP() << "../shared is absent (" << ::llmops::engine::test::shared_path(rel)                \
                   << " not found): this test needs the project's shared models and vectors";            \
    }                                                                                                   \
  } while (0)

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

using ::llmops::test::ints_after;

}  // namespace llmops::engine::test
