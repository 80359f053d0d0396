// What llmopsctl's verb files share (commands.cpp: the daemon, keys, jobs, models, serving;
// data_commands.cpp: datasets): the parsed command line, the verb table entry and a few
// printing helpers. Single-threaded, like llmopsctl.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "client.h"
#include "json.h"
#include "status.h"

namespace llmops::ctl {

struct Invocation {
  std::string socket;
  bool json = false;
  bool help = false;
  std::vector<std::string> words;              // verb words and positional arguments
  std::map<std::string, std::string> options;  // --name value / --name=value; flags map to "true"
};

struct Verb {
  std::string usage;    // "jobs show ID"
  std::string summary;  // one line
  std::function<Status(AdminClient&, const Invocation&)> run;
};

using VerbTable = std::vector<std::pair<std::vector<std::string>, Verb>>;

// Options that take no value (--strict, not --strict true).
bool is_flag_option(const std::string& name);

void print_json(const Json& j);
// A path segment percent-encoded (dataset refs keep '@' and '/').
std::string enc(const std::string& s);
// An option's number: whole numbers as integers, others as doubles; kInvalidArgument naming it.
Result<Json> number_option(const std::string& name, const std::string& text);
// "a,b,,c" → ["a", "b", "c"].
Json comma_list(const std::string& v);
// An option's value, def when absent.
std::string opt(const Invocation& inv, const char* name, const std::string& def = "");
// A field as text: strings as they are, others as JSON, "-" when absent or null.
std::string str(const Json& j, const char* key);
Status need_words(const Invocation& inv, size_t n, const std::string& usage);
// Follows a job with a progress line until it ends; the Status says how it ended.
Status watch_job(AdminClient& c, const std::string& id, bool json);

// The "data ..." verbs (data_commands.cpp).
const VerbTable& data_verbs();
// The "eval ..." verbs (eval_commands.cpp).
const VerbTable& eval_verbs();
// The "tune ..." verbs (tune_commands.cpp).
const VerbTable& tune_verbs();

}  // namespace llmops::ctl
