// The secrets keyring (AES-256-GCM at rest, key files, rotation) and the secret registry.
#include "coordinator/auth/secret_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "common/certs.h"
#include "coordinator/auth/secret_keyring.h"
#include "coordinator/store/memory_store.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::coordinator {
namespace {

using ::farm::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::string_view kCanary = "canary-Zq8vX2-secret-value";

std::string NewKeyText() {
  absl::StatusOr<std::string> key = common::NewSecretsKey();
  EXPECT_TRUE(key.ok());
  return key.value_or("");
}

SecretKeyring Ring(const std::vector<std::string>& texts) {
  absl::StatusOr<SecretKeyring> ring = SecretKeyring::FromTexts(texts);
  EXPECT_TRUE(ring.ok()) << ring.status();
  return *std::move(ring);
}

TEST(SecretKeyringTest, ARecordOpensUnderItsNameAndKeyAndHidesTheValue) {
  SecretKeyring ring = Ring({NewKeyText()});
  farm::internal::SecretRecord record;
  ASSERT_OK(ring.Seal("DEPLOY_KEY", kCanary, &record));
  EXPECT_EQ(record.key_id(), ring.current_id());
  EXPECT_EQ(record.key_id().size(), 8u);
  EXPECT_EQ(record.nonce().size(), kSecretNonceBytes);
  EXPECT_THAT(record.SerializeAsString(), Not(HasSubstr(std::string(kCanary))));
  ASSERT_OK_AND_ASSIGN(std::string value, ring.Open("DEPLOY_KEY", record));
  EXPECT_EQ(value, kCanary);
}

TEST(SecretKeyringTest, EveryWriteHasAFreshNonce) {
  SecretKeyring ring = Ring({NewKeyText()});
  farm::internal::SecretRecord a, b;
  ASSERT_OK(ring.Seal("A_KEY", kCanary, &a));
  ASSERT_OK(ring.Seal("A_KEY", kCanary, &b));
  EXPECT_NE(a.nonce(), b.nonce());
  EXPECT_NE(a.ciphertext(), b.ciphertext());
}

TEST(SecretKeyringTest, AnAlteredRecordOrAnotherNameDoesNotOpen) {
  SecretKeyring ring = Ring({NewKeyText()});
  farm::internal::SecretRecord record;
  ASSERT_OK(ring.Seal("DEPLOY_KEY", kCanary, &record));
  EXPECT_THAT(ring.Open("OTHER_KEY", record), StatusIs(absl::StatusCode::kDataLoss));
  for (size_t i = 0; i < record.ciphertext().size(); i += 7) {
    farm::internal::SecretRecord tampered = record;
    (*tampered.mutable_ciphertext())[i] ^= 0x01;
    EXPECT_THAT(ring.Open("DEPLOY_KEY", tampered), StatusIs(absl::StatusCode::kDataLoss)) << i;
  }
  farm::internal::SecretRecord nonce = record;
  (*nonce.mutable_nonce())[0] ^= 0x80;
  EXPECT_THAT(ring.Open("DEPLOY_KEY", nonce), StatusIs(absl::StatusCode::kDataLoss));
  farm::internal::SecretRecord cut = record;
  cut.mutable_ciphertext()->resize(5);
  EXPECT_THAT(ring.Open("DEPLOY_KEY", cut), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(SecretKeyringTest, AnotherKeyDoesNotOpenARecord) {
  SecretKeyring ring = Ring({NewKeyText()});
  farm::internal::SecretRecord record;
  ASSERT_OK(ring.Seal("DEPLOY_KEY", kCanary, &record));
  SecretKeyring other = Ring({NewKeyText()});
  EXPECT_THAT(other.Open("DEPLOY_KEY", record), StatusIs(absl::StatusCode::kFailedPrecondition));
  // A forged id that names the other key: the tag check refuses it.
  record.set_key_id(other.current_id());
  EXPECT_THAT(other.Open("DEPLOY_KEY", record), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(SecretKeyringTest, AnOldKeyStillOpensWhatItSealedAndNewWritesUseTheCurrentKey) {
  const std::string old_key = NewKeyText();
  const std::string new_key = NewKeyText();
  farm::internal::SecretRecord old_record;
  ASSERT_OK(Ring({old_key}).Seal("DEPLOY_KEY", kCanary, &old_record));
  SecretKeyring rotated = Ring({new_key, old_key});
  ASSERT_OK_AND_ASSIGN(std::string value, rotated.Open("DEPLOY_KEY", old_record));
  EXPECT_EQ(value, kCanary);
  farm::internal::SecretRecord fresh;
  ASSERT_OK(rotated.Seal("DEPLOY_KEY", kCanary, &fresh));
  EXPECT_EQ(fresh.key_id(), Ring({new_key}).current_id());
  EXPECT_NE(fresh.key_id(), old_record.key_id());
  // Without the old key, the old record no longer opens, and says which key it needs.
  EXPECT_THAT(Ring({new_key}).Open("DEPLOY_KEY", old_record),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<farm::testing::TempDir> dir = farm::testing::TempDir::Create("secret-keys");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(*std::move(dir));
  }
  std::string Write(const std::string& name, const std::string& text, mode_t mode = 0600) {
    const std::string path = dir_->Join(name);
    std::ofstream(path) << text;
    chmod(path.c_str(), mode);
    return path;
  }
  std::optional<farm::testing::TempDir> dir_;
};

TEST_F(KeyFileTest, AKeyFileAsOpensslAndCertsInitWriteItLoads) {
  std::vector<std::string> warnings;
  const std::string path = Write("secrets.key", NewKeyText());
  ASSERT_OK_AND_ASSIGN(SecretKeyring ring, SecretKeyring::Load(path, {}, &warnings));
  EXPECT_TRUE(warnings.empty());
  // The same text without its newline, or with spaces around, names the same key.
  std::string text = NewKeyText();
  ASSERT_OK_AND_ASSIGN(SecretKeyring a, SecretKeyring::Load(Write("a", text), {}, &warnings));
  text.pop_back();
  ASSERT_OK_AND_ASSIGN(SecretKeyring b,
                       SecretKeyring::Load(Write("b", "  " + text + " \n"), {}, &warnings));
  EXPECT_EQ(a.current_id(), b.current_id());
}

TEST_F(KeyFileTest, ABadKeyFileIsRefusedNamingTheFileAndTheFlag) {
  std::vector<std::string> warnings;
  const std::string short_key = Write("short.key", absl::Base64Escape(std::string(16, 'k')));
  const std::string long_key = Write("long.key", absl::Base64Escape(std::string(33, 'k')));
  const std::string not_base64 = Write("text.key", "this is not base64 at all!\n");
  const std::string empty = Write("empty.key", "");
  const std::string missing = dir_->Join("missing.key");
  for (const std::string& path : {short_key, long_key, not_base64, empty, missing}) {
    absl::StatusOr<SecretKeyring> ring = SecretKeyring::Load(path, {}, &warnings);
    EXPECT_THAT(ring, StatusIs(absl::StatusCode::kInvalidArgument)) << path;
    EXPECT_THAT(ring.status().message(), HasSubstr(path));
    EXPECT_THAT(ring.status().message(), HasSubstr("--secrets_key_file"));
  }
  const std::string good = Write("good.key", NewKeyText());
  absl::StatusOr<SecretKeyring> ring = SecretKeyring::Load(good, {short_key}, &warnings);
  EXPECT_THAT(ring, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ring.status().message(), HasSubstr("--secrets_old_key_files"));
  EXPECT_THAT(SecretKeyring::Load(good, {good}, &warnings),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(KeyFileTest, AKeyFileOthersMayReadLoadsWithAWarning) {
  std::vector<std::string> warnings;
  const std::string path = Write("open.key", NewKeyText(), 0644);
  ASSERT_OK(SecretKeyring::Load(path, {}, &warnings).status());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr(path));
  EXPECT_THAT(warnings[0], HasSubstr("0644"));
}

class SecretRegistryTest : public ::testing::Test {
 protected:
  static google::protobuf::RepeatedPtrField<std::string> Names(std::vector<std::string> names) {
    google::protobuf::RepeatedPtrField<std::string> out;
    for (std::string& n : names) out.Add(std::move(n));
    return out;
  }
  const std::string key_ = NewKeyText();
  MemoryStore store_;
  common::FakeClock clock_;
  SecretRegistry secrets_{&store_, &clock_, Ring({key_})};
};

TEST_F(SecretRegistryTest, ASetSecretIsListedByNameAndStoredOnlyEncrypted) {
  ASSERT_OK_AND_ASSIGN(farm::v1::SecretInfo info, secrets_.Set("DEPLOY_KEY", kCanary, "alice"));
  EXPECT_EQ(info.name(), "DEPLOY_KEY");
  EXPECT_EQ(info.updated_by(), "alice");
  EXPECT_EQ(info.created_ms(), clock_.NowMs());
  EXPECT_THAT(info.DebugString(), Not(HasSubstr(std::string(kCanary))));
  ASSERT_OK_AND_ASSIGN(std::vector<farm::v1::SecretInfo> list, secrets_.List());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].name(), "DEPLOY_KEY");
  int records = 0;
  ASSERT_OK(store_.Scan(
      Cf::kSecrets, "", "",
      [&](absl::string_view k, absl::string_view v) {
        ++records;
        EXPECT_EQ(k, "DEPLOY_KEY");
        EXPECT_FALSE(absl::StrContains(v, kCanary));
        return true;
      },
      /*reverse=*/false));
  EXPECT_EQ(records, 1);
  std::vector<common::NamedSecret> values = secrets_.Values(Names({"DEPLOY_KEY"}));
  ASSERT_EQ(values.size(), 1u);
  EXPECT_EQ(values[0].value, kCanary);
}

TEST_F(SecretRegistryTest, ReplacingKeepsTheCreationTimeAndLoadReadsItBack) {
  ASSERT_OK(secrets_.Set("DEPLOY_KEY", "first-value", "alice").status());
  const int64_t created = clock_.NowMs();
  clock_.AdvanceMs(60'000);
  ASSERT_OK_AND_ASSIGN(farm::v1::SecretInfo info, secrets_.Set("DEPLOY_KEY", kCanary, "bob"));
  EXPECT_EQ(info.created_ms(), created);
  EXPECT_EQ(info.updated_ms(), created + 60'000);
  SecretRegistry reloaded(&store_, &clock_, Ring({key_}));
  std::vector<std::string> warnings;
  ASSERT_OK(reloaded.Load(&warnings));
  EXPECT_TRUE(warnings.empty());
  std::vector<common::NamedSecret> values = reloaded.Values(Names({"DEPLOY_KEY"}));
  ASSERT_EQ(values.size(), 1u);
  EXPECT_EQ(values[0].value, kCanary);
  // Under another key, the record loads (and is listed) with a warning, but does not open.
  SecretRegistry rekeyed(&store_, &clock_, Ring({NewKeyText()}));
  ASSERT_OK(rekeyed.Load(&warnings));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("DEPLOY_KEY"));
  EXPECT_TRUE(rekeyed.Values(Names({"DEPLOY_KEY"})).empty());
}

TEST_F(SecretRegistryTest, NamesAndValuesFollowTheRules) {
  for (const char* bad : {"", "lower", "1START", "HAS-DASH", "HAS SPACE", "FARM_JOB_ID", "É"}) {
    EXPECT_THAT(secrets_.Set(bad, kCanary, ""), StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
  EXPECT_THAT(secrets_.Set(std::string(129, 'A'), kCanary, ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK(secrets_.Set(std::string(128, 'A'), kCanary, "").status());
  ASSERT_OK(secrets_.Set("_X9", kCanary, "").status());
  absl::StatusOr<farm::v1::SecretInfo> short_value = secrets_.Set("SHORT", "12345", "");
  EXPECT_THAT(short_value, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(short_value.status().message(), Not(HasSubstr("12345")));
  ASSERT_OK(secrets_.Set("SIX", "123456", "").status());
  ASSERT_OK(secrets_.Set("BIG", std::string(64 << 10, 'v'), "").status());
  EXPECT_THAT(secrets_.Set("BIGGER", std::string((64 << 10) + 1, 'v'), ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK(secrets_.Set("BINARY", std::string("\0\xff\n\x01zz", 6), "").status());
}

TEST_F(SecretRegistryTest, DeleteAndCheckExistNameTheSecret) {
  ASSERT_OK(secrets_.Set("DEPLOY_KEY", kCanary, "").status());
  ASSERT_OK(secrets_.CheckExist(Names({"DEPLOY_KEY"})));
  absl::Status missing = secrets_.CheckExist(Names({"DEPLOY_KEY", "NOPE"}));
  EXPECT_THAT(missing, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(missing.message(), HasSubstr("NOPE"));
  ASSERT_OK(secrets_.Delete("DEPLOY_KEY").status());
  EXPECT_THAT(secrets_.Delete("DEPLOY_KEY"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(secrets_.CheckExist(Names({"DEPLOY_KEY"})), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_TRUE(secrets_.Values(Names({"DEPLOY_KEY"})).empty());
  EXPECT_EQ(secrets_.PatternsFor(Names({"DEPLOY_KEY"})), nullptr);
}

TEST_F(SecretRegistryTest, WithoutAKeyEveryOperationSaysWhichFlagIsMissing) {
  SecretRegistry keyless(&store_, &clock_, std::nullopt);
  for (const absl::Status& s :
       {keyless.Set("DEPLOY_KEY", kCanary, "").status(), keyless.List().status(),
        keyless.Delete("DEPLOY_KEY").status(), keyless.CheckExist(Names({"DEPLOY_KEY"}))}) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_THAT(s.message(), HasSubstr("--secrets_key_file"));
  }
  // A job without secrets needs no key.
  ASSERT_OK(keyless.CheckExist(Names({})));
}

TEST_F(SecretRegistryTest, ThePatternsRedactTheValues) {
  ASSERT_OK(secrets_.Set("DEPLOY_KEY", kCanary, "").status());
  std::shared_ptr<const common::RedactionPatterns> patterns =
      secrets_.PatternsFor(Names({"DEPLOY_KEY"}));
  ASSERT_NE(patterns, nullptr);
  EXPECT_EQ(common::Redactor::RedactAll(patterns, absl::StrCat("key=", kCanary, ".")),
            "key=[REDACTED].");
  EXPECT_EQ(secrets_.PatternsFor(Names({})), nullptr);
}

}  // namespace
}  // namespace farm::coordinator
