#include "data/readers.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "data/text.h"

namespace llmops::data {
namespace {

namespace fs = std::filesystem;

// A file, or a FIFO: the bytes read to sniff the compression come back first (no rewind).
class FileSource : public ByteSource {
 public:
  FileSource(std::FILE* f, std::string prefix) : f_(f), prefix_(std::move(prefix)) {}
  ~FileSource() override { std::fclose(f_); }
  Result<size_t> read(char* out, size_t n) override {
    size_t k = 0;
    if (at_ < prefix_.size()) {
      k = std::min(n, prefix_.size() - at_);
      std::memcpy(out, prefix_.data() + at_, k);
      at_ += k;
      read_ += k;
      if (k == n) return k;
    }
    size_t got = std::fread(out + k, 1, n - k, f_);
    if (got == 0 && k > 0) return k;
    if (got == 0 && std::ferror(f_)) return errno_status("reading", errno);
    read_ += got;
    return k + got;
  }
  uint64_t compressed_bytes_read() const override { return read_; }

 private:
  std::FILE* f_;
  std::string prefix_;
  size_t at_ = 0;
  uint64_t read_ = 0;
};

class StringSource : public ByteSource {
 public:
  explicit StringSource(std::string d) : d_(std::move(d)) {}
  Result<size_t> read(char* out, size_t n) override {
    size_t k = std::min(n, d_.size() - at_);
    std::memcpy(out, d_.data() + at_, k);
    at_ += k;
    return k;
  }
  uint64_t compressed_bytes_read() const override { return at_; }

 private:
  std::string d_;
  size_t at_ = 0;
};

// gzip (and concatenated gzip members) through zlib's inflate.
class GzipSource : public ByteSource {
 public:
  explicit GzipSource(std::unique_ptr<ByteSource> in) : in_(std::move(in)), buf_(1 << 16) {
    std::memset(&z_, 0, sizeof z_);
    ok_ = inflateInit2(&z_, 15 + 32) == Z_OK;
  }
  ~GzipSource() override { inflateEnd(&z_); }
  Result<size_t> read(char* out, size_t n) override {
    if (!ok_) return data_loss("gzip: cannot start the decompressor");
    if (!error_.ok()) return error_;
    auto got = inflate_some(out, n);
    if (got.ok()) return got;
    // The bytes before the damage still count; the error comes with the next read.
    error_ = got.status();
    return n - z_.avail_out;
  }
  uint64_t compressed_bytes_read() const override { return in_->compressed_bytes_read(); }

 private:
  Result<size_t> inflate_some(char* out, size_t n) {
    z_.next_out = reinterpret_cast<Bytef*>(out);
    z_.avail_out = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    while (z_.avail_out > 0 && !done_) {
      if (z_.avail_in == 0) {
        LLMOPS_ASSIGN_OR_RETURN(size_t got, in_->read(buf_.data(), buf_.size()));
        if (got == 0) {
          if (!member_ended_) return data_loss("gzip stream is truncated");
          done_ = true;
          break;
        }
        z_.next_in = reinterpret_cast<Bytef*>(buf_.data());
        z_.avail_in = static_cast<uInt>(got);
      }
      member_ended_ = false;
      int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        member_ended_ = true;
        inflateReset(&z_);  // another member may follow
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return data_loss(std::string("gzip stream is damaged: ") + (z_.msg != nullptr ? z_.msg : "inflate failed"));
      }
    }
    return n - z_.avail_out;
  }

  std::unique_ptr<ByteSource> in_;
  std::vector<char> buf_;
  z_stream z_;
  Status error_;
  bool ok_ = false, done_ = false, member_ended_ = false;
};

class ZstdSource : public ByteSource {
 public:
  explicit ZstdSource(std::unique_ptr<ByteSource> in) : in_(std::move(in)), buf_(ZSTD_DStreamInSize()), d_(ZSTD_createDStream()) {
    ZSTD_initDStream(d_);
    in_buf_ = {buf_.data(), 0, 0};
  }
  ~ZstdSource() override { ZSTD_freeDStream(d_); }
  Result<size_t> read(char* out, size_t n) override {
    if (!error_.ok()) return error_;
    ZSTD_outBuffer o{out, n, 0};
    auto got = decompress_some(o);
    if (got.ok()) return got;
    error_ = got.status();  // as for gzip: what came before the damage counts
    return o.pos;
  }
  uint64_t compressed_bytes_read() const override { return in_->compressed_bytes_read(); }

