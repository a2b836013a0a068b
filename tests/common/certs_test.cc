// common/certs: the files `certs init` writes, what their certificates say, and that they verify
// against their CA (and not against another), read back with OpenSSL as a TLS peer would.
#include "common/certs.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/dsse.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::common {
namespace {

using ::farm::testing::ReadFile;
using ::farm::testing::StatusIs;
using ::farm::testing::StatusIsWithMessage;
using ::farm::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
using CertPtr = std::unique_ptr<X509, X509Free>;

std::vector<std::string> AllFiles() {
  return {kCaCertFile,    kCaKeyFile,    kCoordinatorCertFile, kCoordinatorKeyFile,
          kAdminCertFile, kAdminKeyFile, kSecretsKeyFile};
}

CertPtr ParseCert(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  return CertPtr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// "" when `cert_pem` verifies against `ca_pem` for `purpose` (X509_PURPOSE_SSL_SERVER or
// _CLIENT); else OpenSSL's reason.
std::string VerifyError(const std::string& ca_pem, const std::string& cert_pem, int purpose) {
  CertPtr ca = ParseCert(ca_pem);
  CertPtr cert = ParseCert(cert_pem);
  if (ca == nullptr || cert == nullptr) return "unparsable PEM";
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), &X509_STORE_free);
  X509_STORE_add_cert(store.get(), ca.get());
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                      &X509_STORE_CTX_free);
  X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr);
  X509_STORE_CTX_set_purpose(ctx.get(), purpose);
  if (X509_verify_cert(ctx.get()) == 1) return "";
  return X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

