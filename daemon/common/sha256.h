// SHA-256 over OpenSSL's EVP interface (uses the CPU's SHA extensions where present).
// A Sha256 object is owned by one thread at a time.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "status.h"

namespace llmops {

using Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  Digest finish();  // resets for reuse

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string to_hex(const uint8_t* data, size_t size);
inline std::string to_hex(const Digest& d) { return to_hex(d.data(), d.size()); }
std::string sha256_hex(std::string_view data);
bool is_sha256_hex(std::string_view s);  // 64 lowercase hex digits
// Hashes a file in streaming fashion.
Result<Digest> sha256_file(const std::string& path);
// Cryptographically random bytes (getrandom).
Status random_bytes(void* out, size_t size);

}  // namespace llmops
