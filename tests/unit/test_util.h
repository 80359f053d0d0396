// Helpers shared by the test binaries: temporary directories that clean up after themselves.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llmops::test {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void write_text(const std::string& path, const std::string& text);
std::string read_text(const std::string& path);
// The integers on the line after `label` in text (reference files: "PROMPT ids: 1 403 ...").
std::vector<int32_t> ints_after(const std::string& text, const std::string& label);

}  // namespace llmops::test