 private:
  Result<size_t> decompress_some(ZSTD_outBuffer& o) {
    while (o.pos < o.size && !done_) {
      if (in_buf_.pos == in_buf_.size) {
        LLMOPS_ASSIGN_OR_RETURN(size_t got, in_->read(buf_.data(), buf_.size()));
        if (got == 0) {
          if (last_ != 0) return data_loss("zstd stream is truncated");
          done_ = true;
          break;
        }
        in_buf_ = {buf_.data(), got, 0};
      }
      last_ = ZSTD_decompressStream(d_, &o, &in_buf_);
      if (ZSTD_isError(last_)) return data_loss(std::string("zstd stream is damaged: ") + ZSTD_getErrorName(last_));
    }
    return o.pos;
  }

  Status error_;
  std::unique_ptr<ByteSource> in_;
  std::vector<char> buf_;
  ZSTD_DStream* d_;
  ZSTD_inBuffer in_buf_;
  size_t last_ = 0;
  bool done_ = false;
};

// Lines of a byte stream, any length up to a limit; longer ones are skipped, not buffered.
class LineReader {
 public:
  explicit LineReader(ByteSource& src) : src_(src), buf_(1 << 20) {}
  enum Result_ { kLine, kEnd, kTooLong };
  // The next line without its \n (a final \r is dropped too); line() numbers it from 1.
  Result<Result_> next(std::string& out, size_t max) {
    out.clear();
    bool too_long = false;
    while (true) {
      if (pos_ == len_) {
        if (eof_) break;
        LLMOPS_ASSIGN_OR_RETURN(len_, src_.read(buf_.data(), buf_.size()));
        pos_ = 0;
        if (len_ == 0) {
          eof_ = true;
          break;
        }
      }
      const char* start = buf_.data() + pos_;
      const void* nl = std::memchr(start, '\n', len_ - pos_);
      size_t n = nl != nullptr ? static_cast<const char*>(nl) - start : len_ - pos_;
      if (!too_long) {
        if (out.size() + n > max) {
          too_long = true;
          out.clear();
        } else {
          out.append(start, n);
        }
      }
      pos_ += n;
      if (nl != nullptr) {
        ++pos_;
        ++line_;
        if (too_long) return kTooLong;
        if (!out.empty() && out.back() == '\r') out.pop_back();
        return kLine;
      }
    }
    if (too_long) return ++line_, kTooLong;
    if (!out.empty()) {
      ++line_;
      if (out.back() == '\r') out.pop_back();
      return kLine;
    }
    return kEnd;
  }
  uint64_t line() const { return line_; }

 private:
  ByteSource& src_;
  std::vector<char> buf_;
  size_t pos_ = 0, len_ = 0;
  bool eof_ = false;
  uint64_t line_ = 0;
};

bool blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

std::string human(uint64_t bytes) {
  char b[32];
  if (bytes >= (1u << 20)) std::snprintf(b, sizeof b, "%.1f MiB", bytes / 1048576.0);
  else std::snprintf(b, sizeof b, "%llu bytes", static_cast<unsigned long long>(bytes));
  return b;
}

// Shared per-format state: the report, the options, strict handling.
struct Reader {
  const std::string& display;
  const ImportOptions& opt;
  const RecordSink& sink;
  ImportReport& report;
  const RawRecordSink* raw = nullptr;
  ScannedObject scan;

