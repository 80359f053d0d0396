// llmopsctl data ...: datasets, their versions and lineage, import (from server paths or
// streamed from here), the cleaning and preparation operations, statistics and export.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "fs.h"
#include "table.h"
#include "verbs.h"

namespace llmops::ctl {
namespace {

const std::string kBase = "/v1/modules/data";

// Command-line options into an operation's params: numbers as numbers, flags as booleans,
// comma lists as arrays, the rest as strings; --kebab-case becomes snake_case.
Result<Json> params_from(const Invocation& inv, const std::set<std::string>& allowed, const std::set<std::string>& numbers,
                         const std::set<std::string>& lists) {
  Json p = Json::object();
  for (const auto& [k, v] : inv.options) {
    if (!allowed.count(k)) return invalid_argument("unknown option --" + k + " here (llmopsctl data --help lists each verb's)");
    std::string key = k;
    std::replace(key.begin(), key.end(), '-', '_');
    const bool on = v == "true" || v == "1" || v == "yes" || v == "on";
    if (k == "no-whitespace") {
      p["whitespace"] = !on;
    } else if (k == "keep-empty") {
      p["drop_empty"] = !on;
    } else if (k == "types") {
      // a=string,b=number → {"a": "string", "b": "number"}
      Json types = Json::object();
      size_t at = 0;
      while (at < v.size()) {
        size_t comma = v.find(',', at);
        if (comma == std::string::npos) comma = v.size();
        std::string pair = v.substr(at, comma - at);
        size_t eq = pair.find('=');
        if (eq == std::string::npos || eq == 0) return invalid_argument("--types takes field=type pairs: a=string,b=number");
        types[pair.substr(0, eq)] = pair.substr(eq + 1);
        at = comma + 1;
      }
      p["types"] = types;
    } else if (is_flag_option(k)) {
      p[key] = on;
    } else if (numbers.count(k)) {
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !std::isfinite(d)) return invalid_argument("--" + k + " takes a number, not '" + v + "'");
      p[key] = d;
    } else if (lists.count(k)) {
      p[key] = comma_list(v);
    } else {
      p[key] = v;
    }
  }
  return p;
}

// Queues an operation and, unless --detach, follows it to its end.
Status submit(AdminClient& c, const Invocation& inv, const std::string& op, Json params) {
  params.erase("detach");
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("POST", kBase + "/ops/" + op, &params));
  const std::string id = str(r, "job");
  if (opt(inv, "detach") == "true") {
    if (inv.json) return print_json(r), ok_status();
    std::printf("queued job %s (data.%s); follow it with: llmopsctl jobs watch %s\n", id.c_str(), op.c_str(), id.c_str());
    return ok_status();
  }
  return watch_job(c, id, inv.json);
}

// Streams local files through the socket in 4 MiB chunks; returns their upload entries.
Result<Json> upload_files(AdminClient& c, const std::vector<std::string>& paths, bool quiet) {
  std::vector<std::pair<std::string, std::string>> files;  // path, display name
  for (const auto& p : paths) {
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (auto it = std::filesystem::recursive_directory_iterator(p, ec); !ec && it != std::filesystem::recursive_directory_iterator();
           it.increment(ec)) {
        if (it->is_regular_file() && it->path().filename().string()[0] != '.') found.push_back(it->path().string());
      }
      std::sort(found.begin(), found.end());
      for (const auto& f : found) files.emplace_back(f, std::filesystem::relative(f, std::filesystem::path(p).parent_path()).string());
    } else if (std::filesystem::is_regular_file(p, ec)) {
      files.emplace_back(p, std::filesystem::path(p).filename().string());
    } else {
      return not_found("cannot read " + p + ": no such file or directory");
    }
  }
  Json uploads = Json::array();
  std::string chunk(4u << 20, '\0');
  for (const auto& [path, display] : files) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) return errno_status("opening " + path, errno);
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(f, &std::fclose);
    LLMOPS_ASSIGN_OR_RETURN(Json begun, c.call("POST", kBase + "/uploads"));
    const std::string id = str(begun, "upload");
    uint64_t sent = 0;
    while (true) {
      size_t n = std::fread(chunk.data(), 1, chunk.size(), f);
      if (n == 0) {
        if (std::ferror(f)) {
          (void)c.call("DELETE", kBase + "/uploads/" + id);
          return errno_status("reading " + path, errno);
        }
        break;
      }
      std::string body(chunk.data(), n);
      auto r = c.call_raw("PUT", kBase + "/uploads/" + id, &body, "application/octet-stream");
      if (!r.ok()) {
        (void)c.call("DELETE", kBase + "/uploads/" + id);
        return r.status();
      }
      sent += n;
    }
    LLMOPS_ASSIGN_OR_RETURN(Json done, c.call("POST", kBase + "/uploads/" + id + "/commit"));
    if (!quiet) std::printf("uploaded %s (%s)\n", display.c_str(), human_bytes(static_cast<double>(sent)).c_str());
    uploads.push_back({{"blob", done["blob"]}, {"name", display}});
  }
  return uploads;
}

