// Errors are values: Result<T> carries a T or an Error, and TRY propagates the Error.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace doppel {

class [[nodiscard]] Error {
 public:
  explicit Error(std::string message, int errno_value = 0)
      : m_message(std::move(message)), m_errno(errno_value) {}

  // "what: strerror(errno)", e.g. "--disk /x.img: No such file or directory".
  static Error from_errno(std::string_view what, int errno_value = errno) {
    return Error(fmt::format("{}: {}", what, std::strerror(errno_value)), errno_value);
  }
  template <typename... Args>
  static Error format(fmt::format_string<Args...> f, Args&&... args) {
    return Error(fmt::format(f, std::forward<Args>(args)...));
  }

  // Prefixes context: Error("x").context("disk 'root'") -> "disk 'root': x".
  Error context(std::string_view what) const& {
    return Error(fmt::format("{}: {}", what, m_message), m_errno);
  }

  const std::string& message() const { return m_message; }
  int errno_value() const { return m_errno; }

 private:
  std::string m_message;
  int m_errno;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : m_storage(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Error error) : m_storage(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return m_storage.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(m_storage); }
  const T& value() const& { return std::get<0>(m_storage); }
  T&& value() && { return std::get<0>(std::move(m_storage)); }
  T release_value() { return std::move(std::get<0>(m_storage)); }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }

  const Error& error() const& { return std::get<1>(m_storage); }
  Error release_error() { return std::move(std::get<1>(m_storage)); }
  // The error prefixed with `what` (Error::context); a value passes through.
  Result context(std::string_view what) && {
    if (!ok()) return error().context(what);
    return std::move(*this);
  }

 private:
  std::variant<T, Error> m_storage;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : m_error(std::move(error)), m_ok(false) {}  // NOLINT

  bool ok() const { return m_ok; }
  explicit operator bool() const { return ok(); }
  void release_value() {}
  const Error& error() const& { return m_error; }
  Error release_error() { return std::move(m_error); }
  Result context(std::string_view what) && {
    if (!ok()) return m_error.context(what);
    return {};
  }

 private:
  Error m_error{""};
  bool m_ok = true;
};

inline Result<void> ok() { return {}; }

}  // namespace doppel

// TRY(expr): evaluates a Result; on error returns the Error from the enclosing function,
// otherwise yields the value (a GCC/Clang statement expression, like SerenityOS's TRY).
// Each use names its temporary uniquely, so TRY(f(TRY(g()))) nests without shadowing.
#define DOPPEL_TRY_CONCAT2(a, b) a##b
#define DOPPEL_TRY_CONCAT(a, b) DOPPEL_TRY_CONCAT2(a, b)
#define TRY(expr) DOPPEL_TRY_IMPL(expr, DOPPEL_TRY_CONCAT(_doppel_try_result_, __COUNTER__))
#define DOPPEL_TRY_IMPL(expr, var)                         \
  ({                                                       \
    auto var = (expr);                                     \
    if (!var.ok()) [[unlikely]]                            \
      return var.release_error();                          \
    var.release_value();                                   \
  })
