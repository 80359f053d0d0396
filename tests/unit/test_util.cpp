#include "unit/test_util.h"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace llmops::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/llmops-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<int32_t> ints_after(const std::string& text, const std::string& label) {
  std::vector<int32_t> out;
  auto pos = text.find(label);
  if (pos == std::string::npos) return out;
  pos += label.size();
  auto end = text.find('\n', pos);
  std::istringstream in(text.substr(pos, end - pos));
  int32_t v;
  while (in >> v) out.push_back(v);
  return out;
}

}  // namespace llmops::test
