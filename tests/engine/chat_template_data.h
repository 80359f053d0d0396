// Test data for chat_template_test.cpp: published chat templates (tokenizer_config.json's
// chat_template, JSON-decoded), conversations, and the prompts transformers makes of them. The
// block between the GENERATED markers is written by chat_template_reference.py, which renders
// these templates and conversations with Jinja2 set up as transformers' apply_chat_template
// sets it up; edit the templates or conversations, then run it with --update.
#pragma once

#include <ctime>

namespace llmops::engine::test {

// The clock the date-printing templates see in the tests.
inline std::tm fixed_now() {  // Friday 26 July 2024, 13:00
  std::tm t{};
  t.tm_year = 124;
  t.tm_mon = 6;
  t.tm_mday = 26;
  t.tm_wday = 5;
  t.tm_yday = 207;
  t.tm_hour = 13;
  return t;
}


// ---- Published chat templates (tokenizer_config.json's chat_template, JSON-decoded) ----

// Qwen/Qwen2-7B-Instruct (ChatML with a default system turn).
constexpr char kQwen2[] = R"TPL({% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system
You are a helpful assistant.<|im_end|>
' }}{% endif %}{{'<|im_start|>' + message['role'] + '
' + message['content'] + '<|im_end|>' + '
'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
' }}{% endif %})TPL";

// Qwen/Qwen2.5-7B-Instruct (ChatML with tools).
constexpr char kQwen25[] = R"TPL({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
)TPL";

// meta-llama/Llama-2-7b-chat-hf
constexpr char kLlama2[] = R"TPL({% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %})TPL";

// meta-llama/Meta-Llama-3-8B-Instruct
constexpr char kLlama3[] = R"TPL({% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %})TPL";

// meta-llama/Llama-3.1-8B-Instruct (custom tools in the first user turn, a fixed date).
constexpr char kLlama31[] = R"TPL({{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
)TPL";

// Llama 3.2's template is 3.1's with today's date from strftime_now (this block replaces
// 3.1's date block).
constexpr char kLlama32DateBlock[] = R"TPL({%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %})TPL";

// mistralai/Mistral-7B-Instruct-v0.1
constexpr char kMistral[] = R"TPL({{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %})TPL";

// mistralai/Mixtral-8x7B-Instruct-v0.1
constexpr char kMixtral[] = R"TPL({{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %})TPL";

// HuggingFaceH4/zephyr-7b-beta; TinyLlama/TinyLlama-1.1B-Chat-v1.0 uses the same template.
constexpr char kZephyr[] = R"TPL({% for message in messages %}
{% if message['role'] == 'user' %}
{{ '<|user|>
' + message['content'] + eos_token }}
{% elif message['role'] == 'system' %}
{{ '<|system|>
' + message['content'] + eos_token }}
{% elif message['role'] == 'assistant' %}
{{ '<|assistant|>
'  + message['content'] + eos_token }}
{% endif %}
{% if loop.last and add_generation_prompt %}
{{ '<|assistant|>' }}
{% endif %}
{% endfor %})TPL";

// microsoft/Phi-3-mini-4k-instruct
constexpr char kPhi3[] = R"TPL({% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>
' + message['content'] + '<|end|>
'}}{% elif message['role'] == 'user' %}{{'<|user|>
' + message['content'] + '<|end|>
'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>
' + message['content'] + '<|end|>
'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>
' }}{% else %}{{ eos_token }}{% endif %})TPL";

// HuggingFaceTB/SmolLM2-1.7B-Instruct
constexpr char kSmolLM2[] = R"TPL({% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system
You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
' }}{% endif %}{{'<|im_start|>' + message['role'] + '
' + message['content'] + '<|im_end|>' + '
'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
' }}{% endif %})TPL";

// google/gemma-7b-it (and Gemma 2): no system turn.
constexpr char kGemma[] = R"TPL({{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %})TPL";

// google/gemma-3-4b-it's text part: the system turn goes in front of the first user turn.
constexpr char kGemma3[] = R"TPL({{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
)TPL";

// ---- Conversations (OpenAI's message shape) ----

// system + user + assistant + user; the last turn has whitespace around it for the templates
// that trim, and non-ASCII text.
constexpr char kConversation[] = R"JSON([
  {"role": "system", "content": "You are a helpful assistant."},
  {"role": "user", "content": "Hello! Who are you?"},
  {"role": "assistant", "content": "I am an assistant. How can I help?"},
  {"role": "user", "content": "  What is 2+2? Answer in café style \u2615.\n"}
])JSON";

// The same without the system turn, for templates that have none.
constexpr char kConversationNoSystem[] = R"JSON([
  {"role": "user", "content": "Hello! Who are you?"},
  {"role": "assistant", "content": "I am an assistant. How can I help?"},
  {"role": "user", "content": "  What is 2+2? Answer in café style \u2615.\n"}
])JSON";

