// For fuzz targets whose parser reads a file: one temporary file per process, rewritten with
// each input.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

inline const std::string& fuzz_input_file(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    char tmpl[] = "/tmp/llmops-fuzz-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ::close(fd);
    return std::string(tmpl);
  }();
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}
