// Collection: turning files into records. Reads JSONL, JSON arrays, CSV/TSV (RFC 4180 with a
// header row), plain text and Markdown (one record per file, line or paragraph), each maybe
// gzip- or zstd-compressed (told by its magic bytes, not its name), as streams in bounded
// memory. A bad record is skipped and reported with its file, line and reason; nothing here
// throws or stops at the first bad byte. One thread per call.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/json_scan.h"
#include "json.h"
#include "status.h"

namespace llmops::data {

struct ImportOptions {
  std::string format;               // "" (from the file name) | jsonl | json | csv | tsv | text | markdown
  std::string split = "file";       // text and markdown: file | line | paragraph
  std::string text_field = "text";  // the field text records get
  bool strict = false;              // the first bad record fails the import
  bool drop_invalid_utf8 = false;   // else invalid UTF-8 is repaired (U+FFFD) and counted
  uint64_t max_record_bytes = 16u << 20;
};

struct ImportIssue {
  std::string file;
  uint64_t line = 0;
  std::string reason;
};

// What an import saw; becomes the version's report.
struct ImportReport {
  uint64_t files = 0, records = 0, bytes_in = 0, skipped = 0, utf8_repaired = 0;
  std::map<std::string, uint64_t> skipped_by_reason;
  std::vector<ImportIssue> issues;  // the first kMaxIssues
  static constexpr size_t kMaxIssues = 100;
  std::vector<std::string> skipped_files;

  void skip(const std::string& file, uint64_t line, const std::string& reason_kind, const std::string& detail);
  Json to_json() const;
};

// A decompressing byte stream over a file.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Up to n bytes; 0 at the end; an error for a damaged compressed stream.
  virtual Result<size_t> read(char* out, size_t n) = 0;
  virtual uint64_t compressed_bytes_read() const = 0;
  static Result<std::unique_ptr<ByteSource>> open(const std::string& path);
  // The same over bytes in memory (tests, fuzzing).
  static std::unique_ptr<ByteSource> from_string(std::string data);
};

// The format of a file from its name, compression suffix stripped ("x.jsonl.gz" → jsonl);
// "" when the name says nothing.
std::string format_from_name(const std::string& path);

// Called per record; a non-OK Status (cancelled, out of space) stops the import with it.
using RecordSink = std::function<Status(Json&& record)>;

// Called instead of RecordSink for a JSONL line that is already a valid JSON object: the line
// itself (trimmed) becomes the record, with its scan.
using RawRecordSink = std::function<Status(std::string_view line, const ScannedObject& scanned)>;

// Reads one source as `format` (already resolved), emitting its records. display names the
// file in issues. Fails only for I/O errors, a sink error, or a bad record under strict.
Status read_records(ByteSource& src, const std::string& format, const std::string& display, const ImportOptions& opt,
                    const RecordSink& sink, ImportReport& report, const RawRecordSink* raw = nullptr);

// Expands paths (files and directories, recursively, sorted) into the files to import; files
// in directories whose format cannot be told are listed in report.skipped_files.
Result<std::vector<std::string>> expand_inputs(const std::vector<std::string>& paths, const ImportOptions& opt, ImportReport& report);

}  // namespace llmops::data