  // A skipped record: counted, reported, and fatal under strict.
  Status skip(uint64_t line, const std::string& kind, const std::string& detail) {
    report.skip(display, line, kind, detail);
    if (opt.strict) {
      return invalid_argument(display + (line > 0 ? ":" + std::to_string(line) : "") + ": " + detail +
                              " (the import is --strict; without it the record is skipped and reported)");
    }
    return ok_status();
  }
  // Checks text for UTF-8 and NUL; may repair it. False (after skip) when the record goes.
  Result<bool> text_ok(std::string& text, uint64_t line) {
    if (std::memchr(text.data(), '\0', text.size()) != nullptr) {
      LLMOPS_RETURN_IF_ERROR(skip(line, "nul_byte", "NUL byte in the record"));
      return false;
    }
    if (!valid_utf8(text)) {
      if (opt.drop_invalid_utf8) {
        LLMOPS_RETURN_IF_ERROR(skip(line, "invalid_utf8", "invalid UTF-8"));
        return false;
      }
      text = repair_utf8(text);
      ++report.utf8_repaired;
    }
    return true;
  }
  Status emit(Json&& record) {
    ++report.records;
    return sink(std::move(record));
  }
  // A JSON value becomes a record: objects as they are, strings as text records.
  Status emit_value(std::string& text, uint64_t line) {
    LLMOPS_ASSIGN_OR_RETURN(bool keep, text_ok(text, line));
    if (!keep) return ok_status();
    auto j = parse_json_bounded(text, 64);
    if (!j.ok()) return skip(line, "malformed_json", "malformed JSON: " + j.status().message());
    if (j->is_string()) return emit(Json{{opt.text_field, j->get<std::string>()}});
    if (!j->is_object()) return skip(line, "not_an_object", std::string("a record must be a JSON object or string, not ") + j->type_name());
    return emit(std::move(*j));
  }
  Status text_record(std::string&& text, uint64_t line) {
    LLMOPS_ASSIGN_OR_RETURN(bool keep, text_ok(text, line));
    if (!keep) return ok_status();
    return emit(Json{{opt.text_field, std::move(text)}, {"source", display}});
  }
};

Status read_jsonl(ByteSource& src, Reader& r) {
  LineReader lines(src);
  std::string line;
  while (true) {
    LLMOPS_ASSIGN_OR_RETURN(auto what, lines.next(line, r.opt.max_record_bytes));
    if (what == LineReader::kEnd) return ok_status();
    if (what == LineReader::kTooLong) {
      LLMOPS_RETURN_IF_ERROR(r.skip(lines.line(), "too_large", "record longer than " + human(r.opt.max_record_bytes) + " (data.max-record-bytes)"));
      continue;
    }
    if (blank(line)) continue;
    if (r.raw != nullptr) {
      std::string_view t = line;
      while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
      while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
      if (scan_object(t, 64, &r.scan)) {
        ++r.report.records;
        LLMOPS_RETURN_IF_ERROR((*r.raw)(t, r.scan));
        continue;
      }
    }
    LLMOPS_RETURN_IF_ERROR(r.emit_value(line, lines.line()));
  }
}

// A top-level JSON array, split into its elements by a byte scanner (strings and nesting
// tracked) so that each element is parsed alone and the array may be any size.
Status read_json_array(ByteSource& src, Reader& r) {
  std::vector<char> buf(1 << 20);
  size_t pos = 0, len = 0;
  uint64_t line = 1, elem_line = 1;
  auto get = [&](char* c) -> Result<bool> {
    if (pos == len) {
      LLMOPS_ASSIGN_OR_RETURN(len, src.read(buf.data(), buf.size()));
      pos = 0;
      if (len == 0) return false;
    }
    *c = buf[pos++];
    if (*c == '\n') ++line;
    return true;
  };
  char c;
  // Leading whitespace and a byte-order mark, then '['.
  while (true) {
    LLMOPS_ASSIGN_OR_RETURN(bool more, get(&c));
    if (!more) return r.skip(line, "empty_file", "the file is empty");
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\xEF' || c == '\xBB' || c == '\xBF') continue;
    break;
  }
  if (c == '{') {
    return r.skip(line, "not_an_array", "a .json file holds one array of records; this one holds an object (use .jsonl for one object per line)");
  }
  if (c != '[') return r.skip(line, "malformed_json", "a .json file must hold an array of records");
  std::string elem;
  bool too_big = false, in_string = false, escape = false;
  int depth = 0;
  while (true) {
    LLMOPS_ASSIGN_OR_RETURN(bool more, get(&c));
    if (!more) return r.skip(line, "malformed_json", "the array is not closed (truncated file?)");
    if (in_string) {
      if (escape) escape = false;
      else if (c == '\\') escape = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (depth == 0) {
        if (c == '}') return r.skip(line, "malformed_json", "unbalanced '}' in the array");
        // The closing bracket of the array.
        if (!blank(elem)) {
          if (too_big) LLMOPS_RETURN_IF_ERROR(r.skip(elem_line, "too_large", "record larger than " + human(r.opt.max_record_bytes)));
          else LLMOPS_RETURN_IF_ERROR(r.emit_value(elem, elem_line));
        }
        return ok_status();
      }
      --depth;
    } else if (c == ',' && depth == 0) {
      if (too_big) LLMOPS_RETURN_IF_ERROR(r.skip(elem_line, "too_large", "record larger than " + human(r.opt.max_record_bytes)));
      else if (blank(elem)) LLMOPS_RETURN_IF_ERROR(r.skip(elem_line, "malformed_json", "empty element in the array"));
      else LLMOPS_RETURN_IF_ERROR(r.emit_value(elem, elem_line));
      elem.clear();
      too_big = false;
      elem_line = line;
      continue;
    }
    if (elem.empty() && (c == ' ' || c == '\n' || c == '\t' || c == '\r')) {
      elem_line = line;
      continue;
    }
    if (!too_big) {
      if (elem.size() >= r.opt.max_record_bytes) {
        too_big = true;
        elem.clear();
      } else {
        elem.push_back(c);
      }
    }
  }
}

// RFC 4180: fields split by the delimiter, optionally quoted with "" for a quote inside;
// quoted fields may span lines; records end at CRLF or LF. The first record names the fields.
Status read_csv(ByteSource& src, Reader& r, char delim) {
  std::vector<char> buf(1 << 20);
  size_t pos = 0, len = 0;
  uint64_t line = 1, row_line = 1;
  std::vector<std::string> header, row;
  std::string field;
  bool quoted = false, after_quote = false, field_started = false, bad = false, too_big = false;
  std::string bad_reason;
  size_t row_bytes = 0;
  auto finish_row = [&]() -> Status {
    row.push_back(std::move(field));
    field.clear();
    const uint64_t at = row_line;
    row_line = line;
    std::vector<std::string> cells = std::move(row);
    row.clear();
    const bool was_bad = bad, was_big = too_big;
    bad = too_big = false;
    row_bytes = 0;
    if (cells.size() == 1 && cells[0].empty()) return ok_status();  // blank line
    if (was_big) return r.skip(at, "too_large", "row larger than " + human(r.opt.max_record_bytes));
    if (was_bad) return r.skip(at, "malformed_csv", bad_reason);
    if (header.empty()) {
      for (auto& h : cells) {
        if (!valid_utf8(h)) h = repair_utf8(h);
      }
      if (!cells.empty() && cells[0].rfind("\xEF\xBB\xBF", 0) == 0) cells[0].erase(0, 3);
      header = std::move(cells);
      for (size_t k = 0; k < header.size(); ++k) {
        if (header[k].empty()) header[k] = "column_" + std::to_string(k + 1);
      }
      return ok_status();
    }
    if (cells.size() != header.size()) {
      return r.skip(at, "wrong_field_count", "row has " + std::to_string(cells.size()) + " fields, the header has " + std::to_string(header.size()));
    }
    Json rec = Json::object();
    for (size_t k = 0; k < cells.size(); ++k) {
      LLMOPS_ASSIGN_OR_RETURN(bool keep, r.text_ok(cells[k], at));
      if (!keep) return ok_status();
      rec[header[k]] = std::move(cells[k]);
    }
    return r.emit(std::move(rec));
  };
  while (true) {
    if (pos == len) {
      LLMOPS_ASSIGN_OR_RETURN(len, src.read(buf.data(), buf.size()));
      pos = 0;
      if (len == 0) break;
    }
    char c = buf[pos++];
    if (++row_bytes > r.opt.max_record_bytes && !too_big) {
      too_big = true;
      field.clear();
    }
    if (c == '\n') ++line;
    if (quoted) {
      if (c == '"') {
        quoted = false;
        after_quote = true;
      } else if (!too_big) {
        field.push_back(c);
      }
      continue;
    }
    if (after_quote && c == '"') {  // "" inside a quoted field
      quoted = true;
      after_quote = false;
      if (!too_big) field.push_back('"');
      continue;
    }
    if (c == delim) {
      row.push_back(std::move(field));
      field.clear();
      after_quote = field_started = false;
      continue;
    }
    if (c == '\n' || c == '\r') {
      if (c == '\r') {
        // CR LF or a lone CR: both end the record.
        if (pos == len) {
          LLMOPS_ASSIGN_OR_RETURN(len, src.read(buf.data(), buf.size()));
          pos = 0;
        }
        if (pos < len && buf[pos] == '\n') {
          ++pos;
          ++line;
        }
      }
      after_quote = field_started = false;
      LLMOPS_RETURN_IF_ERROR(finish_row());
      continue;
    }
    if (c == '"' && field.empty() && !field_started) {
      quoted = true;
      field_started = true;
      continue;
    }
    if (after_quote && !bad) {
      bad = true;
      bad_reason = "text after a closing quote (a quote inside a field must be doubled: \"\")";
    }
    field_started = true;
    if (!too_big) field.push_back(c);
  }
  if (quoted) return r.skip(row_line, "malformed_csv", "a quoted field is not closed before the end of the file");
  if (!field.empty() || !row.empty()) LLMOPS_RETURN_IF_ERROR(finish_row());
  if (header.empty()) return r.skip(0, "empty_file", "the file has no header row");
  return ok_status();
}

Status read_text(ByteSource& src, Reader& r) {
  // A binary file is one whole skip, not thousands of bad lines.
  std::vector<char> head(8192);
  LLMOPS_ASSIGN_OR_RETURN(size_t n, src.read(head.data(), head.size()));
  if (n == 0) return r.skip(0, "empty_file", "the file is empty");
  if (std::memchr(head.data(), '\0', n) != nullptr) return r.skip(0, "binary_file", "the file holds NUL bytes: binary, not text");
  struct Prefixed : ByteSource {
    Prefixed(std::string h, ByteSource& s) : head(std::move(h)), rest(s) {}
    Result<size_t> read(char* out, size_t k) override {
      if (at < head.size()) {
        size_t m = std::min(k, head.size() - at);
        std::memcpy(out, head.data() + at, m);
        at += m;
        return m;
      }
      return rest.read(out, k);
    }
    uint64_t compressed_bytes_read() const override { return rest.compressed_bytes_read(); }
    std::string head;
    size_t at = 0;
    ByteSource& rest;
  } all(std::string(head.data(), n), src);
  LineReader lines(all);
  std::string line, record;
  uint64_t record_line = 0;
  bool too_big = false;
  auto flush = [&]() -> Status {
    Status st = ok_status();
    if (too_big) st = r.skip(record_line, "too_large", "record larger than " + human(r.opt.max_record_bytes));
    else if (!blank(record)) st = r.text_record(std::move(record), record_line);
    record.clear();
    too_big = false;
    return st;
  };
  while (true) {
    LLMOPS_ASSIGN_OR_RETURN(auto what, lines.next(line, r.opt.max_record_bytes));
    if (what == LineReader::kEnd) break;
    if (r.opt.split == "line") {
      if (what == LineReader::kTooLong) {
        LLMOPS_RETURN_IF_ERROR(r.skip(lines.line(), "too_large", "line longer than " + human(r.opt.max_record_bytes)));
      } else if (!blank(line)) {
        LLMOPS_RETURN_IF_ERROR(r.text_record(std::move(line), lines.line()));
      }
      continue;
    }
    if (r.opt.split == "paragraph" && what == LineReader::kLine && blank(line)) {
      LLMOPS_RETURN_IF_ERROR(flush());
      continue;
    }
    if (record.empty() && !too_big) record_line = lines.line();
    if (what == LineReader::kTooLong || record.size() + line.size() + 1 > r.opt.max_record_bytes) {
      too_big = true;
      record.clear();
      continue;
    }
    if (!too_big) {
      if (!record.empty()) record.push_back('\n');
      record.append(line);
    }
  }
  return flush();
}

}  // namespace

