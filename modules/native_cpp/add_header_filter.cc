// add_header_filter.cc -- a native Envoy HTTP filter that adds one request header and one
// response header: the same job as lesson 11's Python, Lua and Wasm filters, in C++ compiled into
// the Envoy binary. Written for this course against Envoy's extension API (1.3x-1.40 shape); not
// compiled here -- building it means building Envoy (see BUILD next to this file).
#include <memory>
#include <string>

#include "envoy/registry/registry.h"
#include "envoy/server/filter_config.h"

#include "source/extensions/filters/http/common/factory_base.h"
#include "source/extensions/filters/http/common/pass_through_filter.h"

#include "modules/native_cpp/add_header.pb.h"
#include "modules/native_cpp/add_header.pb.validate.h"

namespace Wasmlab {
namespace AddHeader {

using ProtoConfig = wasmlab::filters::http::add_header::v1::AddHeader;

// Shared by every stream: built once, when Envoy loads the configuration (on the main thread).
struct Config {
  explicit Config(const ProtoConfig& proto)
      : request_header(proto.request_header()), request_value(proto.request_value()),
        response_header(proto.response_header()), response_value(proto.response_value()) {}
  const Envoy::Http::LowerCaseString request_header;
  const std::string request_value;
  const Envoy::Http::LowerCaseString response_header;
  const std::string response_value;
};
using ConfigSharedPtr = std::shared_ptr<const Config>;

// One object per stream, created on the worker that owns the connection. PassThroughFilter
// answers Continue to every callback; we override the two we need. No VM, no copy, no
// boundary: the filter gets Envoy's own header maps by reference.
class Filter : public Envoy::Http::PassThroughFilter {
public:
  explicit Filter(ConfigSharedPtr config) : config_(std::move(config)) {}

  // the request path (decoder): called with the request headers, in chain order
  Envoy::Http::FilterHeadersStatus decodeHeaders(Envoy::Http::RequestHeaderMap& headers,
                                                 bool /*end_stream*/) override {
    headers.addCopy(config_->request_header, config_->request_value);
    return Envoy::Http::FilterHeadersStatus::Continue;
  }

  // the response path (encoder): called with the response headers, in reverse chain order
  Envoy::Http::FilterHeadersStatus encodeHeaders(Envoy::Http::ResponseHeaderMap& headers,
                                                 bool /*end_stream*/) override {
    headers.addCopy(config_->response_header, config_->response_value);
    return Envoy::Http::FilterHeadersStatus::Continue;
  }

private:
  const ConfigSharedPtr config_;
};

// The factory: turns the typed_config (ProtoConfig) into a callback that installs one Filter per
// stream. FactoryBase unpacks and validates the proto and gives the filter its name.
class AddHeaderFactory : public Envoy::Extensions::HttpFilters::Common::FactoryBase<ProtoConfig> {
public:
  AddHeaderFactory() : FactoryBase("wasmlab.filters.http.add_header") {}

private:
  absl::StatusOr<Envoy::Http::FilterFactoryCb>
  createFilterFactoryFromProtoTyped(const ProtoConfig& proto, const std::string& /*stats_prefix*/,
                                    Envoy::Server::Configuration::FactoryContext&) override {
    auto config = std::make_shared<const Config>(proto);
    return [config](Envoy::Http::FilterChainFactoryCallbacks& callbacks) -> void {
      callbacks.addStreamFilter(std::make_shared<Filter>(config));
    };
  }
};

// Registration: a static object whose constructor adds the factory to Envoy's registry of HTTP
// filters, under its name and its config's type URL. Nothing else refers to this file: linking it
// into the binary is what makes "wasmlab.filters.http.add_header" a filter Envoy knows.
REGISTER_FACTORY(AddHeaderFactory, Envoy::Server::Configuration::NamedHttpFilterConfigFactory);

} // namespace AddHeader
} // namespace Wasmlab
