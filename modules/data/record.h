// What a stage reads out of one dataset record (a JSON object): a field's text and a template
// filled from the fields. The data stage's operations and the eval stage share these, so a
// "{field}" template or a chat "messages" field means the same in both. Pure; any thread.
#pragma once

#include <optional>
#include <string>

#include "json.h"
#include "status.h"

namespace llmops::data {

// A record's text in a field: a string field as it is; chat "messages" as their contents
// joined by newlines; nullopt when the record has no such text.
std::optional<std::string> record_text(const Json& record, const std::string& field);

// Fills a template: "{field}" is the record's field as text, "{{" and "}}" are braces.
// kNotFound names a missing field.
Result<std::string> fill_template(const std::string& tmpl, const Json& record);

}  // namespace llmops::data