void ImportReport::skip(const std::string& file, uint64_t line, const std::string& reason_kind, const std::string& detail) {
  ++skipped;
  ++skipped_by_reason[reason_kind];
  if (issues.size() < kMaxIssues) issues.push_back({file, line, detail});
}

Json ImportReport::to_json() const {
  Json list = Json::array();
  for (const auto& i : issues) list.push_back({{"file", i.file}, {"line", i.line}, {"reason", i.reason}});
  return {{"files", files},         {"records", records},        {"bytes_in", bytes_in}, {"skipped", skipped},
          {"skipped_by_reason", skipped_by_reason}, {"utf8_repaired", utf8_repaired}, {"issues", list},
          {"issues_truncated", skipped > issues.size()}, {"skipped_files", skipped_files}};
}

Result<std::unique_ptr<ByteSource>> ByteSource::open(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return errno_status("opening " + path, errno);
  unsigned char magic[4] = {};
  size_t n = std::fread(magic, 1, 4, f);
  std::unique_ptr<ByteSource> src = std::make_unique<FileSource>(f, std::string(reinterpret_cast<char*>(magic), n));
  if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) return std::unique_ptr<ByteSource>(new GzipSource(std::move(src)));
  if (n == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd) {
    return std::unique_ptr<ByteSource>(new ZstdSource(std::move(src)));
  }
  return src;
}

