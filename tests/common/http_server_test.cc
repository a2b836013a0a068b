#include "common/http_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <string>

#include "common/certs.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/tls_probe.h"

namespace farm::common {
namespace {

using ::farm::testing::CertificateSerial;
using ::farm::testing::ServedCertificateSerial;
using ::farm::testing::StatusIsWithMessage;
using ::testing::HasSubstr;

HttpServer::Options Echo() {
  HttpServer::Options options;
  options.listen = "127.0.0.1:0";
  options.get["/echo"] = [](const HttpServer::Request& req) {
    HttpServer::Response r;
    r.body = req.method + " " + req.path + " q=" + (req.query.count("q") ? req.query.at("q") : "") +
             " auth=" + (req.headers.count("authorization") ? req.headers.at("authorization") : "");
    r.headers["X-Seen"] = "yes";
    return r;
  };
  options.post["/echo"] = [](const HttpServer::Request& req) {
    return HttpServer::Response{201, "text/plain", std::to_string(req.body.size()), {}};
  };
  return options;
}

TEST(HttpServerTest, RoutesByMethodAndExactPath) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<HttpServer> server, HttpServer::Start(Echo()));
  httplib::Client client("127.0.0.1", server->port());
  httplib::Result got = client.Get("/echo?q=1", {{"Authorization", "Bearer abc"}});
  ASSERT_TRUE(got) << httplib::to_string(got.error());
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "GET /echo q=1 auth=Bearer abc");
  EXPECT_EQ(got->get_header_value("X-Seen"), "yes");

  httplib::Result posted = client.Post("/echo", std::string(1000, 'x'), "text/plain");
  ASSERT_TRUE(posted);
  EXPECT_EQ(posted->status, 201);
  EXPECT_EQ(posted->body, "1000");

  httplib::Result other = client.Get("/echo/more");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  EXPECT_THAT(other->body, HasSubstr("no such page: /echo/more"));
}

TEST(HttpServerTest, ABodyOverTheLimitIsRefused) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<HttpServer> server, HttpServer::Start(Echo()));
  httplib::Client client("127.0.0.1", server->port());
  httplib::Result r =
      client.Post("/echo", std::string(HttpServer::kMaxBodyBytes + 1, 'x'), "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
}

TEST(HttpServerTest, BadAddressesAreNamed) {
  HttpServer::Options options = Echo();
  options.listen = "localhost";
  EXPECT_THAT(HttpServer::Start(options),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("--http_listen takes HOST:PORT")));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<HttpServer> first, HttpServer::Start(Echo()));
  options.listen = first->address();
  EXPECT_THAT(HttpServer::Start(options),
              StatusIsWithMessage(absl::StatusCode::kUnavailable, HasSubstr(first->address())));
}

TEST(HttpServerTest, StopsRightAfterStarting) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<HttpServer> server, HttpServer::Start(Echo()));
    server->Stop();
  }
}

TEST(HttpServerTest, HttpsServesWhatTheMaterialHoldsFromTheNextHandshakeOn) {
  ASSERT_OK_AND_ASSIGN(CertAndKey ca, CreateCa("test CA"));
  ASSERT_OK_AND_ASSIGN(CertAndKey first, IssueServerCert(ca.cert_pem, ca.key_pem, {"127.0.0.1"}));
  ASSERT_OK_AND_ASSIGN(CertAndKey second, IssueServerCert(ca.cert_pem, ca.key_pem, {"127.0.0.1"}));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<TlsMaterial> material,
                       TlsMaterial::Create(IdentityPem(first.key_pem, first.cert_pem), ""));
  HttpServer::Options options = Echo();
  options.tls = std::move(material);
  TlsMaterial* tls = options.tls.get();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<HttpServer> server, HttpServer::Start(options));
  ASSERT_OK_AND_ASSIGN(std::string first_serial, CertificateSerial(first.cert_pem));
  ASSERT_OK_AND_ASSIGN(std::string second_serial, CertificateSerial(second.cert_pem));
  EXPECT_EQ(ServedCertificateSerial(server->address()).value_or(""), first_serial);
  ASSERT_OK(tls->Update(IdentityPem(second.key_pem, second.cert_pem), ""));
  EXPECT_EQ(ServedCertificateSerial(server->address()).value_or(""), second_serial);
  ASSERT_OK(tls->Update(IdentityPem(first.key_pem, first.cert_pem), ""));
  EXPECT_EQ(ServedCertificateSerial(server->address()).value_or(""), first_serial);
}

}  // namespace
}  // namespace farm::common
