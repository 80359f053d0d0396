// llama2.c tokenizer.bin files: any bytes give a vocabulary or a typed error; a vocabulary that
// loads must build a tokenizer that encodes and decodes without reading out of bounds.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "fuzz_util.h"
#include "tokenizer/spm.h"

using namespace llmops::engine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz_input_file(data, size);
  for (int32_t vocab_size : {3, 8, 259}) {
    auto v = load_llama2c_tokenizer(path, vocab_size);
    if (!v.ok()) continue;
    auto tok = SpmTokenizer::create(std::move(v).value());
    if (!tok.ok()) continue;
    auto ids = tok->encode("Once upon a time \xff\xfe caf\xc3\xa9");
    (void)tok->decode(ids);
  }
  return 0;
}
