#include "data/pii.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace llmops::data {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_alpha(char c) { return is_upper(c) || is_lower(c); }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_local_char(char c) { return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'; }
bool is_domain_char(char c) { return is_alnum(c) || c == '.' || c == '-'; }
bool is_token_char(char c) { return is_alnum(c) || c == '_' || c == '-'; }

size_t run_of(std::string_view t, size_t j, bool (*pred)(char), size_t max) {
  size_t k = j;
  while (k < t.size() && k - j < max && pred(t[k])) ++k;
  return k - j;
}

// The byte before i is not part of a word (or i is the start).
bool boundary_before(std::string_view t, size_t i) { return i == 0 || !is_alnum(t[i - 1]); }
bool boundary_after(std::string_view t, size_t end) { return end >= t.size() || !is_alnum(t[end]); }

void find_emails(std::string_view t, std::vector<PiiMatch>& out) {
  size_t from = 0;
  while (true) {
    const void* at = std::memchr(t.data() + from, '@', t.size() - from);
    if (at == nullptr) return;
    size_t a = static_cast<const char*>(at) - t.data();
    from = a + 1;
    size_t b = a;
    while (b > 0 && a - b < 64 && is_local_char(t[b - 1])) --b;
    while (b < a && (t[b] == '.' || t[b] == '-' || t[b] == '+')) ++b;  // a local part starts with a word character
    if (b == a) continue;
    size_t e = a + 1;
    while (e < t.size() && e - a < 254 && is_domain_char(t[e])) ++e;
    while (e > a + 1 && (t[e - 1] == '.' || t[e - 1] == '-')) --e;
    std::string_view domain = t.substr(a + 1, e - a - 1);
    size_t dot = domain.rfind('.');
    if (dot == std::string_view::npos || dot == 0 || domain.find("..") != std::string_view::npos) continue;
    std::string_view tld = domain.substr(dot + 1);
    if (tld.size() < 2 || !std::all_of(tld.begin(), tld.end(), is_alpha)) continue;
    out.push_back({b, e, PiiType::kEmail});
    from = e;
  }
}

void find_private_keys(std::string_view t, std::vector<PiiMatch>& out) {
  size_t from = 0;
  while ((from = t.find("-----BEGIN ", from)) != std::string_view::npos) {
    size_t head_end = t.find("-----", from + 11);
    if (head_end == std::string_view::npos) return;
    std::string_view label = t.substr(from + 11, head_end - from - 11);
    if (label.size() > 40 || label.find("PRIVATE KEY") == std::string_view::npos) {
      from = head_end;
      continue;
    }
    std::string end_marker = "-----END " + std::string(label) + "-----";
    size_t end = t.find(end_marker, head_end);
    size_t stop = end == std::string_view::npos ? t.size() : end + end_marker.size();
    out.push_back({from, stop, PiiType::kSecret});
    from = stop;
  }
}