// The certificate's SANs as "DNS:name", "IP:address", "URI:uri".
std::vector<std::string> AltNames(const std::string& cert_pem) {
  CertPtr cert = ParseCert(cert_pem);
  std::vector<std::string> out;
  if (cert == nullptr) return {"unparsable PEM"};
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    int type = 0;
    const auto* value = static_cast<const ASN1_STRING*>(GENERAL_NAME_get0_value(name, &type));
    const std::string bytes(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                            static_cast<size_t>(ASN1_STRING_length(value)));
    if (type == GEN_IPADD) {
      char text[INET6_ADDRSTRLEN] = {};
      inet_ntop(bytes.size() == 4 ? AF_INET : AF_INET6, bytes.data(), text, sizeof(text));
      out.push_back(absl::StrCat("IP:", text));
    } else {
      out.push_back(absl::StrCat(type == GEN_DNS   ? "DNS:"
                                 : type == GEN_URI ? "URI:"
                                                   : "?:",
                                 bytes));
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

std::vector<std::string> ListCertDir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (const dirent* entry = readdir(d)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::map<std::string, std::string> ReadAll(const std::string& dir) {
  std::map<std::string, std::string> contents;
  for (const std::string& name : AllFiles())
    contents[name] = ReadFile(dir + "/" + name).value_or("");
  return contents;
}

class InitCertsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TempDir> temp = TempDir::Create("certs-test");
    ASSERT_TRUE(temp.ok()) << temp.status();
    temp_ = std::make_unique<TempDir>(*std::move(temp));
    dir_ = temp_->Join("tls/farm");  // neither directory exists yet
  }

  std::string Read(const std::string& name) { return ReadFile(dir_ + "/" + name).value_or(""); }

  std::unique_ptr<TempDir> temp_;
  std::string dir_;
};

TEST_F(InitCertsTest, WritesEveryFileWithItsMode) {
  ASSERT_OK(InitCerts({dir_}));
  EXPECT_EQ(ModeOf(dir_), 0700u);
  EXPECT_EQ(ModeOf(temp_->Join("tls")), 0700u);
  std::vector<std::string> sorted = AllFiles();
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(ListCertDir(dir_), sorted) << "no temporary file is left behind";
  for (const char* name : {kCaKeyFile, kCoordinatorKeyFile, kAdminKeyFile, kSecretsKeyFile}) {
    EXPECT_EQ(ModeOf(dir_ + "/" + name), 0600u) << name;
  }
  for (const char* name : {kCaCertFile, kCoordinatorCertFile, kAdminCertFile}) {
    EXPECT_EQ(ModeOf(dir_ + "/" + name), 0644u) << name;
    EXPECT_THAT(Read(name), ::testing::StartsWith("-----BEGIN CERTIFICATE-----\n"));
  }
  for (const char* name : {kCaKeyFile, kCoordinatorKeyFile, kAdminKeyFile}) {
    EXPECT_THAT(Read(name), ::testing::StartsWith("-----BEGIN PRIVATE KEY-----\n"));
  }
}

TEST_F(InitCertsTest, TheSecretsKeyIs32RandomBytesInBase64) {
  ASSERT_OK(InitCerts({dir_}));
  const std::string text = Read(kSecretsKeyFile);
  ASSERT_EQ(text.size(), 45u) << text;  // 44 characters of base64 and a newline
  EXPECT_EQ(text.back(), '\n');
  std::string key;
  ASSERT_TRUE(absl::Base64Unescape(text.substr(0, 44), &key)) << text;
  EXPECT_EQ(key.size(), 32u);
  ASSERT_OK_AND_ASSIGN(const std::string other, NewSecretsKey());
  EXPECT_NE(other, text);
}

TEST_F(InitCertsTest, TheCertificatesVerifyAgainstTheirCaOnly) {
  ASSERT_OK(InitCerts({dir_}));
  const std::string ca = Read(kCaCertFile);
  EXPECT_EQ(VerifyError(ca, Read(kCoordinatorCertFile), X509_PURPOSE_SSL_SERVER), "");
  EXPECT_EQ(VerifyError(ca, Read(kAdminCertFile), X509_PURPOSE_SSL_CLIENT), "");
  // The extended key usages keep each to its side of the connection.
  EXPECT_NE(VerifyError(ca, Read(kCoordinatorCertFile), X509_PURPOSE_SSL_CLIENT), "");
  EXPECT_NE(VerifyError(ca, Read(kAdminCertFile), X509_PURPOSE_SSL_SERVER), "");

  ASSERT_OK_AND_ASSIGN(const CertAndKey other_ca, CreateCa("another CA"));
  EXPECT_NE(VerifyError(other_ca.cert_pem, Read(kCoordinatorCertFile), X509_PURPOSE_SSL_SERVER),
            "");
  EXPECT_NE(VerifyError(other_ca.cert_pem, Read(kAdminCertFile), X509_PURPOSE_SSL_CLIENT), "");
}

TEST_F(InitCertsTest, WhatTheCertificatesSay) {
  ASSERT_OK(InitCerts({dir_}));
  CertPtr ca = ParseCert(Read(kCaCertFile));
  CertPtr server = ParseCert(Read(kCoordinatorCertFile));
  CertPtr admin = ParseCert(Read(kAdminCertFile));
  ASSERT_TRUE(ca && server && admin);

  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  const int bc = X509_get_ext_by_NID(ca.get(), NID_basic_constraints, -1);
  ASSERT_GE(bc, 0);
  EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(ca.get(), bc)), 1);
  EXPECT_EQ(X509_get_key_usage(ca.get()), uint32_t{KU_KEY_CERT_SIGN | KU_CRL_SIGN});
  EXPECT_EQ(X509_check_ca(server.get()), 0);
  EXPECT_EQ(X509_get_extended_key_usage(server.get()), uint32_t{XKU_SSL_SERVER});
  EXPECT_EQ(X509_get_extended_key_usage(admin.get()), uint32_t{XKU_SSL_CLIENT});

  const std::map<X509*, int> days = {{ca.get(), kCaValidityDays},
                                     {server.get(), kLeafValidityDays},
                                     {admin.get(), kLeafValidityDays}};
  std::vector<std::string> serials;
  for (const auto& [cert, want_days] : days) {
    EXPECT_EQ(X509_get_signature_nid(cert), NID_ecdsa_with_SHA256);
    EVP_PKEY* key = X509_get0_pubkey(cert);
    EXPECT_EQ(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
    EXPECT_EQ(EVP_PKEY_get_bits(key), 256);
    int day = 0;
    int sec = 0;
    ASSERT_EQ(ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(cert), X509_get0_notAfter(cert)), 1);
    EXPECT_EQ(day, want_days);  // and the five minutes it is backdated by
    EXPECT_EQ(sec, 300);
    const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
    EXPECT_GE(ASN1_STRING_length(serial), 12);  // 128 random bits (leading zero bytes drop)
    EXPECT_LE(ASN1_STRING_length(serial), 16);
    serials.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(serial)),
                         static_cast<size_t>(ASN1_STRING_length(serial)));
  }
  std::sort(serials.begin(), serials.end());
  EXPECT_EQ(std::unique(serials.begin(), serials.end()), serials.end());
}

TEST_F(InitCertsTest, TheSansAreExactlyTheRequestedOnes) {
  ASSERT_OK(InitCerts({dir_}));
  EXPECT_THAT(AltNames(Read(kCoordinatorCertFile)), ElementsAre("DNS:localhost", "IP:127.0.0.1"));
  EXPECT_THAT(AltNames(Read(kAdminCertFile)), ElementsAre("URI:farm://admin/admin"));
  EXPECT_THAT(AltNames(Read(kCaCertFile)), ::testing::IsEmpty());

  const std::string other = temp_->Join("other");
  ASSERT_OK_AND_ASSIGN(const std::vector<std::string> hosts,
                       ParseHosts("farm.example.com,10.0.0.5,::1,*.build.lan,farm.example.com"));
  ASSERT_OK(InitCerts({other, hosts}));
  EXPECT_THAT(AltNames(ReadFile(other + "/" + kCoordinatorCertFile).value_or("")),
              ElementsAre("DNS:farm.example.com", "IP:10.0.0.5", "IP:::1", "DNS:*.build.lan"));
}

