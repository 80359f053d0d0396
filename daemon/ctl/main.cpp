// llmopsctl: the admin CLI of llmopsd.
#include <string>
#include <vector>

#include "commands.h"

int main(int argc, char** argv) { return llmops::ctl::run_ctl(std::vector<std::string>(argv + 1, argv + argc)); }