// Card numbers: 13-19 digits in groups split by single spaces or dashes, Luhn-valid, with a
// known issuer prefix.
size_t match_card(std::string_view t, size_t i) {
  // Most numbers in text are short: a card has at least 13 digits, in groups of 4 or more
  // (or 4-6-5 for Amex) before any separator.
  if (run_of(t, i, is_digit, 4) < 4) return 0;
  std::string digits;
  size_t j = i, end = i;
  while (j < t.size() && digits.size() < 19) {
    if (is_digit(t[j])) {
      digits.push_back(t[j++]);
      end = j;
    } else if ((t[j] == ' ' || t[j] == '-') && j + 1 < t.size() && is_digit(t[j + 1]) && !digits.empty()) {
      ++j;
    } else {
      break;
    }
  }
  if (digits.size() < 13 || !boundary_after(t, end) || (end < t.size() && is_digit(t[end]))) return 0;
  auto prefix = [&](int n) { return std::stoi(digits.substr(0, n)); };
  const int p2 = prefix(2), p4 = prefix(4);
  const size_t len = digits.size();
  // Issuer prefixes with the lengths their numbers have.
  const bool issuer = (digits[0] == '4' && (len == 13 || len == 16 || len == 19)) ||
                      (((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) && len == 16) || ((p2 == 34 || p2 == 37) && len == 15) ||
                      ((p4 == 6011 || p2 == 65 || p2 == 35 || p2 == 62) && len >= 16) || (p2 == 36 && len >= 14);
  return issuer && luhn_valid(digits) ? end : 0;
}

// Phone numbers: +CC then 8-15 digits with separators, or the North American (ddd) ddd-dddd /
// ddd-ddd-dddd / ddd.ddd.dddd shapes, or a national 0-prefixed number in 2+ groups of 10-11.
size_t match_phone(std::string_view t, size_t i) {
  auto scan = [&](size_t j, size_t* ndigits, size_t* groups) {
    size_t end = j;
    *ndigits = 0;
    *groups = 0;
    bool in_group = false;
    while (j < t.size() && *ndigits <= 15) {
      char c = t[j];
      if (is_digit(c)) {
        ++*ndigits;
        if (!in_group) ++*groups;
        in_group = true;
        end = ++j;
      } else if ((c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') && j + 1 < t.size() &&
                 (is_digit(t[j + 1]) || (c != '(' && t[j + 1] == '(') || (c == ')' && t[j + 1] == ' '))) {
        in_group = false;
        ++j;
      } else {
        break;
      }
    }
    return end;
  };
  size_t nd, groups;
  if (t[i] == '+') {
    if (i + 1 >= t.size() || !is_digit(t[i + 1]) || t[i + 1] == '0') return 0;
    size_t end = scan(i + 1, &nd, &groups);
    return nd >= 8 && nd <= 15 && boundary_after(t, end) ? end : 0;
  }
  // North American shapes, checked exactly.
  auto digits_at = [&](size_t j, size_t n) {
    if (j + n > t.size()) return false;
    for (size_t k = 0; k < n; ++k) if (!is_digit(t[j + k])) return false;
    return true;
  };
  if (t[i] == '(' && digits_at(i + 1, 3) && i + 4 < t.size() && t[i + 4] == ')') {
    size_t j = i + 5;
    if (j < t.size() && t[j] == ' ') ++j;
    if (digits_at(j, 3) && j + 3 < t.size() && (t[j + 3] == '-' || t[j + 3] == '.' || t[j + 3] == ' ') && digits_at(j + 4, 4) &&
        boundary_after(t, j + 8) && (j + 8 >= t.size() || !is_digit(t[j + 8]))) {
      return j + 8;
    }
    return 0;
  }
  if (!is_digit(t[i])) return 0;
  // Inside a longer run of digit groups (an account number, a table row) it is not a phone.
  if (i >= 2 && (t[i - 1] == ' ' || t[i - 1] == '-' || t[i - 1] == '.') && is_digit(t[i - 2])) return 0;
  if (digits_at(i, 3) && i + 3 < t.size() && (t[i + 3] == '-' || t[i + 3] == '.' || t[i + 3] == ' ')) {
    char sep = t[i + 3];
    if (digits_at(i + 4, 3) && i + 7 < t.size() && t[i + 7] == sep && digits_at(i + 8, 4) && boundary_after(t, i + 12) &&
        !(i + 12 < t.size() && (t[i + 12] == '.' || t[i + 12] == '-') && i + 13 < t.size() && is_digit(t[i + 13]))) {
      return i + 12;
    }
  }
  if (t[i] == '0' && i + 1 < t.size() && is_digit(t[i + 1]) && t[i + 1] != '0') {
    size_t end = scan(i, &nd, &groups);
    bool dotted = false;
    for (size_t k = i; k < end; ++k) dotted |= t[k] == '.';
    if (!dotted && nd >= 10 && nd <= 11 && groups >= 2 && groups <= 4 && boundary_after(t, end)) return end;
  }
  return 0;
}

size_t match_ipv4(std::string_view t, size_t i) {
  size_t j = i;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (j >= t.size() || t[j] != '.') return 0;
      ++j;
    }
    size_t start = j;
    int value = 0;
    while (j < t.size() && is_digit(t[j]) && j - start < 3) value = value * 10 + (t[j++] - '0');
    if (j == start || value > 255 || (j < t.size() && is_digit(t[j]))) return 0;
  }
  if (j < t.size() && (is_alnum(t[j]) || (t[j] == '.' && j + 1 < t.size() && is_digit(t[j + 1])))) return 0;
  return j;
}