// --steps clean,dedup (each with its defaults) or --steps-json '[{"op":"clean","normalize":"nfkc"}, ...]'.
Result<Json> steps_from(const Invocation& inv, const char* list_opt, const char* json_opt) {
  if (inv.options.count(json_opt)) {
    LLMOPS_ASSIGN_OR_RETURN(Json j, parse_json_bounded(inv.options.at(json_opt), 16));
    return j;
  }
  Json steps = Json::array();
  const std::string v = opt(inv, list_opt);
  size_t at = 0;
  while (at < v.size()) {
    size_t comma = v.find(',', at);
    if (comma == std::string::npos) comma = v.size();
    if (comma > at) steps.push_back({{"op", v.substr(at, comma - at)}});
    at = comma + 1;
  }
  return steps;
}

Status cmd_pipeline(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "data pipeline NAME[@V] --steps clean,dedup,pii | --steps-json JSON"));
  LLMOPS_ASSIGN_OR_RETURN(Json steps, steps_from(inv, "steps", "steps-json"));
  Json p = {{"input", inv.words[2]}, {"steps", steps}};
  if (inv.options.count("output")) p["output"] = inv.options.at("output");
  for (const auto& [k, v] : inv.options) {
    if (k != "steps" && k != "steps-json" && k != "output" && k != "detach") return invalid_argument("unknown option --" + k + " for data pipeline");
  }
  return submit(c, inv, "pipeline", p);
}

Status cmd_import(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "data import PATH... --name NAME"));
  Invocation rest = inv;
  rest.options.erase("upload");
  rest.options.erase("then");
  rest.options.erase("then-json");
  LLMOPS_ASSIGN_OR_RETURN(Json p, params_from(rest, {"name", "format", "split", "text-field", "strict", "invalid-utf8", "detach"}, {}, {}));
  std::vector<std::string> paths(inv.words.begin() + 2, inv.words.end());
  if (opt(inv, "upload") == "true") {
    LLMOPS_ASSIGN_OR_RETURN(Json uploads, upload_files(c, paths, inv.json));
    p["uploads"] = uploads;
  } else {
    Json abs = Json::array();
    for (const auto& path : paths) abs.push_back(absolute_path(path));
    p["paths"] = abs;
  }
  if (inv.options.count("then") || inv.options.count("then-json")) {
    LLMOPS_ASSIGN_OR_RETURN(Json steps, steps_from(inv, "then", "then-json"));
    p["steps"] = steps;
  }
  return submit(c, inv, "import", p);
}

Verb op_verb(const std::string& op, const std::string& usage, const std::string& summary, std::set<std::string> allowed,
             std::set<std::string> numbers = {}, std::set<std::string> lists = {}) {
  allowed.insert({"output", "detach"});
  return {usage, summary, [=](AdminClient& c, const Invocation& inv) -> Status {
            LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, usage));
            LLMOPS_ASSIGN_OR_RETURN(Json p, params_from(inv, allowed, numbers, lists));
            p["input"] = inv.words[2];
            return submit(c, inv, op, p);
          }};
}

Status cmd_list(AdminClient& c, const Invocation& inv) {
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("GET", kBase + "/datasets"));
  if (inv.json) return print_json(r), ok_status();
  if (r["datasets"].empty()) {
    std::printf("no datasets yet (llmopsctl data import PATH --name NAME makes one)\n");
    return ok_status();
  }
  Table t({"NAME", "LATEST", "VERSIONS", "RECORDS", "SIZE", "FROM", "CREATED (UTC)"});
  for (const auto& d : r["datasets"]) {
    t.add({str(d, "name"), str(d, "ref"), str(d, "versions"), str(d, "records"), human_bytes(d.value("bytes", 0.0)), str(d, "operation"),
           human_time_ms(d.value("created_ms", uint64_t{0}))});
  }
  t.print(stdout);
  return ok_status();
}

