// PII scanners: positives and negatives for each type, Luhn and IBAN checksums.
#include <gtest/gtest.h>

#include "data/pii.h"

namespace llmops::data {
namespace {

std::string types_in(const std::string& text) {
  std::string out;
  for (const auto& m : find_pii(text)) out += std::string(out.empty() ? "" : ",") + pii_name(m.type);
  return out;
}

TEST(DataPii, LuhnChecksum) {
  EXPECT_TRUE(luhn_valid("4111111111111111"));
  EXPECT_TRUE(luhn_valid("5500005555555559"));
  EXPECT_TRUE(luhn_valid("378282246310005"));
  EXPECT_FALSE(luhn_valid("4111111111111112"));
  EXPECT_FALSE(luhn_valid("41111111a1111111"));
  EXPECT_FALSE(luhn_valid(""));
}

TEST(DataPii, IbanChecksum) {
  EXPECT_TRUE(iban_valid("DE89370400440532013000"));
  EXPECT_TRUE(iban_valid("GB82WEST12345698765432"));
  EXPECT_TRUE(iban_valid("FR1420041010050500013M02606"));
  EXPECT_FALSE(iban_valid("DE89370400440532013001"));  // one digit off
  EXPECT_FALSE(iban_valid("GB82WEST1234569876543"));   // too short for the checksum to hold
  EXPECT_FALSE(iban_valid("XX"));
}

TEST(DataPii, EmailAddresses) {
  EXPECT_EQ(types_in("write to jane.doe+news@mail.example.co.uk today"), "email");
  EXPECT_EQ(redact_pii("a@b.io.", nullptr), "<EMAIL>.");
  EXPECT_EQ(types_in("user@localhost"), "");      // no dot: not a routable address
  EXPECT_EQ(types_in("@handle and a@b"), "");
  EXPECT_EQ(types_in("x@y.c0m"), "");              // the top-level domain is letters
}

TEST(DataPii, PhoneNumbers) {
  EXPECT_EQ(types_in("call +1 (555) 123-4567 now"), "phone");
  EXPECT_EQ(types_in("call +44 20 7946 0958"), "phone");
  EXPECT_EQ(types_in("call (555) 123-4567"), "phone");
  EXPECT_EQ(types_in("call 555-123-4567 or 555.123.4567"), "phone,phone");
  EXPECT_EQ(types_in("Tel. 030 12345678"), "phone");
  EXPECT_EQ(types_in("in 2023-10-05 we sold 1234567 units"), "");  // dates and counts are not phones
  EXPECT_EQ(types_in("version 1.2.3"), "");
  EXPECT_EQ(types_in("+12 34"), "");  // too few digits
}

TEST(DataPii, IpAddresses) {
  EXPECT_EQ(types_in("host 192.168.0.1 up"), "ipv4");
  EXPECT_EQ(types_in("bad 256.1.1.1 and 1.2.3"), "");
  EXPECT_EQ(types_in("v6 2001:db8::8a2e:370:7334 and fe80::1ff:fe23:4567:890a"), "ipv6,ipv6");
  EXPECT_EQ(types_in("loopback ::1 here"), "ipv6");
  EXPECT_EQ(types_in("at 12:30:45 and std::vector and a::b"), "");
}

TEST(DataPii, CardsNeedLuhnAndAnIssuer) {
  EXPECT_EQ(types_in("card 4111 1111 1111 1111 exp"), "credit_card");
  EXPECT_EQ(types_in("card 4111-1111-1111-1111"), "credit_card");
  EXPECT_EQ(types_in("card 378282246310005"), "credit_card");
  EXPECT_EQ(types_in("card 4111 1111 1111 1112"), "");   // Luhn fails
  EXPECT_EQ(types_in("id 1234567812345670"), "");        // Luhn holds, no issuer starts with 1
}

TEST(DataPii, Ibans) {
  EXPECT_EQ(types_in("pay DE89 3704 0044 0532 0130 00 now"), "iban");
  EXPECT_EQ(types_in("pay GB82WEST12345698765432."), "iban");
  EXPECT_EQ(types_in("pay DE89 3704 0044 0532 0130 01"), "");  // checksum fails
}

TEST(DataPii, SecretsAndKeys) {
  EXPECT_EQ(types_in("key AKIAIOSFODNN7EXAMPLE used"), "secret");
  EXPECT_EQ(types_in("ghp_0123456789abcdefghijABCDEFGHIJ012345"), "secret");
  EXPECT_EQ(types_in("token xoxb-1234567890-abcdefghij"), "secret");
  EXPECT_EQ(types_in("sk-proj-abcdefghijklmnopqrstuvwx"), "secret");
  EXPECT_EQ(types_in("AIzaSyA1234567890abcdefghijklmnopqrstuv"), "secret");
  EXPECT_EQ(types_in("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"), "secret");
  EXPECT_EQ(redact_pii("db_password = \"hunter2hunter2\";", nullptr), "db_password = \"<SECRET>\";");
  EXPECT_EQ(redact_pii("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\nafter", nullptr), "<SECRET>\nafter");
  EXPECT_EQ(types_in("the password is short: pw"), "");
  EXPECT_EQ(types_in("a skeleton key"), "");
}

TEST(DataPii, RedactionCountsPerType) {
  PiiCounts c{};
  std::string out = redact_pii("mail a@b.com, ip 10.0.0.1, card 4111111111111111, again c@d.org", &c);
  EXPECT_EQ(out, "mail <EMAIL>, ip <IP_ADDRESS>, card <CREDIT_CARD>, again <EMAIL>");
  EXPECT_EQ(c[static_cast<size_t>(PiiType::kEmail)], 2u);
  EXPECT_EQ(c[static_cast<size_t>(PiiType::kIpv4)], 1u);
  EXPECT_EQ(c[static_cast<size_t>(PiiType::kCreditCard)], 1u);
  EXPECT_EQ(redact_pii("nothing to see", &c), "nothing to see");
}

}  // namespace
}  // namespace llmops::data