// A tool round trip: OpenAI sends the call's arguments as a JSON string.
constexpr char kToolConversation[] = R"JSON([
  {"role": "system", "content": "You are a helpful assistant."},
  {"role": "user", "content": "What is the weather in Paris?"},
  {"role": "assistant", "content": null, "tool_calls": [
    {"id": "call_1", "type": "function",
     "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
  {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature_c\": 21}"}
])JSON";

// Keys in sorted order: Json (nlohmann) keeps objects sorted, transformers keeps the order it
// was given, so the two agree when the order is sorted to begin with.
constexpr char kTools[] = R"JSON([
  {"function": {"description": "Current weather in a city.", "name": "get_weather",
                "parameters": {"properties": {"city": {"description": "City name", "type": "string"}},
                               "required": ["city"], "type": "object"}},
   "type": "function"}
])JSON";


// ---- Expected prompts ----

// BEGIN GENERATED by chat_template_reference.py
constexpr char kWantQwen2[] =
    "<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n"
    "Hello! Who are you?<|im_end|>\n"
    "<|im_start|>assistant\n"
    "I am an assistant. How can I help?<|im_end|>\n"
    "<|im_start|>user\n"
    "  What is 2+2? Answer in café style ☕.\n"
    "<|im_end|>\n"
    "<|im_start|>assistant\n";
constexpr char kWantQwen2NoSystem[] =
    "<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n"
    "Hello! Who are you?<|im_end|>\n"
    "<|im_start|>assistant\n"
    "I am an assistant. How can I help?<|im_end|>\n"
    "<|im_start|>user\n"
    "  What is 2+2? Answer in café style ☕.\n"
    "<|im_end|>\n"
    "<|im_start|>assistant\n";
constexpr char kWantQwen25[] =
    "<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n"
    "Hello! Who are you?<|im_end|>\n"
    "<|im_start|>assistant\n"
    "I am an assistant. How can I help?<|im_end|>\n"
    "<|im_start|>user\n"
    "  What is 2+2? Answer in café style ☕.\n"
    "<|im_end|>\n"
    "<|im_start|>assistant\n";
constexpr char kWantQwen25Tools[] =
    "<|im_start|>system\n"
    "You are a helpful assistant.\n"
    "\n"
    "# Tools\n"
    "\n"
    "You may call one or more functions to assist with the user query.\n"
    "\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n"
    "<tools>\n"
    "{\"function\": {\"description\": \"Current weather in a city.\", \"name\": \"get_weather\", \"parameters\": {\"properties\": {\"city\": {\"description\": \"City name\", \"type\": \"string\"}}, \"required\": [\"city\"], \"type\": \"object\"}}, \"type\": \"function\"}\n"
    "</tools>\n"
    "\n"
    "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
    "<tool_call>\n"
    "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n"
    "</tool_call><|im_end|>\n"
    "<|im_start|>user\n"
    "What is the weather in Paris?<|im_end|>\n"
    "<|im_start|>assistant\n"
    "<tool_call>\n"
    "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
    "</tool_call><|im_end|>\n"
    "<|im_start|>user\n"
    "<tool_response>\n"
    "{\"temperature_c\": 21}\n"
    "</tool_response><|im_end|>\n"
    "<|im_start|>assistant\n";
constexpr char kWantLlama2[] =
    "<s>[INST] <<SYS>>\n"
    "You are a helpful assistant.\n"
    "<</SYS>>\n"
    "\n"
    "Hello! Who are you? [/INST] I am an assistant. How can I help? </s><s>[INST] What is 2+2? Answer in café style ☕. [/INST]";
constexpr char kWantLlama3[] =
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
    "\n"
    "You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
    "\n"
    "Hello! Who are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\n"
    "I am an assistant. How can I help?<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
    "\n"
    "What is 2+2? Answer in café style ☕.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\n";
constexpr char kWantLlama31[] =
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
    "\n"
    "Cutting Knowledge Date: December 2023\n"
    "Today Date: 26 Jul 2024\n"
    "\n"
    "You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
    "\n"
    "Hello! Who are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\n"
    "I am an assistant. How can I help?<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
    "\n"
    "What is 2+2? Answer in café style ☕.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\n";
constexpr char kWantLlama31Tools[] =
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
    "\n"
    "Environment: ipython\n"
    "Cutting Knowledge Date: December 2023\n"
    "Today Date: 26 Jul 2024\n"
    "\n"
    "You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
    "\n"
    "Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n"
    "\n"
    "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n"
    "\n"
    "{\n"
    "    \"function\": {\n"
    "        \"description\": \"Current weather in a city.\",\n"
    "        \"name\": \"get_weather\",\n"
    "        \"parameters\": {\n"
    "            \"properties\": {\n"
    "                \"city\": {\n"
    "                    \"description\": \"City name\",\n"
    "                    \"type\": \"string\"\n"
    "                }\n"
    "            },\n"
    "            \"required\": [\n"
    "                \"city\"\n"
    "            ],\n"
    "            \"type\": \"object\"\n"
    "        }\n"
    "    },\n"
    "    \"type\": \"function\"\n"
    "}\n"
    "\n"
    "What is the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\n"
    "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n"
    "\n"
    "\"{\\\"temperature_c\\\": 21}\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\n";
