// Stage module 'serving': OpenAI-compatible inference over HTTP.
#include "common/placeholder.h"

LLMOPS_PLACEHOLDER_MODULE("serving", "OpenAI-compatible inference over HTTP")
