// errors.cpp — vcpumap::Error and its kinds as the Python exceptions of vcpumap/_types.py:
// the subclass of the code (NotFoundError, InvalidArgumentError, ...), ParseError with its
// column, PinError with failed_vcpu and rolled_back, TransactionError. Messages are the
// library's, decoded as text() does (never a UnicodeDecodeError).
#include "bindings.hpp"

namespace vcpumap::python {

py::object exception_for(const Error& error) {
  const Types& t = types();
  const py::str message = text(error.what());
  const py::object code = enum_to_py(error.code());
  if (const auto* e = dynamic_cast<const ParseError*>(&error))
    return t.parse_error(message, e->column(), text(e->reason()), text(e->input()), e->out_of_range());
  if (const auto* e = dynamic_cast<const PinError*>(&error))
    return t.pin_error(message, code, e->failed_vcpu(), e->rolled_back());
  if (const auto* e = dynamic_cast<const TransactionError*>(&error))
    return t.transaction_error(message, code, to_integer(e->failed_domain()), e->rolled_back());
  return t.error_classes[code](message, code);
}

void register_errors(py::module_&) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      const py::object exception = exception_for(e);
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exception.ptr())), exception.ptr());
    } catch (const fmt::format_error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
}

}  // namespace vcpumap::python
