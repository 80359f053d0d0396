// A one-pass JSON validator and field locator for dataset records: checks that a line is one
// JSON object (RFC 8259, strings well-formed UTF-8, nesting bounded) and lists its top-level
// fields with their value types and byte ranges, without building a document. The operations
// read a field's text and splice a changed value back into the line this way, several times
// faster than parsing and re-serialising the whole record. Pure functions; any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llmops::data {

enum class JsonType : uint8_t { kString, kNumber, kBoolean, kNull, kObject, kArray };
const char* json_type_name(JsonType t);  // "string", "number", ... (as the schema names them)

struct ScannedField {
  std::string name;           // decoded
  JsonType type = JsonType::kNull;
  size_t begin = 0, end = 0;  // the value's bytes in the line (a string's with its quotes)
  bool escaped = false;       // a string value holding escapes (decode it; it is not its own text)
};

struct ScannedObject {
  std::vector<ScannedField> fields;
  const ScannedField* find(std::string_view name) const;
};

// True when line (surrounding whitespace allowed) is exactly one valid JSON object nested at
// most max_depth deep; fills out. False for anything else: the caller parses it properly to
// say why.
bool scan_object(std::string_view line, size_t max_depth, ScannedObject* out);

// The text of a string value's bytes (with quotes), escapes decoded.
std::string decode_json_string(std::string_view quoted);
// s as a JSON string literal with quotes; s must be valid UTF-8.
void append_json_string(std::string& out, std::string_view s);

// The line with the value at [begin, end) replaced by a string value holding text.
std::string splice_string(std::string_view line, size_t begin, size_t end, std::string_view text);

}  // namespace llmops::data