TEST_F(InitCertsTest, ASecondRunRefusesAndChangesNothing) {
  ASSERT_OK(InitCerts({dir_}));
  const std::map<std::string, std::string> before = ReadAll(dir_);
  EXPECT_THAT(InitCerts({dir_}), StatusIsWithMessage(absl::StatusCode::kAlreadyExists,
                                                     HasSubstr(dir_ + "/ca.crt already exists")));
  EXPECT_EQ(ReadAll(dir_), before);
  EXPECT_EQ(ListCertDir(dir_).size(), AllFiles().size());
}

TEST_F(InitCertsTest, AnyOneExistingFileStopsEverything) {
  ASSERT_OK(farm::testing::WriteFile(temp_->Join("secrets.key"), "mine\n"));
  EXPECT_THAT(InitCerts({temp_->path()}),
              StatusIsWithMessage(absl::StatusCode::kAlreadyExists, HasSubstr("secrets.key")));
  EXPECT_THAT(ListCertDir(temp_->path()), ElementsAre("secrets.key"));
  EXPECT_EQ(ReadFile(temp_->Join("secrets.key")).value_or(""), "mine\n");
}

TEST_F(InitCertsTest, ADirectoryThatCannotBeMadeIsAnErrorNamingIt) {
  ASSERT_OK(farm::testing::WriteFile(temp_->Join("file"), "x"));
  EXPECT_THAT(InitCerts({temp_->Join("file/tls")}),
              StatusIsWithMessage(absl::StatusCode::kFailedPrecondition, HasSubstr("file/tls")));
  EXPECT_THAT(ListCertDir(temp_->path()), ElementsAre("file"));
}

TEST(CheckHostNameTest, RefusesWhatNoCertificateShouldName) {
  for (const std::string& bad :
       {std::string(""), std::string("has space"), std::string("tab\there"), std::string("nl\n"),
        std::string("nul\0x", 5), std::string("del\x7f"), std::string("host:7070"),
        std::string("-lead.example"), std::string("a..b"), std::string("dot."),
        std::string("caf\xc3\xa9.example"), std::string("a/b"), std::string("x*.example"),
        std::string(64, 'a') + ".example", std::string(254, 'a')}) {
    EXPECT_THAT(CheckHostName(bad), StatusIs(absl::StatusCode::kInvalidArgument))
        << absl::CHexEscape(bad);
  }
  for (const char* good : {"localhost", "127.0.0.1", "::1", "fe80::1", "farm.example.com",
                           "*.example.com", "build_01.lan", "a-b"}) {
    EXPECT_OK(CheckHostName(good));
  }
  EXPECT_THAT(CheckHostName("has space"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("a space")));
  EXPECT_THAT(CheckHostName("bell\a"), StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                                           HasSubstr("a control character")));
}