Status cmd_versions(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "data versions NAME"));
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("GET", kBase + "/datasets/" + enc(inv.words[2])));
  if (inv.json) return print_json(r), ok_status();
  Table t({"VERSION", "RECORDS", "SIZE", "OPERATION", "PARENTS", "CONTENT SHA256", "CREATED (UTC)", "BY"});
  for (const auto& v : r["versions"]) {
    std::string parents;
    for (const auto& p : v["parents"]) parents += (parents.empty() ? "" : ",") + p.get<std::string>();
    t.add({str(v, "ref"), str(v, "records"), human_bytes(v.value("bytes", 0.0)), str(v, "operation"), parents.empty() ? "-" : parents,
           str(v, "content_hash").substr(0, 16) + "…", human_time_ms(v.value("created_ms", uint64_t{0})), str(v, "created_by")});
  }
  t.print(stdout);
  return ok_status();
}

Status cmd_show(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "data show NAME[@VERSION]"));
  LLMOPS_ASSIGN_OR_RETURN(Json v, c.call("GET", kBase + "/versions/" + enc(inv.words[2])));
  if (inv.json) return print_json(v), ok_status();
  const Json& l = v["lineage"];
  std::string parents;
  for (const auto& p : l["parents"]) parents += (parents.empty() ? "" : ", ") + p.get<std::string>();
  std::printf("%s  %s records, %s in %s shard(s)\n", str(v, "ref").c_str(), str(v, "records").c_str(),
              human_bytes(v.value("bytes", 0.0)).c_str(), str(v, "shard_count").c_str());
  std::printf("  content sha256: %s\n  created:        %s by %s (job %s)\n  operation:      %s %s\n  parents:        %s\n",
              str(v, "content_hash").c_str(), human_time_ms(v.value("created_ms", uint64_t{0})).c_str(), str(v, "created_by").c_str(),
              str(l, "job").c_str(), str(l, "operation").c_str(), dump_json(l["params"]).c_str(), parents.empty() ? "-" : parents.c_str());
  Table t({"FIELD", "FILLED", "TYPES"});
  const double n = std::max(1.0, v.value("records", 0.0));
  for (const auto& [field, f] : v["schema"].items()) {
    std::string types;
    for (const auto& [ty, cnt] : f["types"].items()) types += (types.empty() ? "" : ", ") + ty + " " + std::to_string(cnt.get<uint64_t>());
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f%%", 100.0 * f.value("present", 0.0) / n);
    t.add({field, pct, types});
  }
  std::printf("\n");
  t.print(stdout);
  std::printf("\nreport:\n%s\n", dump_json(v["report"], 2).c_str());
  return ok_status();
}

Status cmd_rm(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "data rm NAME@VERSION | data rm NAME --all"));
  std::string target = kBase + "/versions/" + enc(inv.words[2]) + (opt(inv, "all") == "true" ? "?all=1" : "");
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("DELETE", target));
  if (inv.json) return print_json(r), ok_status();
  for (const auto& ref : r["removed"]) std::printf("removed %s\n", ref.get<std::string>().c_str());
  std::printf("(llmopsctl gc frees shards no version uses any more)\n");
  return ok_status();
}

void print_records(const Json& list, const char* key) {
  for (const auto& item : list) std::printf("%s\n", dump_json(key != nullptr ? item[key] : item).c_str());
}

Status cmd_head(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "data head NAME[@VERSION] [--limit N] [--offset N]"));
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("GET", kBase + "/versions/" + enc(inv.words[2]) + "/records?limit=" + enc(opt(inv, "limit", "10")) +
                                                     "&offset=" + enc(opt(inv, "offset", "0"))));
  if (inv.json) return print_json(r), ok_status();
  print_records(r["records"], nullptr);
  return ok_status();
}

Status cmd_sample(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "data sample NAME[@VERSION] [--n N] [--seed S]"));
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("GET", kBase + "/versions/" + enc(inv.words[2]) + "/sample?n=" + enc(opt(inv, "n", "5")) +
                                                     "&seed=" + enc(opt(inv, "seed", "0"))));
  if (inv.json) return print_json(r), ok_status();
  for (const auto& item : r["records"]) std::printf("#%s %s\n", str(item, "index").c_str(), dump_json(item["record"]).c_str());
  return ok_status();
}

