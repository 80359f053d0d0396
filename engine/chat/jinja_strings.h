// Python's str operations over UTF-8 for the Jinja renderer (private to engine/chat). Indexes
// and lengths count code points (an invalid byte counts as one); whitespace is Python's
// (str.isspace); upper/lower/title/capitalize map ASCII letters only and leave every other
// character as it is. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmops::engine::jinja {

// The code point at s[i] and its length in *len (1 for an invalid byte, whose value is the byte).
uint32_t utf8_decode_at(std::string_view s, size_t i, size_t* len);
size_t utf8_length(std::string_view s);
// Byte offset where each code point starts, plus s.size() at the end.
std::vector<size_t> utf8_offsets(std::string_view s);
void append_utf8(std::string& out, uint32_t cp);

bool is_py_space(uint32_t cp);

// Substring search in linear time (memmem's two-way search; std::string::find and rfind can take
// len(haystack) * len(needle)). npos when absent; an empty needle is found at `from`.
size_t find_text(std::string_view haystack, std::string_view needle, size_t from = 0);
// Start offsets of the non-overlapping matches of needle (not empty), scanning from the left.
std::vector<size_t> find_all(std::string_view haystack, std::string_view needle);

// str.strip/lstrip/rstrip; chars null: whitespace, else any code point in *chars.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);
// str.split / str.rsplit; sep null: runs of whitespace. maxsplit < 0: no limit. sep must not be "".
std::vector<std::string> py_split(std::string_view s, const std::string* sep, int64_t maxsplit);
std::vector<std::string> py_rsplit(std::string_view s, const std::string* sep, int64_t maxsplit);
// str.splitlines() (without the line ends).
std::vector<std::string> py_splitlines(std::string_view s);
// The size str.replace would produce, then the replacement itself (count < 0: all).
size_t py_replace_size(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
std::string py_replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);

std::string ascii_upper(std::string_view s);
std::string ascii_lower(std::string_view s);
std::string py_capitalize(std::string_view s);  // str.capitalize
std::string py_title(std::string_view s);       // str.title
std::string jinja_title(std::string_view s);    // the title filter: words split at -, space, ( { [ <
bool py_islower(std::string_view s);
bool py_isupper(std::string_view s);
std::string html_escape(std::string_view s);  // & < > " ' as Jinja's escape filter writes them

}  // namespace llmops::engine::jinja