size_t match_ipv6(std::string_view t, size_t i) {
  size_t j = i;
  size_t colons = 0;
  while (j < t.size() && j - i < 45 && (is_hex(t[j]) || t[j] == ':' || t[j] == '.')) colons += t[j++] == ':';
  while (j > i && t[j - 1] == '.') --j;
  if (colons < 2 || (j < t.size() && is_alnum(t[j]))) return 0;
  // Shorter tails first give up when the token runs into trailing punctuation ("::1:" ...).
  std::string_view tok = t.substr(i, j - i);
  size_t groups = 0, longest = 0, run = 0;
  for (char c : tok) {
    if (c == ':') {
      groups += run > 0;
      run = 0;
    } else {
      longest = std::max(longest, ++run);
    }
  }
  groups += run > 0;
  const bool compressed = tok.find("::") != std::string_view::npos;
  if (!(groups >= 3 || (compressed && groups >= 1 && longest >= 3) || tok == "::1")) return 0;
  char buf[46];
  std::memcpy(buf, tok.data(), tok.size());
  buf[tok.size()] = '\0';
  unsigned char addr[16];
  return inet_pton(AF_INET6, buf, addr) == 1 ? j : 0;
}

size_t iban_length_for(std::string_view cc) {
  struct Entry { const char* cc; uint8_t len; };
  static const Entry kLengths[] = {
      {"AD", 24}, {"AE", 23}, {"AT", 20}, {"BE", 16}, {"BG", 22}, {"BH", 22}, {"BR", 29}, {"CH", 21}, {"CY", 28}, {"CZ", 24},
      {"DE", 22}, {"DK", 18}, {"EE", 20}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GI", 23}, {"GL", 18},
      {"GR", 27}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IS", 26}, {"IT", 27}, {"KW", 30}, {"KZ", 20}, {"LB", 28},
      {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"ME", 22}, {"MK", 19}, {"MT", 31}, {"MU", 30}, {"NL", 18},
      {"NO", 15}, {"PL", 28}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SE", 24}, {"SI", 19}, {"SK", 24},
      {"SM", 27}, {"TN", 24}, {"TR", 26}, {"UA", 29}};
  for (const auto& e : kLengths) {
    if (cc == e.cc) return e.len;
  }
  return 0;
}

// CCdd then the BBAN, compact or in groups of four split by single spaces.
size_t match_iban(std::string_view t, size_t i) {
  if (i + 4 > t.size() || !is_upper(t[i]) || !is_upper(t[i + 1]) || !is_digit(t[i + 2]) || !is_digit(t[i + 3])) return 0;
  const size_t want = iban_length_for(t.substr(i, 2));
  if (want == 0) return 0;
  std::string compact;
  size_t j = i;
  while (j < t.size() && compact.size() < want) {
    char c = t[j];
    if (is_upper(c) || is_digit(c)) {
      compact.push_back(c);
      ++j;
    } else if (c == ' ' && j + 1 < t.size() && (is_upper(t[j + 1]) || is_digit(t[j + 1])) && compact.size() % 4 == 0) {
      ++j;
    } else {
      break;
    }
  }
  if (compact.size() != want || !boundary_after(t, j) || !iban_valid(compact)) return 0;
  return j;
}


bool is_upper_or_digit(char c) { return is_upper(c) || is_digit(c); }
bool is_b64url(char c) { return is_alnum(c) || c == '_' || c == '-'; }
bool is_slack(char c) { return is_alnum(c) || c == '-'; }

bool starts(std::string_view t, size_t i, std::string_view p) { return t.substr(i, p.size()) == p; }