Status cmd_export(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "data export NAME[@VERSION] [--output FILE]"));
  const std::string out = opt(inv, "output", "-");
  std::FILE* f = stdout;
  std::string tmp;
  if (out != "-") {
    tmp = out + ".part";
    f = std::fopen(tmp.c_str(), "wb");
    if (f == nullptr) return errno_status("creating " + tmp, errno);
  }
  uint64_t bytes = 0;
  bool write_failed = false;
  Status st = c.stream_raw("GET", kBase + "/versions/" + enc(inv.words[2]) + "/export", nullptr, [&](std::string_view d) {
    bytes += d.size();
    write_failed = std::fwrite(d.data(), 1, d.size(), f) != d.size();
    return !write_failed;
  });
  if (f != stdout) {
    write_failed |= std::fclose(f) != 0;
    if (!st.ok() || write_failed) {
      std::remove(tmp.c_str());
      return st.ok() ? internal_error("writing " + out + " failed (disk full?)") : st;
    }
    if (std::rename(tmp.c_str(), out.c_str()) != 0) return errno_status("renaming " + tmp, errno);
    std::fprintf(stderr, "wrote %s (%s); sha256sum of it equals the version's content hash\n", out.c_str(),
                 human_bytes(static_cast<double>(bytes)).c_str());
  }
  return st;
}

Status cmd_diff(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 4, "data diff A B"));
  LLMOPS_ASSIGN_OR_RETURN(Json r, c.call("GET", kBase + "/diff?a=" + enc(inv.words[2]) + "&b=" + enc(inv.words[3])));
  if (inv.json) return print_json(r), ok_status();
  std::printf("%s (%s records) → %s (%s records)%s\n", str(r["a"], "ref").c_str(), str(r["a"], "records").c_str(), str(r["b"], "ref").c_str(),
              str(r["b"], "records").c_str(), r.value("same_content", false) ? "  identical content" : "");
  std::printf("  in both: %s   added: %s   removed: %s   %s\n", str(r, "records_in_both").c_str(), str(r, "added").c_str(),
              str(r, "removed").c_str(), r.value("b_derived_from_a", false) ? "(B was made from A)" : "");
  if (!r["fields_added"].empty()) std::printf("  fields added: %s\n", dump_json(r["fields_added"]).c_str());
  if (!r["fields_removed"].empty()) std::printf("  fields removed: %s\n", dump_json(r["fields_removed"]).c_str());
  for (const auto& s : r["added_samples"]) std::printf("  + %s\n", dump_json(s).substr(0, 200).c_str());
  for (const auto& s : r["removed_samples"]) std::printf("  - %s\n", dump_json(s).substr(0, 200).c_str());
  return ok_status();
}

// A distribution as percentiles and a terminal histogram.
void print_distribution(const char* title, const Json& d) {
  if (d.value("count", 0) == 0) return;
  std::printf("\n%s: mean %.1f  min %s  p10 %s  p25 %s  p50 %s  p75 %s  p90 %s  p99 %s  max %s\n", title, d.value("mean", 0.0),
              str(d, "min").c_str(), str(d, "p10").c_str(), str(d, "p25").c_str(), str(d, "p50").c_str(), str(d, "p75").c_str(),
              str(d, "p90").c_str(), str(d, "p99").c_str(), str(d, "max").c_str());
  uint64_t top = 1;
  for (const auto& b : d["histogram"]) top = std::max<uint64_t>(top, b.value("count", uint64_t{0}));
  for (const auto& b : d["histogram"]) {
    const uint64_t n = b.value("count", uint64_t{0});
    char range[48];
    std::snprintf(range, sizeof range, "%s-%s", str(b, "from").c_str(), str(b, "to").c_str());
    std::printf("  %15s %9llu %s\n", range, static_cast<unsigned long long>(n), std::string(static_cast<size_t>(40.0 * n / top + 0.5), '#').c_str());
  }
}