TEST(ParseHostsTest, SplitsAtCommasAndRefusesEmptyNames) {
  EXPECT_THAT(ParseHosts("a.lan,127.0.0.1"),
              ::farm::testing::IsOkAndHolds(ElementsAre("a.lan", "127.0.0.1")));
  for (const char* bad : {"", ",", "a,,b", "a,", ",a", "a, b"}) {
    EXPECT_THAT(ParseHosts(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

TEST_F(InitCertsTest, BadHostsWriteNothing) {
  EXPECT_THAT(InitCerts({dir_, {"localhost", "bad name"}}),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("bad name")));
  EXPECT_THAT(InitCerts({dir_, {}}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ListCertDir(temp_->path()), ::testing::IsEmpty());
}

TEST(IssueClientCertTest, CarriesTheIdentityAndVerifies) {
  ASSERT_OK_AND_ASSIGN(const CertAndKey ca, CreateCa("test CA"));
  ASSERT_OK_AND_ASSIGN(const CertAndKey agent,
                       IssueClientCert(ca.cert_pem, ca.key_pem, kRoleAgent, "builder-1.lan"));
  EXPECT_THAT(AltNames(agent.cert_pem), ElementsAre("URI:farm://agent/builder-1.lan"));
  EXPECT_EQ(VerifyError(ca.cert_pem, agent.cert_pem, X509_PURPOSE_SSL_CLIENT), "");
  ASSERT_OK_AND_ASSIGN(const CertAndKey viewer,
                       IssueClientCert(ca.cert_pem, ca.key_pem, kRoleViewer, "dash"));
  EXPECT_THAT(AltNames(viewer.cert_pem), ElementsAre("URI:farm://viewer/dash"));
  EXPECT_NE(agent.key_pem, viewer.key_pem);
}

TEST(IssueClientCertTest, RefusesBadIdentitiesAndBadCas) {
  ASSERT_OK_AND_ASSIGN(const CertAndKey ca, CreateCa("test CA"));
  ASSERT_OK_AND_ASSIGN(const CertAndKey other, CreateCa("other CA"));
  EXPECT_THAT(IssueClientCert(ca.cert_pem, ca.key_pem, "root", "x"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("role")));
  for (const std::string& name : {std::string(""), std::string("a/b"), std::string("a b"),
                                  std::string(65, 'n'), std::string("x:y")}) {
    EXPECT_THAT(IssueClientCert(ca.cert_pem, ca.key_pem, kRoleAgent, name),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << name;
  }
  EXPECT_THAT(
      IssueClientCert(ca.cert_pem, other.key_pem, kRoleAdmin, "x"),
      StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("does not belong")));
  ASSERT_OK_AND_ASSIGN(const CertAndKey leaf,
                       IssueClientCert(ca.cert_pem, ca.key_pem, kRoleAdmin, "x"));
  EXPECT_THAT(IssueClientCert(leaf.cert_pem, leaf.key_pem, kRoleAdmin, "y"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("not a CA")));
  EXPECT_THAT(IssueClientCert("not PEM", ca.key_pem, kRoleAdmin, "x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(IssueServerCert(ca.cert_pem, ca.key_pem, {"ok.lan", ""}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// DSSE envelopes (common/dsse.h), signed with a coordinator certificate `certs init` would make.
class DsseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(ca_, CreateCa("test CA"));
    ASSERT_OK_AND_ASSIGN(server_, IssueServerCert(ca_.cert_pem, ca_.key_pem, {"localhost"}));
    ASSERT_OK_AND_ASSIGN(other_ca_, CreateCa("another CA"));
  }
  // The envelope with its payload replaced (base64 of `payload`).
  static std::string WithPayload(const std::string& envelope, const std::string& payload) {
    const std::string old = absl::Base64Escape(R"({"_type":"x","n":1})");
    std::string out = envelope;
    out.replace(out.find(old), old.size(), absl::Base64Escape(payload));
    return out;
  }
  CertAndKey ca_, server_, other_ca_;
};

TEST_F(DsseTest, PaeIsTheSpecifiedEncoding) {
  EXPECT_EQ(Pae("http://example.com/HelloWorld", "hello world"),
            "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
}

TEST_F(DsseTest, ASignedEnvelopeOpensUnderItsCaOnly) {
  const std::string payload = R"({"_type":"x","n":1})";
  ASSERT_OK_AND_ASSIGN(std::string env, SignEnvelope(kInTotoPayloadType, payload, server_.key_pem,
                                                     server_.cert_pem));
  ASSERT_OK_AND_ASSIGN(OpenedEnvelope opened, OpenEnvelope(env, ca_.cert_pem));
  EXPECT_EQ(opened.payload, payload);
  EXPECT_EQ(opened.type, kInTotoPayloadType);
  EXPECT_EQ(opened.signatures, 1);
  EXPECT_EQ(opened.signer, "/O=farm/CN=farm coordinator");
  EXPECT_THAT(OpenEnvelope(env, other_ca_.cert_pem),
              StatusIsWithMessage(absl::StatusCode::kPermissionDenied,
                                  HasSubstr("does not lead to a trusted CA")));
  // One byte of the payload changed: the signature no longer matches.
  EXPECT_THAT(OpenEnvelope(WithPayload(env, R"({"_type":"x","n":2})"), ca_.cert_pem),
              StatusIsWithMessage(absl::StatusCode::kPermissionDenied,
                                  HasSubstr("does not match the payload")));
}

TEST_F(DsseTest, UnsignedOrMalformedEnvelopesAreRefused) {
  const std::string env = UnsignedEnvelope(kInTotoPayloadType, "{}");
  ASSERT_OK_AND_ASSIGN(OpenedEnvelope opened, OpenEnvelope(env, ""));
  EXPECT_EQ(opened.signatures, 0);
  EXPECT_THAT(OpenEnvelope(env, ca_.cert_pem),
              StatusIsWithMessage(absl::StatusCode::kPermissionDenied, HasSubstr("not signed")));
  EXPECT_THAT(OpenEnvelope("[1, 2]", ca_.cert_pem),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("JSON object")));
  EXPECT_THAT(SignEnvelope(kInTotoPayloadType, "{}", other_ca_.key_pem, server_.cert_pem),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("does not belong to its certificate")));
}

}  // namespace
}  // namespace farm::common
