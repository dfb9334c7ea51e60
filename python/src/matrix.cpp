// matrix.cpp — AffinityMatrix: immutable from Python, its storage given to numpy through the
// buffer protocol without a copy.
//
// The buffer is the C++ storage itself: a read-only C-contiguous (rows, row_words) array of
// uint64 ('Q'), bit c % 64 of word c // 64 of row v is CPU c of vcpu v (numpy.asarray(m) on
// this little-endian storage). The buffer's owner (view->obj) is the matrix object, which for a
// matrix of a snapshot keeps the snapshot alive (reference_internal), so an array outlives
// every Python name of the snapshot safely. Nothing in Python can change a matrix, so no
// array ever sees its storage move. unpacked() gives a (rows, cols) bool copy.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings.hpp"

namespace vcpumap::python {

namespace {

// A valid address for a buffer of no words (numpy refuses a null pointer).
const Word no_words[1] = {0};

py::buffer_info buffer_of(const AffinityMatrix& m) {
  const auto w = m.words();
  const auto rows = static_cast<py::ssize_t>(m.rows()), n = static_cast<py::ssize_t>(m.row_words());
  const Word* data = w.empty() ? no_words : w.data();
  return py::buffer_info(const_cast<Word*>(data), static_cast<py::ssize_t>(sizeof(Word)),
                         py::format_descriptor<std::uint64_t>::format(), 2, {rows, n},
                         {n * static_cast<py::ssize_t>(sizeof(Word)), static_cast<py::ssize_t>(sizeof(Word))},
                         /*readonly=*/true);
}

AffinityMatrix from_bools(py::handle array) {
  auto a = py::array_t<bool, py::array::c_style | py::array::forcecast>::ensure(array);
  if (!a) throw py::error_already_set();
  if (a.ndim() != 2) throw Error(ErrorCode::invalid_argument, fmt::format("a matrix of bools has 2 dimensions, not {}", a.ndim()));
  AffinityMatrix m(static_cast<std::size_t>(a.shape(0)), static_cast<std::size_t>(a.shape(1)));
  auto r = a.unchecked<2>();
  auto words = m.mutable_words();
  const std::size_t n = m.row_words();
  for (py::ssize_t v = 0; v < r.shape(0); ++v)
    for (py::ssize_t c = 0; c < r.shape(1); ++c)
      if (r(v, c)) words[static_cast<std::size_t>(v) * n + static_cast<std::size_t>(c) / 64] |= Word{1} << (c % 64);
  return m;
}

py::array_t<bool> unpacked(const AffinityMatrix& m) {
  py::array_t<bool> out({static_cast<py::ssize_t>(m.rows()), static_cast<py::ssize_t>(m.cols())});
  auto o = out.mutable_unchecked<2>();
  const auto words = m.words();
  const std::size_t n = m.row_words();
  for (std::size_t v = 0; v < m.rows(); ++v)
    for (std::size_t c = 0; c < m.cols(); ++c)
      o(static_cast<py::ssize_t>(v), static_cast<py::ssize_t>(c)) = (words[v * n + c / 64] >> (c % 64)) & 1;
  return out;
}

}  // namespace

AffinityMatrix matrix_from(py::handle value, const ParseOptions& row_options) {
  if (py::isinstance<AffinityMatrix>(value)) return value.cast<const AffinityMatrix&>();
  if (py::isinstance<py::str>(value) || py::isinstance<py::bytes>(value))
    throw py::type_error("a matrix is an AffinityMatrix, a 2-D array of bools or a sequence of rows, not text");
  if (py::isinstance<py::buffer>(value)) return from_bools(value);
  if (!PySequence_Check(value.ptr()))
    throw py::type_error("a matrix is an AffinityMatrix, a 2-D array of bools or a sequence of rows");
  const auto rows = py::reinterpret_borrow<py::sequence>(value);
  AffinityMatrix m(rows.size(), row_options.universe.value_or(0));
  for (std::size_t v = 0; v < m.rows(); ++v) m.set_row(v, cpu_map_from(rows[v], row_options));
  return m;
}

void bind_matrix(py::module_& m) {
  py::class_<AffinityMatrix> cls(m, "AffinityMatrix", py::buffer_protocol(),
                                 "One domain's vcpu x CPU affinity bits (vcpumap::AffinityMatrix), immutable.\n\n"
                                 "    >>> a = numpy.asarray(snapshot.hard)     # (vcpus, words) uint64, no copy\n"
                                 "    >>> b = snapshot.hard.unpacked()         # (vcpus, cpus) bool, a copy\n"
                                 "    >>> snapshot.hard.row(0), snapshot.hard.column(2)   # CpuMap, VcpuSet\n\n"
                                 "The buffer protocol gives the C++ storage itself, read-only: a C-contiguous "
                                 "(rows, row_words) array of uint64 where bit c % 64 of word c // 64 of row v is "
                                 "CPU c of vcpu v; bits at or beyond cols are 0. The array keeps the matrix (and "
                                 "the snapshot that holds it) alive. m[v] is row v, m[v, c] one bit.");
  cls.def_buffer(&buffer_of);
  cls.def(py::init([](py::handle rows, py::handle cols) {
            return AffinityMatrix(to_index(rows, "rows", limits::max_vcpus), to_index(cols, "cols", limits::max_cpus));
          }),
          py::arg("rows"), py::arg("cols"), "rows vcpus x cols CPUs, every bit clear.");
  cls.def_static(
      "full",
      [](py::handle rows, py::handle cols) {
        return AffinityMatrix::full(to_index(rows, "rows", limits::max_vcpus), to_index(cols, "cols", limits::max_cpus));
      },
      py::arg("rows"), py::arg("cols"), "Every vcpu on every CPU.");
  cls.def_static(
      "from_rows",
      [](py::sequence rows, py::handle cols) {
        ParseOptions o;
        o.universe = to_index(cols, "cols", limits::max_cpus);
        return matrix_from(rows, o);
      },
      py::arg("rows"), py::arg("cols"),
      "A matrix from one entry per vcpu: a CpuMap, a cpulist or an iterable of CPU numbers below cols.");
  cls.def_static("from_bools", &from_bools, py::arg("array"),
                 "A matrix from a 2-D array of bools (numpy, or anything with the buffer protocol): "
                 "array[v, c] true means CPU c is in row v.");
  cls.def("unpacked", &unpacked, "A (rows, cols) numpy bool array, a copy: [v, c] is CPU c of vcpu v.");
  cls.def_property_readonly("rows", &AffinityMatrix::rows, "The vcpus (rows).");
  cls.def_property_readonly("cols", &AffinityMatrix::cols, "The CPUs (columns): the host's universe.");
  cls.def_property_readonly("row_words", &AffinityMatrix::row_words, "64-bit words per row.");
  cls.def_property_readonly(
      "shape", [](const AffinityMatrix& a) { return py::make_tuple(a.rows(), a.cols()); }, "(rows, cols).");
  cls.def("row", &AffinityMatrix::row, py::arg("vcpu"), "The CPUs of a vcpu: a CpuMap of cols CPUs (a copy).");
  cls.def("column", &AffinityMatrix::column, py::arg("cpu"), "The vcpus allowed on a CPU: a VcpuSet of rows vcpus.");
  cls.def("test", &AffinityMatrix::test, py::arg("vcpu"), py::arg("cpu"), "True when the CPU is in the vcpu's row.");
  cls.def(
      "with_row",
      [](AffinityMatrix a, std::size_t vcpu, py::handle cpus) {
        ParseOptions o;
        o.universe = a.cols();
        a.set_row(vcpu, cpu_map_from(cpus, o));
        return a;
      },
      py::arg("vcpu"), py::arg("cpus"), "A copy with one row replaced (a CpuMap, cpulist or iterable).");
  cls.def("__len__", &AffinityMatrix::rows, "The number of rows (vcpus).");
  cls.def(
      "__getitem__", [](const AffinityMatrix& a, std::size_t v) { return a.row(v); }, py::arg("vcpu"),
      "m[v]: row v, as row(v).");
  cls.def(
      "__getitem__", [](const AffinityMatrix& a, std::pair<std::size_t, std::size_t> vc) { return a.test(vc.first, vc.second); },
      py::arg("vcpu_cpu"), "m[v, c]: True when CPU c is in row v, as test(v, c).");
  cls.def(
      "__iter__",
      [](const AffinityMatrix& a) {
        py::list rows(a.rows());
        for (std::size_t v = 0; v < a.rows(); ++v) rows[v] = py::cast(a.row(v));
        return py::iter(rows);
      },
      "The rows, as CpuMaps.");
  cls.def(
      "__eq__", [](const AffinityMatrix& a, const AffinityMatrix& b) { return a == b; }, py::is_operator());
  cls.def(
      "__eq__", [](const AffinityMatrix&, py::handle) { return py::reinterpret_borrow<py::object>(Py_NotImplemented); },
      py::is_operator());
  cls.def(
      "__and__", [](const AffinityMatrix& a, const AffinityMatrix& b) { return a & b; }, py::is_operator());
  cls.def(
      "__or__", [](const AffinityMatrix& a, const AffinityMatrix& b) { return a | b; }, py::is_operator());
  cls.def("__str__", [](const AffinityMatrix& a) { return fmt::format("{}", a); }, "One line per vcpu: '0: 0-3'.");
  cls.def("__repr__", [](const AffinityMatrix& a) {
    std::string rows;
    for (std::size_t v = 0; v < a.rows() && v < 8; ++v) rows += fmt::format("{}'{}'", v ? ", " : "", a.row(v).to_string());
    if (a.rows() > 8) rows += ", ...";
    return fmt::format("vcpumap.AffinityMatrix.from_rows([{}], {})", rows, a.cols());
  });
}

}  // namespace vcpumap::python