Status cmd_stats(AdminClient& c, const Invocation& inv) {
  LLMOPS_RETURN_IF_ERROR(need_words(inv, 3, "data stats NAME[@VERSION] [--field F] [--tokenizer PATH]"));
  std::string target = kBase + "/versions/" + enc(inv.words[2]) + "/stats?field=" + enc(opt(inv, "field", "text"));
  if (!opt(inv, "tokenizer").empty()) target += "&tokenizer=" + enc(absolute_path(opt(inv, "tokenizer")));
  LLMOPS_ASSIGN_OR_RETURN(Json s, c.call("GET", target));
  if (inv.json) return print_json(s), ok_status();
  std::printf("%s: %s records, %s; text field '%s' (missing in %s)\n", str(s, "ref").c_str(), str(s, "records").c_str(),
              human_bytes(s.value("bytes", 0.0)).c_str(), str(s, "field").c_str(), str(s, "records_without_field").c_str());
  Table f({"FIELD", "FILL RATE", "TYPES"});
  for (const auto& [name, v] : s["fields"].items()) {
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f%%", 100 * v.value("fill_rate", 0.0));
    f.add({name, pct, dump_json(v["types"])});
  }
  std::printf("\n");
  f.print(stdout);
  print_distribution("length in characters", s["chars"]);
  if (s.contains("tokens")) print_distribution("length in tokens", s["tokens"]);
  std::printf("\nlanguages:");
  for (const auto& [code, n] : s["languages"].items()) std::printf(" %s %s", code.c_str(), dump_json(n).c_str());
  std::printf("\nexact duplicates: %s records beyond the first of their cluster; cluster sizes %s\n",
              str(s["exact_duplicates"], "records_beyond_first").c_str(), dump_json(s["exact_duplicates"]["cluster_sizes"]).c_str());
  std::printf("near duplicates (Jaccard >= %s, first %s records): %s beyond the first; cluster sizes %s\n",
              str(s["near_duplicates"], "threshold").c_str(), str(s["near_duplicates"], "records_examined").c_str(),
              str(s["near_duplicates"], "records_beyond_first").c_str(), dump_json(s["near_duplicates"]["cluster_sizes"]).c_str());
  std::printf("PII:");
  for (const auto& [type, n] : s["pii"].items()) std::printf(" %s %s", type.c_str(), dump_json(n).c_str());
  std::printf("\n\ntop n-grams:\n");
  for (const char* n : {"1", "2", "3"}) {
    std::string line;
    for (const auto& g : s["top_ngrams"][n]) {
      if (line.size() > 150) break;
      line += (line.empty() ? "" : " | ") + g.value("ngram", "") + " " + str(g, "count");
    }
    std::printf("  %s: %s\n", n, line.c_str());
  }
  std::printf("\noutliers:\n");
  for (const char* k : {"longest", "shortest", "char_mix"}) {
    for (const auto& o : s["outliers"][k]) {
      std::string text = o.value("text", "");
      std::replace(text.begin(), text.end(), '\n', ' ');
      std::printf("  %-9s #%s %s chars%s: %s\n", k, str(o, "record").c_str(), o.contains("chars") ? str(o, "chars").c_str() : "-",
                  o.contains("non_letter_share") ? (" non-letters " + str(o, "non_letter_share")).c_str() : "", text.substr(0, 90).c_str());
    }
  }
  return ok_status();
}

}  // namespace

std::string enc(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '@' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      char b[4];
      std::snprintf(b, sizeof b, "%%%02X", c);
      out += b;
    }
  }
  return out;
}

std::string opt(const Invocation& inv, const char* name, const std::string& def) {
  auto it = inv.options.find(name);
  return it == inv.options.end() ? def : it->second;
}

Result<Json> number_option(const std::string& name, const std::string& text) {
  char* end = nullptr;
  const double d = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !std::isfinite(d)) return invalid_argument("--" + name + " takes a number, not '" + text + "'");
  if (d == std::floor(d) && std::fabs(d) < 1e15) return Json(static_cast<int64_t>(d));
  return Json(d);
}

Json comma_list(const std::string& v) {
  Json arr = Json::array();
  size_t at = 0;
  while (at <= v.size()) {
    size_t comma = v.find(',', at);
    if (comma == std::string::npos) comma = v.size();
    if (comma > at) arr.push_back(v.substr(at, comma - at));
    at = comma + 1;
  }
  return arr;
}

bool is_flag_option(const std::string& name) {
  static const std::set<std::string> kFlags = {"strict", "all", "upload", "detach", "tag-language", "no-whitespace", "keep-empty", "rouge-stemmer", "no-packing", "merge"};
  return kFlags.count(name) != 0;
}

