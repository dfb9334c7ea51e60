// vcpumap/any_hypervisor.hpp — AnyHypervisor: one type for whichever backend runs.
//
//   vcpumap::AnyHypervisor hv(vcpumap::MockHypervisor::demo());   // or XenHypervisor
//   for (const auto& d : hv.snapshot_all().domains) fmt::print("{}\n", d.domain.name);
//
// A value type holding any backend (a type with the primitives of vcpumap::Backend:
// MockHypervisor, XenHypervisor, LinuxHypervisor, or your own), chosen at run time (a tool's --backend
// option), itself satisfying the Hypervisor concept: code written against the concept takes
// it unchanged. It forwards the backend's primitives (9), one virtual call each, and gets every
// operation from the same front layer (backend.hpp) as the backend itself: results, errors
// (vcpumap::Error, PinError) and call counts are those of the backend used directly.
//
// - Move-only: a backend is a connection to a hypervisor (Xen's privcmd handle), not a
//   value to duplicate. A moved-from AnyHypervisor is empty: operator bool is false and
//   every operation throws Error(internal) saying so.
// - Backends that cannot move (or should not be moved) are built in place:
//   AnyHypervisor(std::in_place_type<XenHypervisor>, args...) (or LinuxHypervisor).
// - target<H>() returns the held backend when it is an H (else nullptr), for what the
//   concept does not cover: MockHypervisor::follow_real_time, fault injection,
//   LinuxHypervisor's emulator and IOThreads, ...
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "error.hpp"
#include "hypervisor.hpp"
#include "model.hpp"

namespace vcpumap {

class AnyHypervisor : public HypervisorFront<AnyHypervisor> {
 public:
  /// Takes ownership of `backend` (moved in).
  template <class B>
  requires(!std::is_same_v<std::remove_cvref_t<B>, AnyHypervisor> &&
           Backend<std::remove_cvref_t<B>>) explicit AnyHypervisor(B&& backend)
      : backend_(std::make_unique<Holder<std::remove_cvref_t<B>>>(std::forward<B>(backend))) {}

  /// Builds a B in place from args.
  template <Backend B, class... Args>
  explicit AnyHypervisor(std::in_place_type_t<B>, Args&&... args)
      : backend_(std::make_unique<Holder<B>>(std::forward<Args>(args)...)) {}

  AnyHypervisor(AnyHypervisor&&) noexcept = default;
  AnyHypervisor& operator=(AnyHypervisor&&) noexcept = default;
  AnyHypervisor(const AnyHypervisor&) = delete;
  AnyHypervisor& operator=(const AnyHypervisor&) = delete;
  ~AnyHypervisor() = default;

  /// False only for a moved-from AnyHypervisor.
  explicit operator bool() const noexcept { return backend_ != nullptr; }

  /// The held backend if it is a B, else nullptr.
  template <class B>
  B* target() noexcept {
    return backend_ ? static_cast<B*>(backend_->target(typeid(B))) : nullptr;
  }
  template <class B>
  const B* target() const noexcept {
    return backend_ ? static_cast<const B*>(backend_->target(typeid(B))) : nullptr;
  }

  // ---- the primitives, forwarded (backend.hpp) ----

  std::shared_ptr<const HostInfo> known_host() { return get().known_host(); }
  std::shared_ptr<const HostInfo> read_host() { return get().read_host(); }
  void read_domain_list(std::vector<DomainInfo>& out) { get().read_domain_list(out); }
  std::optional<DomainInfo> read_domain(DomainId id) { return get().read_domain(id); }
  void read_vcpus(const HostInfo& host, std::span<VcpuRead> reads, SnapshotScope scope) {
    get().read_vcpus(host, reads, scope);
  }
  std::vector<PinOutcome> set_affinity(const HostInfo& host, const DomainInfo& domain, const DomainSnapshot* current,
                                       std::span<const VcpuPinRequest> pins, AfterFailure after) {
    return get().set_affinity(host, domain, current, pins, after);
  }
  void set_online(const HostInfo& host, const DomainInfo& domain, const VcpuSet& online) {
    get().set_online(host, domain, online);
  }
  /// 0 for an empty AnyHypervisor.
  std::size_t call_count() const noexcept { return backend_ ? backend_->call_count() : 0; }
  std::chrono::system_clock::time_point now() { return get().now(); }

 private:
  struct Primitives {
    virtual ~Primitives() = default;
    virtual std::shared_ptr<const HostInfo> known_host() = 0;
    virtual std::shared_ptr<const HostInfo> read_host() = 0;
    virtual void read_domain_list(std::vector<DomainInfo>&) = 0;
    virtual std::optional<DomainInfo> read_domain(DomainId) = 0;
    virtual void read_vcpus(const HostInfo&, std::span<VcpuRead>, SnapshotScope) = 0;
    virtual std::vector<PinOutcome> set_affinity(const HostInfo&, const DomainInfo&, const DomainSnapshot*,
                                                 std::span<const VcpuPinRequest>, AfterFailure) = 0;
    virtual void set_online(const HostInfo&, const DomainInfo&, const VcpuSet&) = 0;
    virtual std::size_t call_count() const noexcept = 0;
    virtual std::chrono::system_clock::time_point now() = 0;
    virtual void* target(const std::type_info&) noexcept = 0;
  };
  template <class B>
  struct Holder final : Primitives {
    template <class... Args>
    explicit Holder(Args&&... args) : b(std::forward<Args>(args)...) {}
    std::shared_ptr<const HostInfo> known_host() override { return b.known_host(); }
    std::shared_ptr<const HostInfo> read_host() override { return b.read_host(); }
    void read_domain_list(std::vector<DomainInfo>& out) override { b.read_domain_list(out); }
    std::optional<DomainInfo> read_domain(DomainId id) override { return b.read_domain(id); }
    void read_vcpus(const HostInfo& host, std::span<VcpuRead> reads, SnapshotScope scope) override {
      b.read_vcpus(host, reads, scope);
    }
    std::vector<PinOutcome> set_affinity(const HostInfo& host, const DomainInfo& domain, const DomainSnapshot* current,
                                         std::span<const VcpuPinRequest> pins, AfterFailure after) override {
      return b.set_affinity(host, domain, current, pins, after);
    }
    void set_online(const HostInfo& host, const DomainInfo& domain, const VcpuSet& online) override {
      b.set_online(host, domain, online);
    }
    std::size_t call_count() const noexcept override { return static_cast<std::size_t>(b.call_count()); }
    std::chrono::system_clock::time_point now() override { return b.now(); }
    void* target(const std::type_info& type) noexcept override { return type == typeid(B) ? &b : nullptr; }
    B b;
  };

  Primitives& get() const {
    if (!backend_) throw Error(ErrorCode::internal, "AnyHypervisor: no backend (used after being moved from)");
    return *backend_;
  }

  std::unique_ptr<Primitives> backend_;
};

static_assert(Backend<AnyHypervisor> && Hypervisor<AnyHypervisor>);

}  // namespace vcpumap
