// Native venue decoders (core/ingest): bot4.data.binance_native drives them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "ingest/binance_decoder.hpp"
#include "ingest/decimal_units.hpp"

namespace py = pybind11;
using namespace pybind11::literals;

namespace bot4::ext {

namespace {

template <typename Record>
py::array_t<Record> take_vector(std::vector<Record>& v) {
  auto* owned = new std::vector<Record>(std::move(v));
  v = std::vector<Record>();
  py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<Record>*>(p); });
  return py::array_t<Record>(static_cast<py::ssize_t>(owned->size()), owned->data(), free_when_done);
}

const uint8_t* bytes_of(const py::buffer& b, size_t& n) {
  py::buffer_info info = b.request();
  if (info.ndim != 1 || info.itemsize != 1) throw py::type_error("expected a 1-D bytes-like object");
  n = static_cast<size_t>(info.size);
  return static_cast<const uint8_t*>(info.ptr);
}

// A decoder method taking raw bytes, bound to take any 1-D bytes-like object and run without the GIL.
auto without_gil(void (ingest::BinanceDecoder::*method)(const uint8_t*, size_t)) {
  return [method](ingest::BinanceDecoder& d, const py::buffer& b) {
    size_t n;
    const uint8_t* p = bytes_of(b, n);
    py::gil_scoped_release release;
    (d.*method)(p, n);
  };
}

}  // namespace

void bind_ingest(py::module_& m) {
  using ingest::BinanceDecoder;
  m.attr("has_zlib") = ingest::zlib_available();

  static py::exception<ingest::UnknownSymbol> unknown_symbol(m, "UnknownSymbol", PyExc_KeyError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ingest::UnknownSymbol& e) {
      PyErr_SetObject(unknown_symbol.ptr(), py::str(e.symbol()).ptr());
    }
  });

  m.def(
      "to_units",
      [](const std::string& text, int digits, int64_t unit) -> py::object {
        int64_t out = 0;
        const ingest::NumStatus s = ingest::to_units(text.data(), text.size(), ingest::Grid{digits, unit}, out);
        if (s == ingest::NumStatus::kOk) return py::int_(out);
        return py::str(s == ingest::NumStatus::kOffGrid ? "off_grid" : "bad_number");
      },
      "text"_a, "digits"_a, "unit"_a,
      "Exact units of a decimal string on a grid (digits, unit) or the rejection reason "
      "('bad_number' | 'off_grid'); the native twin of DecimalGrid.to_units, exposed for tests.");

  py::class_<BinanceDecoder>(m, "BinanceDecoder",
                             "Streaming decoder of Binance raw recordings into event records with "
                             "Binance's book sync rules (see bot4.data.binance for the contract).")
      .def(py::init<bool, bool>(), "futures"_a, "gap_continue"_a)
      .def(
          "add_spec",
          [](BinanceDecoder& d, const std::string& upper_symbol, uint32_t instrument, int price_digits,
             int64_t price_unit, int qty_digits, int64_t qty_unit) {
            d.add_spec(upper_symbol, instrument, ingest::Grid{price_digits, price_unit},
                       ingest::Grid{qty_digits, qty_unit});
          },
          "upper_symbol"_a, "instrument"_a, "price_digits"_a, "price_unit"_a, "qty_digits"_a, "qty_unit"_a)
      .def("begin_file", &BinanceDecoder::begin_file, "file_index"_a, "gzip"_a)
      .def("set_threads", &BinanceDecoder::set_threads, "on"_a,
           "Inflate on a second thread while parsing (default on).")
      .def("feed", without_gil(&BinanceDecoder::feed), "data"_a,
           "Bytes of the file as stored (gzip-compressed when the file is).")
      .def("feed_plain", without_gil(&BinanceDecoder::feed_plain), "data"_a, "Decompressed bytes (when Python inflates).")
      .def(
          "damage",
          [](BinanceDecoder& d, const std::string& kind) {
            if (kind != "truncated_file" && kind != "corrupt_file") throw py::value_error("unknown damage kind");
            d.damage(kind == "truncated_file" ? "truncated_file" : "corrupt_file");
          },
          "kind"_a, "Damage found by a Python-side inflater: 'truncated_file' | 'corrupt_file'.")
      .def(
          "reserve",
          [](BinanceDecoder& d, size_t book, size_t trades, size_t bbo) {
            // Capacity only: pages never written cost address space, not memory. Saves the
            // reallocation copies and page faults of growing the record vectors.
            d.book.reserve(book);
            d.trades.reserve(trades);
            d.bbo.reserve(bbo);
          },
          "book"_a, "trades"_a, "bbo"_a)
      .def("end_file", &BinanceDecoder::end_file)
      .def("finish", &BinanceDecoder::finish)
      .def("take_book", [](BinanceDecoder& d) { return take_vector(d.book); })
      .def("take_trades", [](BinanceDecoder& d) { return take_vector(d.trades); })
      .def("take_bbo", [](BinanceDecoder& d) { return take_vector(d.bbo); })
      .def_property_readonly("sequence_gaps", [](const BinanceDecoder& d) { return d.sequence_gaps; })
      .def_property_readonly("symbols", [](const BinanceDecoder& d) { return d.symbol_order; })
      .def_property_readonly("stats", [](const BinanceDecoder& d) {
        const auto& s = d.stats;
        py::dict out;
        out["lines"] = s.lines;
        out["empty_lines"] = s.empty_lines;
        out["depth_messages"] = s.depth_messages;
        out["depth_levels"] = s.depth_levels;
        out["snapshots"] = s.snapshots;
        out["snapshot_levels"] = s.snapshot_levels;
        out["trades"] = s.trades;
        out["book_tickers"] = s.book_tickers;
        return out;
      })
      .def(
          "rejections",
          [](const BinanceDecoder& d) {
            // [(reason, count, file, line, kind, raw bytes, prefix, side, p, q)] in first-seen order
            py::list out;
            for (ingest::Reason r : d.rejections.order) {
              const size_t i = static_cast<size_t>(r);
              const ingest::Sample& s = d.rejections.samples[i];
              out.append(py::make_tuple(ingest::reason_name(r), d.rejections.counts[i], s.file, s.line,
                                        static_cast<int>(s.kind), py::bytes(s.raw), py::bytes(s.prefix),
                                        py::bytes(s.side), py::bytes(s.p), py::bytes(s.q)));
            }
            return out;
          },
          "Counts and first samples of every rejection reason, in order of first occurrence.");
}

}  // namespace bot4::ext
