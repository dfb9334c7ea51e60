// vcpumap/error.hpp — the one error family of the library.
//
//   try { auto m = vcpumap::CpuMap::parse("0-3,x"); }
//   catch (const vcpumap::ParseError& e) { std::puts(e.what()); }  // cpulist "0-3,x": column 5: ...
//
// Every error thrown by vcpumap derives from vcpumap::Error and carries an ErrorCode, so a
// caller can branch on the kind of failure without parsing the message. Messages name the
// offending thing (the input text and column, the domain, the vcpu, the CPUs).
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "text.hpp"

namespace vcpumap {

enum class ErrorCode {
  not_found,                // no such domain (or it vanished while being read)
  invalid_argument,         // bad input: a malformed cpulist, a vcpu out of range, an empty map...
  permission_denied,        // the hypervisor refused (not privileged)
  hypervisor_unavailable,   // no hypervisor interface on this machine
  busy,                     // transient: retrying may succeed
  internal,                 // the hypervisor or the library broke a promise
  unsupported,              // this hypervisor has no such thing (a soft affinity on Linux)
};

/// A short stable name for a code ("not found", "invalid argument", ...).
constexpr std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::not_found: return "not found";
    case ErrorCode::invalid_argument: return "invalid argument";
    case ErrorCode::permission_denied: return "permission denied";
    case ErrorCode::hypervisor_unavailable: return "hypervisor unavailable";
    case ErrorCode::busy: return "busy";
    case ErrorCode::internal: return "internal error";
    case ErrorCode::unsupported: return "not supported";
  }
  return "unknown error";
}

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

/// Why a cpulist (or mask, or y- string, or byte map) was rejected: the 1-based column of the
/// offending character (input length + 1 when the input ended too early; the byte for a byte
/// map) and a fixed reason text. An aggregate: ParseFailure{column, reason} is a syntax error.
struct ParseFailure {
  std::size_t column = 0;
  std::string_view reason;  // a string literal: valid for the program's lifetime
  /// True when the text is well formed but names a CPU that cannot be: a CPU number (in a
  /// list, a mask's set bit, a y- string's 'y', a byte map's set bit) at or beyond the
  /// universe, at or beyond the parse limit (and a mask or y- string wider than the limit),
  /// or a number with more than 18 digits where a CPU number goes. False for syntax errors and
  /// for every other number (a stride's, a NUMA node's, a node holding a CPU beyond the
  /// universe: the topology's fault, not the text's).
  bool out_of_range = false;
};

/// Thrown by the parsing functions. what() reads: cpulist "0-3,x": column 5: expected a CPU number
class ParseError : public Error {
 public:
  ParseError(std::string_view input, ParseFailure failure)
      : Error(ErrorCode::invalid_argument, describe(input, failure)),
        input_(input),
        failure_(failure) {}

  /// A failure of an input that is not text (CpuMap::from_bytes' bytes): what() is `message`
  /// as given, input() is `input` as given (the caller's printable rendering of it, e.g. the
  /// bytes in hex, cut short), column() and reason() are the failure's.
  static ParseError preformatted(std::string input, ParseFailure failure, const std::string& message) {
    return ParseError(Preformatted{}, std::move(input), failure, message);
  }

  /// The text read (for a byte map, its bytes in hex: "ff 01 80", at most 80 characters).
  const std::string& input() const noexcept { return input_; }
  std::size_t column() const noexcept { return failure_.column; }
  std::string_view reason() const noexcept { return failure_.reason; }
  /// The input names a CPU that cannot be (see ParseFailure::out_of_range); false for a
  /// syntax error.
  bool out_of_range() const noexcept { return failure_.out_of_range; }

 private:
  struct Preformatted {};
  ParseError(Preformatted, std::string&& input, ParseFailure failure, const std::string& message)
      : Error(ErrorCode::invalid_argument, message), input_(std::move(input)), failure_(failure) {}

  static std::string describe(std::string_view input, ParseFailure failure) {
    // Quote at most 80 characters of the input so a hostile megabyte doesn't land in a log.
    constexpr std::size_t max_quoted = 80;
    // Bytes a terminal would act on (controls, bidi controls, invalid UTF-8) show as '?'.
    std::string text = "cpulist \"";
    const std::string_view quoted = input.substr(0, max_quoted);
    for (std::size_t i = 0; i < quoted.size();) {
      const detail::Utf8Char u = detail::decode_utf8(quoted, i);
      if (u.length == 0 || detail::is_control(u.code) || detail::is_bidi_control(u.code)) {
        text.append(u.length == 0 ? 1 : u.length, '?');
        i += u.length == 0 ? 1 : u.length;
        continue;
      }
      if (u.code == '"' || u.code == '\\') text += '\\';
      text += quoted.substr(i, u.length);
      i += u.length;
    }
    text += input.size() > max_quoted ? "\"...: column " : "\": column ";
    text += std::to_string(failure.column);
    text += ": ";
    text += failure.reason;
    return text;
  }

  std::string input_;
  ParseFailure failure_;
};

}  // namespace vcpumap