// Provider token shapes: AWS access key ids, GitHub, Slack, OpenAI/Stripe-style sk-, Google
// API keys, JSON Web Tokens.
size_t match_token(std::string_view t, size_t i) {
  if (std::strchr("AgxsreA", t[i]) == nullptr) return 0;  // the first letters of the shapes below
  if ((starts(t, i, "AKIA") || starts(t, i, "ASIA")) && run_of(t, i + 4, is_upper_or_digit, 17) == 16 && boundary_after(t, i + 20)) {
    return i + 20;
  }
  for (const char* p : {"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}) {
    if (starts(t, i, p) && run_of(t, i + 4, [](char c) { return is_alnum(c); }, 80) >= 36) {
      return i + 4 + run_of(t, i + 4, [](char c) { return is_alnum(c); }, 80);
    }
  }
  if (starts(t, i, "github_pat_") && run_of(t, i + 11, is_b64url, 200) >= 22) return i + 11 + run_of(t, i + 11, is_b64url, 200);
  if (starts(t, i, "xox") && i + 4 < t.size() && std::strchr("baprs", t[i + 3]) != nullptr && t[i + 4] == '-' &&
      run_of(t, i + 5, is_slack, 200) >= 10) {
    return i + 5 + run_of(t, i + 5, is_slack, 200);
  }
  for (const char* p : {"sk-", "sk_live_", "sk_test_", "rk_live_"}) {
    size_t n = std::strlen(p);
    if (starts(t, i, p) && run_of(t, i + n, is_b64url, 300) >= 20) return i + n + run_of(t, i + n, is_b64url, 300);
  }
  if (starts(t, i, "AIza") && run_of(t, i + 4, is_b64url, 40) >= 35) return i + 4 + run_of(t, i + 4, is_b64url, 40);
  if (starts(t, i, "eyJ")) {
    size_t j = i;
    for (int part = 0; part < 3; ++part) {
      size_t n = run_of(t, j, is_b64url, 8192);
      if (n < 10) return 0;
      j += n;
      if (part < 2) {
        if (j >= t.size() || t[j] != '.') return 0;
        ++j;
      }
    }
    return j;
  }
  return 0;
}

// "password = hunter2hunter2", "api_key: 'abc...'": the value after a secret-named key.
bool secret_key_name(std::string_view word) {
  std::string w(word);
  for (auto& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* k : {"password", "passwd", "pwd", "secret", "token", "apikey", "api_key", "api-key", "access_key", "secret_key",
                        "private_key", "client_secret", "auth_token"}) {
    size_t n = std::strlen(k);
    if (w.size() >= n && w.compare(w.size() - n, n, k) == 0) return true;
  }
  return false;
}

bool match_assignment(std::string_view t, size_t i, PiiMatch* m) {
  const size_t key_end = i + run_of(t, i, is_token_char, 64);
  size_t j = key_end;
  if (j < t.size() && (t[j] == '"' || t[j] == '\'')) ++j;
  while (j < t.size() && t[j] == ' ') ++j;
  if (j >= t.size() || (t[j] != '=' && t[j] != ':')) return false;  // cheap test first: most words are not keys
  if (key_end == i || !secret_key_name(t.substr(i, key_end - i))) return false;
  ++j;
  while (j < t.size() && t[j] == ' ') ++j;
  if (j < t.size() && (t[j] == '"' || t[j] == '\'')) ++j;
  size_t v = j;
  while (j < t.size() && j - v < 512 && !std::strchr(" \t\r\n\"',;<>", t[j])) ++j;
  if (j - v < 8) return false;
  *m = {v, j, PiiType::kSecret};
  return true;
}

}  // namespace

const char* pii_name(PiiType t) {
  static const char* kNames[] = {"email", "phone", "ipv4", "ipv6", "credit_card", "iban", "secret"};
  return kNames[static_cast<size_t>(t)];
}

const char* pii_placeholder(PiiType t) {
  static const char* kNames[] = {"<EMAIL>", "<PHONE>", "<IP_ADDRESS>", "<IP_ADDRESS>", "<CREDIT_CARD>", "<IBAN>", "<SECRET>"};
  return kNames[static_cast<size_t>(t)];
}

