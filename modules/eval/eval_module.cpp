// Stage module 'eval': evaluation runs: perplexity, BLEU, ROUGE, comparisons.
#include "common/placeholder.h"

LLMOPS_PLACEHOLDER_MODULE("eval", "evaluation runs: perplexity, BLEU, ROUGE, comparisons")
