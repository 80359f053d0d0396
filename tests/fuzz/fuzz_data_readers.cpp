// The data stage's input readers and text scanners: any bytes, in any format, plain or
// compressed, give records and reported skips, never a crash, a hang or an unbounded buffer.
// The first byte picks the format and options; the rest is the file.
#include <cstdint>
#include <string>

#include "data/json_scan.h"
#include "data/pii.h"
#include "json.h"
#include "data/readers.h"
#include "data/text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* kFormats[] = {"jsonl", "json", "csv", "tsv", "text", "markdown"};
  const uint8_t sel = data[0];
  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  llmops::data::ImportOptions opt;
  opt.max_record_bytes = 4096;
  opt.split = (sel >> 3) % 3 == 0 ? "file" : (sel >> 3) % 3 == 1 ? "line" : "paragraph";
  opt.strict = (sel & 0x40) != 0;
  opt.drop_invalid_utf8 = (sel & 0x80) != 0;
  llmops::data::ImportReport report;
  auto src = llmops::data::ByteSource::from_string(body);
  (void)llmops::data::read_records(*src, kFormats[sel % 6], "fuzz", opt,
                                   [&](llmops::Json&& rec) {
                                     (void)llmops::dump_json(rec);
                                     return llmops::ok_status();
                                   },
                                   report);
  (void)report.to_json();
  // The record scanner never accepts what the full parser refuses, and agrees on strings.
  llmops::data::ScannedObject scanned;
  if (llmops::data::scan_object(body, 64, &scanned)) {
    auto doc = llmops::parse_json_bounded(body, 64);
    if (!doc.ok() || !doc->is_object() || doc->size() != scanned.fields.size()) __builtin_trap();
    for (const auto& f : scanned.fields) {
      if (!doc->contains(f.name)) __builtin_trap();
      if (f.type == llmops::data::JsonType::kString &&
          llmops::data::decode_json_string(std::string_view(body).substr(f.begin, f.end - f.begin)) != (*doc)[f.name].get<std::string>()) {
        __builtin_trap();
      }
    }
  }
  // The scanners over the same bytes as text.
  std::string text = llmops::data::repair_utf8(body);
  (void)llmops::data::redact_pii(text, nullptr);
  (void)llmops::data::clean_whitespace(text);
  (void)llmops::data::normalize(text, llmops::data::NormalForm::kNfkc);
  (void)llmops::data::dedup_key(text);
  (void)llmops::data::char_mix(body);
  return 0;
}