std::unique_ptr<ByteSource> ByteSource::from_string(std::string data) {
  if (data.size() >= 2 && static_cast<unsigned char>(data[0]) == 0x1f && static_cast<unsigned char>(data[1]) == 0x8b) {
    return std::make_unique<GzipSource>(std::make_unique<StringSource>(std::move(data)));
  }
  if (data.size() >= 4 && data.compare(0, 4, "\x28\xb5\x2f\xfd") == 0) {
    return std::make_unique<ZstdSource>(std::make_unique<StringSource>(std::move(data)));
  }
  return std::make_unique<StringSource>(std::move(data));
}

std::string format_from_name(const std::string& path) {
  std::string name = fs::path(path).filename().string();
  for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const char* z : {".gz", ".zst", ".zstd"}) {
    size_t n = std::strlen(z);
    if (name.size() > n && name.compare(name.size() - n, n, z) == 0) name.resize(name.size() - n);
  }
  std::string ext = fs::path(name).extension().string();
  if (ext == ".jsonl" || ext == ".ndjson") return "jsonl";
  if (ext == ".json") return "json";
  if (ext == ".csv") return "csv";
  if (ext == ".tsv" || ext == ".tab") return "tsv";
  if (ext == ".txt" || ext == ".text") return "text";
  if (ext == ".md" || ext == ".markdown") return "markdown";
  return "";
}

