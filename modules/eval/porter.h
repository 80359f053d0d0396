// Porter suffix-stripping stemmer, as used by ROUGE scoring. Pure function, any thread.
//
// Matches NLTK's nltk.stem.porter.PorterStemmer in its default mode (NLTK_EXTENSIONS), which is
// what Google's rouge-score package constructs (`porter.PorterStemmer()`, no mode argument) when
// use_stemmer=True. That mode differs from Porter's 1980 paper: a table of irregular forms, no
// stemming of words of length <= 2, 'ies'/'ied' -> 'ie' for 4-letter words, the (*c and not c)
// y -> i rule, the bli/alli/fulli/logi variants of step 2 and a 2-letter vc form of the *o test.
#pragma once

#include <string>
#include <string_view>

namespace llmops::eval {

// Stem of `word`. Meant for lowercase ASCII (rouge's tokens are [a-z0-9]+); uppercase ASCII is
// lowercased first as NLTK does, other bytes are treated as consonants.
std::string porter_stem(std::string_view word);

}  // namespace llmops::eval
