// The rules a batch of tokens must keep, shared by Runner (CPU) and GpuRunner: a known token,
// a position within the session's cache (and a learned position table), one sequence's tokens
// consecutive and starting at most at its length. Token has session, token and pos; its session
// has length() and max_positions(). A header so both runners check with the same words.
#pragma once

#include <string>

#include "model/model.h"

namespace llmops::engine {

// belongs(session) says the session is non-null and of the runner's model; position_rows is
// the learned position table's size (0: none).
template <typename Token, typename Belongs>
Status check_batch(const Token* batch, size_t n, const ModelConfig& c, uint64_t position_rows, Belongs belongs) {
  for (size_t i = 0; i < n; ++i) {
    const Token& b = batch[i];
    const std::string at = n > 1 ? " (batch entry " + std::to_string(i) + ")" : "";
    if (!belongs(b.session)) return invalid_argument("a batch token has no session of this model" + at);
    if (b.token < 0 || b.token >= c.vocab_size) {
      return invalid_argument("token id " + std::to_string(b.token) + " is outside the vocabulary (0.." + std::to_string(c.vocab_size - 1) +
                              ")" + at);
    }
    if (b.pos < 0 || b.pos >= b.session->max_positions()) {
      return resource_exhausted("position " + std::to_string(b.pos) + " is past the session's " +
                                std::to_string(b.session->max_positions()) + " positions" + at);
    }
    if (position_rows > 0 && static_cast<uint64_t>(b.pos) >= position_rows) {
      return resource_exhausted("position " + std::to_string(b.pos) + " is past the model's context of " + std::to_string(position_rows) +
                                " positions" + at);
    }
    // The session's previous token in this batch, if any, must sit just before this one;
    // otherwise the cache must reach up to this position.
    int expected_max = b.session->length();
    for (size_t j = i; j-- > 0;) {
      if (batch[j].session == b.session) {
        expected_max = -1;
        if (b.pos != batch[j].pos + 1) {
          return invalid_argument("positions of one sequence must be consecutive in a batch: " + std::to_string(batch[j].pos) + " then " +
                                  std::to_string(b.pos) + at);
        }
        break;
      }
    }
    if (expected_max >= 0 && b.pos > expected_max) {
      return invalid_argument("position " + std::to_string(b.pos) + " skips past the " + std::to_string(expected_max) +
                              " positions this sequence has" + at);
    }
  }
  return ok_status();
}

}  // namespace llmops::engine