bool luhn_valid(std::string_view digits) {
  if (digits.empty()) return false;
  int sum = 0;
  bool dbl = false;
  for (size_t k = digits.size(); k-- > 0;) {
    if (!is_digit(digits[k])) return false;
    int d = digits[k] - '0';
    if (dbl) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
    dbl = !dbl;
  }
  return sum % 10 == 0;
}

bool iban_valid(std::string_view s) {
  if (s.size() < 15 || s.size() > 34 || !is_upper(s[0]) || !is_upper(s[1]) || !is_digit(s[2]) || !is_digit(s[3])) return false;
  int rem = 0;
  auto feed = [&](char c) {
    if (is_digit(c)) {
      rem = (rem * 10 + (c - '0')) % 97;
    } else if (is_upper(c)) {
      int v = c - 'A' + 10;
      rem = (rem * 100 + v) % 97;
    } else {
      return false;
    }
    return true;
  };
  for (size_t k = 4; k < s.size(); ++k) if (!feed(s[k])) return false;
  for (size_t k = 0; k < 4; ++k) if (!feed(s[k])) return false;
  return rem == 1;
}

std::vector<PiiMatch> find_pii(std::string_view t) {
  std::vector<PiiMatch> found;
  find_emails(t, found);
  find_private_keys(t, found);
  std::sort(found.begin(), found.end(), [](const PiiMatch& a, const PiiMatch& b) { return a.begin < b.begin; });
  std::vector<PiiMatch> out;
  size_t next_pre = 0;
  for (size_t i = 0; i < t.size();) {
    if (next_pre < found.size() && i >= found[next_pre].begin) {
      out.push_back(found[next_pre]);
      i = std::max(i, found[next_pre].end);
      ++next_pre;
      continue;
    }
    const size_t limit = next_pre < found.size() ? found[next_pre].begin : t.size();
    const char c = t[i];
    size_t end = 0;
    PiiType type = PiiType::kSecret;
    if (!boundary_before(t, i) && c != '+' && c != '(') {
      ++i;
      continue;
    }
    if (is_digit(c)) {
      if ((end = match_card(t, i)) != 0) type = PiiType::kCreditCard;
      else if ((end = match_ipv4(t, i)) != 0) type = PiiType::kIpv4;
      else if ((end = match_ipv6(t, i)) != 0) type = PiiType::kIpv6;
      else if ((end = match_phone(t, i)) != 0) type = PiiType::kPhone;
    } else if (c == '+' || c == '(') {
      if ((i == 0 || !is_alnum(t[i - 1])) && (end = match_phone(t, i)) != 0) type = PiiType::kPhone;
    } else if (is_alpha(c)) {
      PiiMatch m;
      if ((end = match_iban(t, i)) != 0) {
        type = PiiType::kIban;
      } else if ((end = match_token(t, i)) != 0) {
        type = PiiType::kSecret;
      } else if (is_hex(c) && i + run_of(t, i, is_hex, 5) < t.size() && t[i + run_of(t, i, is_hex, 5)] == ':' &&
                 (end = match_ipv6(t, i)) != 0) {
        type = PiiType::kIpv6;
      } else if (match_assignment(t, i, &m) && m.end <= limit) {
        out.push_back(m);
        i = m.end;
        continue;
      }
    } else if (c == ':' && (end = match_ipv6(t, i)) != 0) {
      type = PiiType::kIpv6;
    }
    if (end != 0 && end <= limit) {
      out.push_back({i, end, type});
      i = end;
      continue;
    }
    // Skip the rest of this word: matches start only at word boundaries.
    ++i;
    while (i < limit && is_alnum(t[i]) && is_alnum(t[i - 1])) ++i;
  }
  return out;
}

std::string redact_pii(std::string_view text, PiiCounts* counts) {
  std::vector<PiiMatch> found = find_pii(text);
  if (found.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t at = 0;
  for (const auto& m : found) {
    out.append(text.substr(at, m.begin - at));
    out.append(pii_placeholder(m.type));
    if (counts != nullptr) ++(*counts)[static_cast<size_t>(m.type)];
    at = m.end;
  }
  out.append(text.substr(at));
  return out;
}

}  // namespace llmops::data
