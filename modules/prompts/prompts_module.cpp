// Stage module 'prompts': prompt templates and chat formatting.
#include "common/placeholder.h"

LLMOPS_PLACEHOLDER_MODULE("prompts", "prompt templates and chat formatting")
