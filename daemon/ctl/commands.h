// llmopsctl's verbs. run_ctl parses global flags (--socket, --json, --help) anywhere on the
// line, dispatches to the verb and returns the process exit code (status.cpp's table).
#pragma once

#include <string>
#include <vector>

namespace llmops::ctl {

int run_ctl(const std::vector<std::string>& args);

}  // namespace llmops::ctl