Status read_records(ByteSource& src, const std::string& format, const std::string& display, const ImportOptions& opt,
                    const RecordSink& sink, ImportReport& report, const RawRecordSink* raw) {
  Reader r{display, opt, sink, report, raw, {}};
  ++report.files;
  Status st = ok_status();
  if (format == "jsonl") st = read_jsonl(src, r);
  else if (format == "json") st = read_json_array(src, r);
  else if (format == "csv") st = read_csv(src, r, ',');
  else if (format == "tsv") st = read_csv(src, r, '\t');
  else if (format == "text" || format == "markdown") st = read_text(src, r);
  else return invalid_argument("unknown format '" + format + "' (jsonl, json, csv, tsv, text, markdown)");
  report.bytes_in += src.compressed_bytes_read();
  if (!st.ok() && st.code() == Code::kDataLoss) {
    // A damaged compressed stream: the records before the damage are kept, the file is reported.
    report.skip(display, 0, "damaged_file", st.message());
    if (opt.strict) return invalid_argument(display + ": " + st.message());
    return ok_status();
  }
  return st;
}

Result<std::vector<std::string>> expand_inputs(const std::vector<std::string>& paths, const ImportOptions& opt, ImportReport& report) {
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    auto st = fs::status(p, ec);
    if (ec || !fs::exists(st)) return not_found("cannot read " + p + (ec ? ": " + ec.message() : ": no such file or directory"));
    if (fs::is_regular_file(st) || fs::is_fifo(st)) {  // a FIFO: another process streams the data in
      if (opt.format.empty() && format_from_name(p).empty()) {
        return invalid_argument(p + ": cannot tell the format from the name; add --format jsonl|json|csv|tsv|text|markdown");
      }
      files.push_back(p);
      continue;
    }
    if (!fs::is_directory(st)) return invalid_argument(p + " is neither a file nor a directory");
    std::vector<std::string> found;
    for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      std::string f = it->path().string();
      if (it->path().filename().string().rfind('.', 0) == 0) continue;  // hidden files
      if (opt.format.empty() && format_from_name(f).empty()) {
        report.skipped_files.push_back(f);
        continue;
      }
      found.push_back(f);
    }
    if (ec) return errno_status("listing " + p, ec.value());
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

}  // namespace llmops::data
