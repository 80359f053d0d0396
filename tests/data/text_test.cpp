// The data stage's text primitives: UTF-8 repair, NFC vs NFKC, whitespace, dedup keys, hashes.
#include <gtest/gtest.h>

#include "data/lang.h"
#include "data/text.h"

namespace llmops::data {
namespace {

TEST(DataText, ValidAndRepairedUtf8) {
  EXPECT_TRUE(valid_utf8("plain ascii"));
  EXPECT_TRUE(valid_utf8("caf\xC3\xA9 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(valid_utf8("bad \xC3"));              // truncated sequence
  EXPECT_FALSE(valid_utf8("\xC0\xAF"));              // overlong '/'
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));          // UTF-16 surrogate
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));      // past U+10FFFF
  size_t n = 0;
  EXPECT_EQ(repair_utf8("a\xFF\xFE" "b\xC3", &n), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
  EXPECT_EQ(n, 2u);  // one replacement per run of bad bytes
  EXPECT_EQ(utf8_length("caf\xC3\xA9"), 4u);
}

TEST(DataText, NfcComposesButKeepsCompatibilityFormsNfkcFoldsThem) {
  const std::string decomposed = "cafe\xCC\x81";  // e + COMBINING ACUTE
  EXPECT_EQ(normalize(decomposed, NormalForm::kNfc), "caf\xC3\xA9");
  EXPECT_EQ(normalize(decomposed, NormalForm::kNfkc), "caf\xC3\xA9");
  const std::string ligature = "\xEF\xAC\x81" "le \xE2\x91\xA0";  // "ﬁle ①"
  EXPECT_EQ(normalize(ligature, NormalForm::kNfc), ligature);
  EXPECT_EQ(normalize(ligature, NormalForm::kNfkc), "file 1");
  const std::string fullwidth = "\xEF\xBC\xA1\xEF\xBC\xA2";  // "ＡＢ"
  EXPECT_EQ(normalize(fullwidth, NormalForm::kNfkc), "AB");
  EXPECT_EQ(normalize(fullwidth, NormalForm::kNone), fullwidth);
}

TEST(DataText, WhitespaceAndControlCharacters) {
  WhitespaceReport r;
  EXPECT_EQ(clean_whitespace("  a \t b\r\nc\x01\x7F d\xC2\xA0" "e  \n\n\n\nf\xE2\x80\x8B  ", &r), "a b\nc d e\n\nf");
  EXPECT_EQ(r.control_removed, 3u);  // \x01, \x7F, ZERO WIDTH SPACE
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(clean_whitespace("already clean", &r), "already clean");
  EXPECT_FALSE(r.changed);
}

TEST(DataText, DedupKeyFoldsCaseWidthAndSpacing) {
  EXPECT_EQ(dedup_key("  Hello\n\tWORLD  "), "hello world");
  EXPECT_EQ(dedup_key("\xEF\xBC\xA8" "ello"), "hello");  // fullwidth H
  EXPECT_EQ(dedup_key("STRASSE"), dedup_key("strasse"));
  EXPECT_EQ(dedup_key("Stra\xC3\x9F" "e"), "strasse");   // ß case-folds to ss
}

TEST(DataText, HashIsStableAndSeeded) {
  EXPECT_EQ(hash64("abc"), hash64("abc"));
  EXPECT_NE(hash64("abc"), hash64("abd"));
  EXPECT_NE(hash64("abc", 1), hash64("abc", 2));
  EXPECT_NE(hash64(""), hash64(std::string_view("\0", 1)));
  std::string long_text(1000, 'x');
  std::string other = long_text;
  other[999] = 'y';
  EXPECT_NE(hash64(long_text), hash64(other));
}

TEST(DataText, CharacterMix) {
  CharMix m = char_mix("ab1 ,$\xC3\xA9");
  EXPECT_EQ(m.letters, 3u);
  EXPECT_EQ(m.digits, 1u);
  EXPECT_EQ(m.spaces, 1u);
  EXPECT_EQ(m.punctuation, 1u);
  EXPECT_EQ(m.symbols, 1u);
}

TEST(DataLanguage, Cld2TellsCommonLanguagesApart) {
  EXPECT_EQ(detect_language("The quick brown fox jumps over the lazy dog and then it runs far away into the forest.").code, "en");
  EXPECT_EQ(detect_language("Der schnelle braune Fuchs springt über den faulen Hund und läuft dann weit weg in den Wald.").code, "de");
  EXPECT_EQ(detect_language("Le renard brun rapide saute par-dessus le chien paresseux et court ensuite loin dans la forêt.").code, "fr");
  EXPECT_EQ(detect_language("").code, "un");
}

}  // namespace
}  // namespace llmops::data
