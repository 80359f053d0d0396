// Exact match and token F1 with SQuAD's answer normalisation (the official v1.1/v2.0 evaluation
// script): lower case, ASCII punctuation removed, the articles a/an/the dropped as whole words,
// whitespace collapsed. With several gold answers the best one counts. Pure; any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace llmops::eval {

std::string squad_normalize(std::string_view answer);
// 1 or 0.
double squad_exact_match(std::string_view prediction, const std::vector<std::string>& golds);
// 0..1; when either side normalises to no tokens, 1 if both do, else 0 (as the script does).
double squad_f1(std::string_view prediction, const std::vector<std::string>& golds);

}  // namespace llmops::eval
