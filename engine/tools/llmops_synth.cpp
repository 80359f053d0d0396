// llmops-synth: writes a random-weight Llama or GPT-2 model of a realistic shape as GGUF (the same file
// can be given to llama.cpp), for speed measurements on real shapes.
#include <cstdio>
#include <string>

#include "formats/quantize.h"
#include "model/synth.h"

using namespace llmops;
using namespace llmops::engine;

int main(int argc, char** argv) {
  std::string arch, shape_name, type_name = "F32", out;
  uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--arch") arch = next();
    else if (a == "--shape") shape_name = next();
    else if (a == "--type") type_name = next();
    else if (a == "--out") out = next();
    else if (a == "--seed") seed = std::stoull(next());
    else {
      std::string shapes;
      for (const auto& s : synth_shapes()) shapes += " " + s.name;
      std::fprintf(a == "--help" || a == "-h" ? stdout : stderr,
                   "Usage: llmops-synth --arch llama|gpt2 --shape NAME --type F32|F16|BF16|Q8_0|Q4_0|Q4_K|Q6_K --out FILE.gguf [--seed S]\n"
                   "Shapes:%s\n", shapes.c_str());
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (!arch.empty() && arch != "llama" && arch != "gpt2") return std::fprintf(stderr, "llmops-synth: unknown --arch %s (llama, gpt2)\n", arch.c_str()), 2;
  if (shape_name.empty() || out.empty()) return std::fprintf(stderr, "llmops-synth: --shape and --out are required (see --help)\n"), 2;
  auto shape = find_synth_shape(shape_name);
  if (!shape.ok()) return std::fprintf(stderr, "llmops-synth: %s\n", shape.status().message().c_str()), 2;
  if (!arch.empty() && arch != shape->config.arch_name) {
    return std::fprintf(stderr, "llmops-synth: shape %s is a %s model, not %s\n", shape_name.c_str(), shape->config.arch_name.c_str(), arch.c_str()), 2;
  }
  auto type = writable_type_from_name(type_name);
  if (!type) return std::fprintf(stderr, "llmops-synth: --type %s is not one of F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K\n", type_name.c_str()), 2;
  auto report = write_synth_model(*shape, *type, seed, out);
  if (!report.ok()) return std::fprintf(stderr, "llmops-synth: %s\n", report.status().message().c_str()), 1;
  for (const auto& f : report->fallbacks) std::fprintf(stderr, "note: %s\n", f.c_str());
  std::printf("wrote %s: %s %s, %.1f MB of weights\n", out.c_str(), shape_name.c_str(), type_name.c_str(),
              static_cast<double>(report->bytes) / 1e6);
  return 0;
}