const VerbTable& data_verbs() {
  static const VerbTable kVerbs = {
      {{"data", "list"}, {"data list", "datasets with their latest version", cmd_list}},
      {{"data", "versions"}, {"data versions NAME", "a dataset's versions with lineage", cmd_versions}},
      {{"data", "show"}, {"data show NAME[@V]", "one version: hash, schema, lineage, report", cmd_show}},
      {{"data", "rm"}, {"data rm NAME@V | NAME --all", "remove a version (or all)", cmd_rm}},
      {{"data", "diff"}, {"data diff A B", "records and fields added and removed between versions", cmd_diff}},
      {{"data", "head"}, {"data head NAME[@V] [--limit N] [--offset N]", "the first records", cmd_head}},
      {{"data", "sample"}, {"data sample NAME[@V] [--n N] [--seed S]", "a uniform random sample of records", cmd_sample}},
      {{"data", "export"}, {"data export NAME[@V] [--output FILE]", "the records as JSONL (stdout or a file)", cmd_export}},
      {{"data", "stats"}, {"data stats NAME[@V] [--field F] [--tokenizer PATH]", "lengths, languages, duplicates, PII, n-grams, outliers", cmd_stats}},
      {{"data", "import"},
       {"data import PATH... --name NAME [--format F] [--split file|line|paragraph] [--strict] [--upload] [--then clean,dedup]",
        "import files or directories (server paths, or --upload to stream them from here); --then runs steps on the way in", cmd_import}},
      {{"data", "pipeline"},
       {"data pipeline NAME[@V] --steps clean,dedup,pii [--steps-json JSON] [--output NAME]",
        "several of clean, filter, pii, dedup, near-dedup in one pass over worker threads (one version)", cmd_pipeline}},
      {{"data", "clean"},
       op_verb("clean", "data clean NAME[@V] [--normalize nfc|nfkc|none] [--field F] [--invalid-utf8 repair|drop]",
               "Unicode normalisation, control characters, whitespace, invalid UTF-8",
               {"normalize", "field", "invalid-utf8", "no-whitespace", "keep-empty"})},
      {{"data", "filter"},
       op_verb("filter", "data filter NAME[@V] [--min-chars N] [--max-chars N] [--min-tokens N --max-tokens N --tokenizer PATH] [--languages en,de]",
               "drop records by length (characters, tokens) and language",
               {"field", "min-chars", "max-chars", "min-tokens", "max-tokens", "tokenizer", "languages", "min-language-percent", "tag-language"},
               {"min-chars", "max-chars", "min-tokens", "max-tokens", "min-language-percent"}, {"languages"})},
      {{"data", "dedup"}, op_verb("dedup", "data dedup NAME[@V] [--field F]", "drop exact duplicates (normalised text)", {"field"})},
      {{"data", "near-dedup"},
       op_verb("near-dedup", "data near-dedup NAME[@V] [--threshold 0.8] [--permutations 128] [--shingle-words 5]",
               "drop near duplicates (MinHash + LSH), keeping the first of each cluster",
               {"field", "threshold", "permutations", "shingle-words"}, {"threshold", "permutations", "shingle-words"})},
      {{"data", "pii"}, op_verb("pii", "data pii NAME[@V] [--field F]", "redact e-mail, phone, IP, cards, IBANs, secrets", {"field"})},
      {{"data", "schema"},
       op_verb("schema", "data schema NAME[@V] --required a,b [--types a=string,b=number]",
               "check required fields and types; failures go to NAME.quarantine", {"required", "types"}, {}, {"required"})},
      {{"data", "decontaminate"},
       op_verb("decontaminate", "data decontaminate NAME[@V] --eval EVAL[@V] [--ngram 13]",
               "drop records sharing a long n-gram with an evaluation set", {"eval", "field", "eval-field", "ngram"}, {"ngram"})},
      {{"data", "split"},
       op_verb("split", "data split NAME[@V] [--train 0.8 --validation 0.1 --test 0.1] [--seed S]",
               "deterministic split by content hash into NAME.train/.validation/.test",
               {"train", "validation", "test", "seed", "key-field"}, {"train", "validation", "test"})},
      {{"data", "map"},
       op_verb("map", "data map NAME[@V] --to text|completion|chat [--text T | --prompt T --completion T | --user T --assistant T [--system T]]",
               "records into training examples through {field} templates", {"to", "text", "prompt", "completion", "system", "user", "assistant"})},
  };
  return kVerbs;
}

}  // namespace llmops::ctl
