// vcpumap/format.hpp — {fmt} support for CpuMap and VcpuSet.
//
//   fmt::format("{}", map)     -> "0-3,8-11"        canonical list
//   fmt::format("{:a}", map)   -> "all" / "none"    xl style (a list otherwise)
//   fmt::format("{:m}", map)   -> "00000f0f"         sysfs mask
//   fmt::format("{:x}", map)   -> "0xf0f"           taskset hex
//   fmt::format("{:y}", map)   -> "yyyy----yyyy"    virsh y- string
//
// Width, fill and alignment are not supported on sets: a malformed spec is a format_error.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cpu_map.hpp"

// A set is a range of CPU numbers, but it prints as a cpulist, not as "[0, 1, 2]": keep
// fmt/ranges.h's range formatter away from it.
template <class Tag, class Char>
struct fmt::is_range<vcpumap::BasicCpuSet<Tag>, Char> : std::false_type {};

template <class Tag>
struct fmt::formatter<vcpumap::BasicCpuSet<Tag>> {
  vcpumap::TextForm form = vcpumap::TextForm::list;

  constexpr auto parse(fmt::format_parse_context& ctx) -> decltype(ctx.begin()) {
    auto it = ctx.begin();
    if (it == ctx.end() || *it == '}') return it;
    switch (*it) {
      case 'l': form = vcpumap::TextForm::list; break;
      case 'a': form = vcpumap::TextForm::xl_list; break;
      case 'm': form = vcpumap::TextForm::sysfs_mask; break;
      case 'x': form = vcpumap::TextForm::hex; break;
      case 'y': form = vcpumap::TextForm::yn; break;
      default: throw fmt::format_error("vcpumap: set format spec must be one of l, a, m, x, y");
    }
    ++it;
    if (it != ctx.end() && *it != '}') throw fmt::format_error("vcpumap: set format spec is one letter");
    return it;
  }

  template <class FormatContext>
  auto format(const vcpumap::BasicCpuSet<Tag>& set, FormatContext& ctx) const -> decltype(ctx.out()) {
    const std::string text = set.to_string(form);
    return std::copy(text.begin(), text.end(), ctx.out());
  }
};
