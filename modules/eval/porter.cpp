// Porter stemmer in NLTK's default NLTK_EXTENSIONS mode, the variant rouge-score uses.
//
// Reference: nltk/stem/porter.py (NLTK 3.x rewrite with modes). Checked word for word against
// NLTK 3.8's PorterStemmer() on Martin Porter's test vocabulary (voc.txt, 30k words), a 100k-word
// English list and ~300k random letter/digit strings. The step semantics that matter for exactness:
//  - within a step the first rule whose suffix matches decides; if its condition fails the word
//    is left alone (later rules are not tried), except step 5a which tries both of its rules;
//  - conditions look at the stem left after removing the suffix, except 'logi' (stem + 'l') and
//    5b's 'll' (word minus one 'l').
#include "eval/porter.h"

#include <cstddef>
#include <initializer_list>

namespace llmops::eval {
namespace {

struct Rule {
  std::string_view suffix;
  std::string_view replacement;
};

bool is_vowel_letter(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

// A 'y' is a consonant at the start or after a vowel, a vowel after a consonant; walking back over
// a run of y's flips the answer once per y.
bool is_consonant(std::string_view w, size_t i) {
  bool flip = false;
  for (;;) {
    char c = w[i];
    if (is_vowel_letter(c)) return flip;
    if (c != 'y' || i == 0) return !flip;
    flip = !flip;
    --i;
  }
}

// m of [C](VC){m}[V], i.e. the number of vowel-to-consonant transitions.
int measure(std::string_view w) {
  int m = 0;
  bool prev_cons = false;
  for (size_t i = 0; i < w.size(); ++i) {
    char c = w[i];
    bool cons = !is_vowel_letter(c) && (c != 'y' || i == 0 || !prev_cons);
    if (i > 0 && !prev_cons && cons) ++m;
    prev_cons = cons;
  }
  return m;
}

bool contains_vowel(std::string_view w) {
  bool prev_cons = false;
  for (size_t i = 0; i < w.size(); ++i) {
    char c = w[i];
    bool cons = !is_vowel_letter(c) && (c != 'y' || i == 0 || !prev_cons);
    if (!cons) return true;
    prev_cons = cons;
  }
  return false;
}

bool ends_with(std::string_view w, std::string_view s) {
  return w.size() >= s.size() && w.substr(w.size() - s.size()) == s;
}

// *d in the paper.
bool ends_double_consonant(std::string_view w) {
  size_t n = w.size();
  return n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1);
}

// *o in the paper, plus NLTK's extension that a bare vowel-consonant pair also counts, which is
// what keeps the final e of short words such as 'use' or 'ore'.
bool ends_cvc(std::string_view w) {
  size_t n = w.size();
  if (n >= 3) {
    char last = w[n - 1];
    return is_consonant(w, n - 3) && !is_consonant(w, n - 2) && is_consonant(w, n - 1) && last != 'w' &&
           last != 'x' && last != 'y';
  }
  return n == 2 && !is_consonant(w, 0) && is_consonant(w, 1);
}

// First matching suffix decides; `cond(stem, rule)` gates the rewrite. Returns whether a suffix
// matched at all (the rewrite may still have been refused).
template <class Cond>
bool apply_first(std::string& w, std::initializer_list<Rule> rules, Cond cond) {
  for (const Rule& r : rules) {
    // Cheap last-letter test first; most rules fail on it.
    if (w.empty() || w.back() != r.suffix.back() || !ends_with(w, r.suffix)) continue;
    std::string_view stem(w.data(), w.size() - r.suffix.size());
    if (cond(stem, r)) {
      w.resize(stem.size());
      w.append(r.replacement);
    }
    return true;
  }
  return false;
}

void step1a(std::string& w) {
  // NLTK keeps 'dies' -> 'die' rather than the paper's 'di'.
  if (w.size() == 4 && ends_with(w, "ies")) {
    w.resize(1);
    w += "ie";
    return;
  }
  apply_first(w, {{"sses", "ss"}, {"ies", "i"}, {"ss", "ss"}, {"s", ""}},
              [](std::string_view, const Rule&) { return true; });
}

void step1b(std::string& w) {
  size_t n = w.size();
  // NLTK: 'died' -> 'die' but 'spied' -> 'spi', decided before the paper's rules.
  if (ends_with(w, "ied")) {
    w.resize(n - 3);
    w += n == 4 ? "ie" : "i";
    return;
  }
  if (ends_with(w, "eed")) {
    if (measure(std::string_view(w).substr(0, n - 3)) > 0) w.pop_back();  // eed -> ee
    return;
  }
  size_t cut = 0;
  if (ends_with(w, "ed") && contains_vowel(std::string_view(w).substr(0, n - 2))) {
    cut = 2;
  } else if (ends_with(w, "ing") && contains_vowel(std::string_view(w).substr(0, n - 3))) {
    cut = 3;
  }
  if (cut == 0) return;
  w.resize(n - cut);

  // Tidy-up of the intermediate stem; the rule order is the paper's and the first match decides.
  if (ends_with(w, "at") || ends_with(w, "bl") || ends_with(w, "iz")) {
    w += 'e';
    return;
  }
  if (ends_double_consonant(w)) {
    char last = w.back();
    if (last != 'l' && last != 's' && last != 'z') w.pop_back();
    return;
  }
  if (measure(w) == 1 && ends_cvc(w)) w += 'e';
}

void step1c(std::string& w) {
  // NLTK's (*c and not c) Y -> I: 'happy' -> 'happi', but 'enjoy' and 'by' keep their y.
  size_t n = w.size();
  if (n >= 1 && w[n - 1] == 'y') {
    std::string_view stem(w.data(), n - 1);
    if (stem.size() > 1 && is_consonant(stem, stem.size() - 1)) w[n - 1] = 'i';
  }
}

void step2(std::string& w) {
  // NLTK applies alli -> al ahead of the list and re-runs the step on the result, so
  // 'rationalli' can go on to match -tional.
  for (;;) {
    size_t n = w.size();
    if (!(ends_with(w, "alli") && measure(std::string_view(w).substr(0, n - 4)) > 0)) break;
    w.resize(n - 4);
    w += "al";
  }
  apply_first(w,
              {{"ational", "ate"}, {"tional", "tion"}, {"enci", "ence"},    {"anci", "ance"},   {"izer", "ize"},
               {"bli", "ble"},     {"alli", "al"},     {"entli", "ent"},    {"eli", "e"},       {"ousli", "ous"},
               {"ization", "ize"}, {"ation", "ate"},   {"ator", "ate"},     {"alism", "al"},    {"iveness", "ive"},
               {"fulness", "ful"}, {"ousness", "ous"}, {"aliti", "al"},     {"iviti", "ive"},   {"biliti", "ble"},
               {"fulli", "ful"},   {"logi", "log"}},
              [](std::string_view stem, const Rule& r) {
                // 'logi' keeps its l with the stem when measuring, so 'geologi' still reduces.
                if (r.suffix == "logi") return measure(std::string_view(stem.data(), stem.size() + 1)) > 0;
                return measure(stem) > 0;
              });
}

void step3(std::string& w) {
  apply_first(w,
              {{"icate", "ic"}, {"ative", ""}, {"alize", "al"}, {"iciti", "ic"}, {"ical", "ic"}, {"ful", ""},
               {"ness", ""}},
              [](std::string_view stem, const Rule&) { return measure(stem) > 0; });
}

void step4(std::string& w) {
  apply_first(w,
              {{"al", ""},    {"ance", ""}, {"ence", ""}, {"er", ""},  {"ic", ""},  {"able", ""}, {"ible", ""},
               {"ant", ""},   {"ement", ""}, {"ment", ""}, {"ent", ""}, {"ion", ""}, {"ou", ""},   {"ism", ""},
               {"ate", ""},   {"iti", ""},  {"ous", ""},  {"ive", ""}, {"ize", ""}},
              [](std::string_view stem, const Rule& r) {
                if (measure(stem) <= 1) return false;
                if (r.suffix == "ion") return !stem.empty() && (stem.back() == 's' || stem.back() == 't');
                return true;
              });
}

void step5a(std::string& w) {
  if (w.empty() || w.back() != 'e') return;
  std::string_view stem(w.data(), w.size() - 1);
  int m = measure(stem);
  if (m > 1 || (m == 1 && !ends_cvc(stem))) w.pop_back();
}

void step5b(std::string& w) {
  if (ends_with(w, "ll") && measure(std::string_view(w.data(), w.size() - 1)) > 1) w.pop_back();
}

// NLTK's table of irregular forms; a hit bypasses the algorithm.
std::string_view irregular_form(std::string_view w) {
  struct Pair {
    std::string_view form, stem;
  };
  static constexpr Pair kForms[] = {
      {"sky", "sky"},         {"skies", "sky"},        {"dying", "die"},       {"lying", "lie"},
      {"tying", "tie"},       {"news", "news"},        {"innings", "inning"},  {"inning", "inning"},
      {"outings", "outing"},  {"outing", "outing"},    {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},       {"proceed", "proceed"},  {"exceed", "exceed"},   {"succeed", "succeed"},
  };
  for (const Pair& p : kForms) {
    if (p.form == w) return p.stem;
  }
  return {};
}

}  // namespace

std::string porter_stem(std::string_view word) {
  // NLTK looks the irregular table up with the word as given, before lowercasing.
  if (std::string_view irregular = irregular_form(word); !irregular.empty()) return std::string(irregular);

  std::string w(word);
  for (char& c : w) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (w.size() <= 2) return w;  // NLTK leaves 1- and 2-letter words alone

  step1a(w);
  step1b(w);
  step1c(w);
  step2(w);
  step3(w);
  step4(w);
  step5a(w);
  step5b(w);
  return w;
}

}  // namespace llmops::eval
