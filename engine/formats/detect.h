// Recognises a model file or directory by its contents (not its name) so loaders get the right
// file and users get a clear word about formats that are refused or not supported yet.
// Pickle checkpoints (.pt, .ckpt, .bin zips with data.pkl) are recognised and never
// deserialised. Any thread.
#pragma once

#include <string>

#include "status.h"

namespace llmops::engine {

// kHuggingFaceDir: a directory with config.json and safetensors weights (SafetensorsModel opens it).
enum class ModelFormat { kGguf, kLlama2c, kSafetensors, kHuggingFaceDir, kPickle };
const char* model_format_name(ModelFormat f);

// kInvalidArgument for pickle checkpoints (with what to do instead) and unrecognised files.
Result<ModelFormat> detect_model_format(const std::string& path);

}  // namespace llmops::engine
