#include "coordinator/service/call_metrics.h"

#include <grpcpp/support/server_interceptor.h>

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <utility>

namespace farm::coordinator {
namespace {

namespace metrics = common::metrics;

constexpr int kCodes = 17;  // grpc::StatusCode OK .. UNAUTHENTICATED

const char* CodeName(int code) {
  static constexpr const char* kNames[kCodes] = {"OK",
                                                 "CANCELLED",
                                                 "UNKNOWN",
                                                 "INVALID_ARGUMENT",
                                                 "DEADLINE_EXCEEDED",
                                                 "NOT_FOUND",
                                                 "ALREADY_EXISTS",
                                                 "PERMISSION_DENIED",
                                                 "RESOURCE_EXHAUSTED",
                                                 "FAILED_PRECONDITION",
                                                 "ABORTED",
                                                 "OUT_OF_RANGE",
                                                 "UNIMPLEMENTED",
                                                 "INTERNAL",
                                                 "UNAVAILABLE",
                                                 "DATA_LOSS",
                                                 "UNAUTHENTICATED"};
  return code >= 0 && code < kCodes ? kNames[code] : "UNKNOWN";
}

// One served method's series: its latency histogram, and a counter per status code made on the
// code's first use (the family's lock once; afterwards an atomic load).
struct MethodSeries {
  std::string service;
  std::string method;
  metrics::Histogram* seconds = nullptr;
  std::array<std::atomic<metrics::Counter*>, kCodes> handled{};
};

class CallMetrics {
 public:
  CallMetrics(metrics::Registry& registry, const std::vector<std::string>& methods)
      : handled_(registry.AddCounterFamily(
            "farm_grpc_server_handled_total",
            "gRPC calls the coordinator finished, by service, method and status code.",
            {"service", "method", "code"})),
        seconds_(registry.AddHistogramFamily(
            "farm_grpc_server_handling_seconds",
            "Time from a gRPC call's start to its status, by service and method (parked Lease "
            "and Heartbeat calls wait for work by design).",
            {"service", "method"}, metrics::FastLatencyBuckets())) {
    for (const std::string& full : methods) Add(full);
    unknown_ = Add("/unknown/unknown");
  }

  MethodSeries* Find(const char* method) {
    auto it = series_.find(method == nullptr ? "" : method);
    return it == series_.end() ? unknown_ : it->second.get();
  }

  void Finished(MethodSeries* m, int code, double seconds) {
    if (code < 0 || code >= kCodes) code = 2;  // UNKNOWN
    metrics::Counter* c = m->handled[code].load(std::memory_order_acquire);
    if (c == nullptr) {
      c = &handled_.With({m->service, m->method, CodeName(code)});
      m->handled[code].store(c, std::memory_order_release);
    }
    c->Add();
    m->seconds->Observe(seconds);
  }

 private:
  MethodSeries* Add(const std::string& full) {
    auto m = std::make_unique<MethodSeries>();
    const size_t slash = full.rfind('/');
    m->service = full.substr(1, slash == std::string::npos ? 0 : slash - 1);
    m->method = slash == std::string::npos ? full : full.substr(slash + 1);
    m->seconds = &seconds_.With({m->service, m->method});
    MethodSeries* raw = m.get();
    series_[full] = std::move(m);
    return raw;
  }

  metrics::Family<metrics::Counter>& handled_;
  metrics::Family<metrics::Histogram>& seconds_;
  std::map<std::string, std::unique_ptr<MethodSeries>, std::less<>> series_;  // fixed after ctor
  MethodSeries* unknown_ = nullptr;
};

class CallInterceptor final : public grpc::experimental::Interceptor {
 public:
  CallInterceptor(CallMetrics* metrics, MethodSeries* series)
      : metrics_(metrics), series_(series), start_(std::chrono::steady_clock::now()) {}
  ~CallInterceptor() override {
    // A call that ends without a status sent (the client went away) counts as CANCELLED.
    if (!counted_) metrics_->Finished(series_, grpc::StatusCode::CANCELLED, Elapsed());
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      counted_ = true;
      metrics_->Finished(series_, methods->GetSendStatus().error_code(), Elapsed());
    }
    methods->Proceed();
  }

 private:
  double Elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

  CallMetrics* const metrics_;
  MethodSeries* const series_;
  const std::chrono::steady_clock::time_point start_;
  bool counted_ = false;
};

class CallInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  CallInterceptorFactory(metrics::Registry& registry, const std::vector<std::string>& methods)
      : metrics_(registry, methods) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new CallInterceptor(&metrics_, metrics_.Find(info->method()));
  }

 private:
  CallMetrics metrics_;
};

}  // namespace

std::shared_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeCallMetrics(
    metrics::Registry& registry, const std::vector<std::string>& methods) {
  return std::make_shared<CallInterceptorFactory>(registry, methods);
}

}  // namespace farm::coordinator
