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

namespace vcpumap {

enum class ErrorCode {
  not_found,                // no such domain (or it vanished while being read)
  invalid_argument,         // bad input: a malformed cpulist, a vcpu out of range, an empty map...
  permission_denied,        // the hypervisor refused (not privileged)
  hypervisor_unavailable,   // no hypervisor interface on this machine
  busy,                     // transient: retrying may succeed
  internal,                 // the hypervisor or the library broke a promise
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

/// Why a cpulist (or mask, or y- string) was rejected: the 1-based column of the offending
/// character (input length + 1 when the input ended too early) and a fixed reason text.
struct ParseFailure {
  std::size_t column = 0;
  std::string_view reason;  // a string literal: valid for the program's lifetime
};

/// Thrown by the parsing functions. what() reads: cpulist "0-3,x": column 5: expected a CPU number
class ParseError : public Error {
 public:
  ParseError(std::string_view input, ParseFailure failure)
      : Error(ErrorCode::invalid_argument, describe(input, failure)),
        input_(input),
        failure_(failure) {}

  const std::string& input() const noexcept { return input_; }
  std::size_t column() const noexcept { return failure_.column; }
  std::string_view reason() const noexcept { return failure_.reason; }

 private:
  static std::string describe(std::string_view input, ParseFailure failure) {
    // Quote at most 80 characters of the input so a hostile megabyte doesn't land in a log.
    constexpr std::size_t max_quoted = 80;
    std::string text = "cpulist \"";
    for (char c : input.substr(0, max_quoted)) {
      if (c == '"' || c == '\\') text += '\\';
      text += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
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