constexpr char kWantLlama31ToolsInSystem[] =
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
    "\n"
    "Environment: ipython\n"
    "Cutting Knowledge Date: December 2023\n"
    "Today Date: 26 Jul 2024\n"
    "\n"
    "You have access to the following functions. To call a function, please respond with JSON for a function call.Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n"
    "\n"
    "{\n"
    "    \"function\": {\n"
    "        \"description\": \"Current weather in a city.\",\n"
    "        \"name\": \"get_weather\",\n"
    "        \"parameters\": {\n"
    "            \"properties\": {\n"
    "                \"city\": {\n"
    "                    \"description\": \"City name\",\n"
    "                    \"type\": \"string\"\n"
    "                }\n"
    "            },\n"
    "            \"required\": [\n"
    "                \"city\"\n"
    "            ],\n"
    "            \"type\": \"object\"\n"
    "        }\n"
    "    },\n"
    "    \"type\": \"function\"\n"
    "}\n"
    "\n"
    "You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
    "\n"
    "What is the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\n"
    "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n"
    "\n"
    "\"{\\\"temperature_c\\\": 21}\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\n";
constexpr char kWantLlama32[] =
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
    "\n"
    "Cutting Knowledge Date: December 2023\n"
    "Today Date: 26 Jul 2024\n"
    "\n"
    "You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
    "\n"
    "Hello! Who are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\n"
    "I am an assistant. How can I help?<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
    "\n"
    "What is 2+2? Answer in café style ☕.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\n";
constexpr char kWantMistral[] =
    "<s>[INST] Hello! Who are you? [/INST]I am an assistant. How can I help?</s> [INST]   What is 2+2? Answer in café style ☕.\n"
    " [/INST]";
constexpr char kWantMixtral[] =
    "<s>[INST] Hello! Who are you? [/INST]I am an assistant. How can I help?</s>[INST]   What is 2+2? Answer in café style ☕.\n"
    " [/INST]";
constexpr char kWantZephyr[] =
    "<|system|>\n"
    "You are a helpful assistant.</s>\n"
    "<|user|>\n"
    "Hello! Who are you?</s>\n"
    "<|assistant|>\n"
    "I am an assistant. How can I help?</s>\n"
    "<|user|>\n"
    "  What is 2+2? Answer in café style ☕.\n"
    "</s>\n"
    "<|assistant|>\n";
constexpr char kWantPhi3[] =
    "<|system|>\n"
    "You are a helpful assistant.<|end|>\n"
    "<|user|>\n"
    "Hello! Who are you?<|end|>\n"
    "<|assistant|>\n"
    "I am an assistant. How can I help?<|end|>\n"
    "<|user|>\n"
    "  What is 2+2? Answer in café style ☕.\n"
    "<|end|>\n"
    "<|assistant|>\n";
constexpr char kWantPhi3NoPrompt[] =
    "<|system|>\n"
    "You are a helpful assistant.<|end|>\n"
    "<|user|>\n"
    "Hello! Who are you?<|end|>\n"
    "<|assistant|>\n"
    "I am an assistant. How can I help?<|end|>\n"
    "<|user|>\n"
    "  What is 2+2? Answer in café style ☕.\n"
    "<|end|>\n"
    "<|endoftext|>";
constexpr char kWantSmolLM2[] =
    "<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n"
    "Hello! Who are you?<|im_end|>\n"
    "<|im_start|>assistant\n"
    "I am an assistant. How can I help?<|im_end|>\n"
    "<|im_start|>user\n"
    "  What is 2+2? Answer in café style ☕.\n"
    "<|im_end|>\n"
    "<|im_start|>assistant\n";
constexpr char kWantGemma[] =
    "<bos><start_of_turn>user\n"
    "Hello! Who are you?<end_of_turn>\n"
    "<start_of_turn>model\n"
    "I am an assistant. How can I help?<end_of_turn>\n"
    "<start_of_turn>user\n"
    "What is 2+2? Answer in café style ☕.<end_of_turn>\n"
    "<start_of_turn>model\n";
constexpr char kWantGemma3[] =
    "<bos><start_of_turn>user\n"
    "You are a helpful assistant.\n"
    "\n"
    "Hello! Who are you?<end_of_turn>\n"
    "<start_of_turn>model\n"
    "I am an assistant. How can I help?<end_of_turn>\n"
    "<start_of_turn>user\n"
    "What is 2+2? Answer in café style ☕.<end_of_turn>\n"
    "<start_of_turn>model\n";
// END GENERATED

}  // namespace llmops::engine::test
