// write_safetensors (declared in safetensors.h): the header is built first, then tensor bytes
// stream from the caller's pointers into a temp file that is renamed over the target when whole.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include "formats/safetensors.h"
#include "fs.h"
#include "json.h"

namespace llmops::engine {
namespace {

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), as JSON readers
// demand; the header must never need a replacement character.
bool is_utf8(std::string_view s) {
  size_t k = 0;
  while (k < s.size()) {
    const auto c = static_cast<unsigned char>(s[k]);
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if (c < 0x80) {
      ++k;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (s.size() - k < len) return false;
    for (size_t j = 1; j < len; ++j) {
      const auto cc = static_cast<unsigned char>(s[k + j]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = cp << 6 | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    k += len;
  }
  return true;
}

Status check_name(const std::string& what, const std::string& name) {
  if (!is_utf8(name)) return invalid_argument(what + " is not valid UTF-8");
  return ok_status();
}

}  // namespace

Status write_safetensors(const std::string& path, const std::vector<SafetensorsTensorSource>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& meta = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) {
      LLMOPS_RETURN_IF_ERROR(check_name("metadata key '" + key + "'", key));
      LLMOPS_RETURN_IF_ERROR(check_name("metadata '" + key + "'", value));
      meta[key] = value;
    }
  }
  std::vector<uint64_t> sizes;
  sizes.reserve(tensors.size());
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    const std::string what = "tensor '" + t.name + "'";
    if (t.name.empty() || t.name == "__metadata__") return invalid_argument("a tensor may not be named '" + t.name + "'");
    LLMOPS_RETURN_IF_ERROR(check_name(what + "'s name", t.name));
    if (!names.insert(t.name).second) return invalid_argument(what + " is given twice");
    uint64_t bytes = safetensors_dtype_bytes(t.dtype);
    for (uint64_t d : t.shape) {
      if (d != 0 && bytes > UINT64_MAX / d) return invalid_argument(what + ": the size of its shape overflows");
      bytes *= d;
    }
    if (bytes > UINT64_MAX - offset) return invalid_argument(what + ": the tensors' total size overflows");
    if (bytes > 0 && t.data == nullptr) return invalid_argument(what + " has no data");
    header[t.name] = {{"dtype", safetensors_dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    sizes.push_back(bytes);
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // so the data section starts 8-byte aligned
  std::string head(8, '\0');
  for (int k = 0; k < 8; ++k) head[k] = static_cast<char>(static_cast<uint64_t>(text.size()) >> (8 * k));
  head += text;

  return write_file_atomic(
      path,
      [&](int fd) {
        Status st = write_all(fd, head.data(), head.size());
        for (size_t k = 0; k < tensors.size() && st.ok(); ++k) st = write_all(fd, tensors[k].data, sizes[k]);
        return st;
      },
      0644);
}

}  // namespace llmops::engine
