// Native venue decoders (core/ingest): bot4.data.binance_native drives them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "ingest/binance_decoder.hpp"
#include "ingest/decimal_units.hpp"
#include "ingest/lobster_decoder.hpp"
#include "ingest/tardis_decoder.hpp"

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
template <typename Decoder>
auto without_gil(void (Decoder::*method)(const uint8_t*, size_t)) {
  return [method](Decoder& d, const py::buffer& b) {
    size_t n;
    const uint8_t* p = bytes_of(b, n);
    py::gil_scoped_release release;
    (d.*method)(p, n);
  };
}

// [(reason, count, file, line, raw sample bytes)] of a RejectionTable, in first-seen order.
template <size_t N>
py::list table_rejections(const ingest::RejectionTable<N>& t, const char* (*name)(size_t)) {
  py::list out;
  for (uint8_t r : t.order) {
    const ingest::TextSample& s = t.samples[r];
    out.append(py::make_tuple(name(r), t.counts[r], s.file, s.line, py::bytes(s.raw)));
  }
  return out;
}

void bind_tardis(py::module_& m) {
  using ingest::TardisDecoder;
  py::class_<TardisDecoder>(m, "TardisDecoder",
                            "Streaming decoder of Tardis CSV rows into event records, or (infer=True) "
                            "the grid-inference pass (see bot4.data.tardis for the contract).")
      .def(py::init<bool>(), "infer"_a)
      .def(
          "add_spec",
          [](TardisDecoder& d, const py::bytes& symbol, uint32_t instrument, int price_digits, int64_t price_unit,
             int qty_digits, int64_t qty_unit) {
            d.add_spec(std::string(symbol), instrument, ingest::Grid{price_digits, price_unit},
                       ingest::Grid{qty_digits, qty_unit});
          },
          "symbol"_a, "instrument"_a, "price_digits"_a, "price_unit"_a, "qty_digits"_a, "qty_unit"_a)
      .def(
          "begin_file",
          [](TardisDecoder& d, uint32_t file_index, bool gzip, int kind, int ncols, const std::vector<int>& price_cols,
             const std::vector<int>& amount_cols, const std::vector<std::tuple<int, int, int>>& pairs) {
            if (kind < 0 || kind > 3) throw py::value_error("kind must be 0..3");
            ingest::TardisFile f;
            f.kind = static_cast<ingest::TardisKind>(kind);
            f.ncols = ncols;
            for (int c : price_cols) {
              if (c < 0 || c >= ncols) throw py::value_error("price column out of range");
            }
            for (int c : amount_cols) {
              if (c < 0 || c >= ncols) throw py::value_error("amount column out of range");
            }
            f.price_cols = price_cols;
            f.amount_cols = amount_cols;
            for (const auto& [side, pc, ac] : pairs) {
              if (pc < 0 || pc >= ncols || ac < 0 || ac >= ncols) throw py::value_error("snapshot column out of range");
              f.pairs.push_back({static_cast<uint8_t>(side), pc, ac});
            }
            d.begin_file(file_index, gzip, std::move(f));
          },
          "file_index"_a, "gzip"_a, "kind"_a, "ncols"_a, "price_cols"_a, "amount_cols"_a, "pairs"_a,
          "kind: 0 incremental_book_L2, 1 trades, 2 quotes, 3 book_snapshot; pairs: (side, price "
          "column, amount column) of a book_snapshot file, bids then asks.")
      .def("set_threads", &TardisDecoder::set_threads, "on"_a)
      .def("expect", &TardisDecoder::expect, "n_files"_a,
           "Files 0..n_files-1 are read together, their rows decoded in one merged order (merge()).")
      .def(
          "feed",
          [](TardisDecoder& d, const py::buffer& b, int64_t file) {
            size_t n;
            const uint8_t* p = bytes_of(b, n);
            py::gil_scoped_release release;
            d.feed(p, n, file);
          },
          "data"_a, "file"_a = -1, "Bytes of the file as stored (gzip or plain); file -1: the one begun last.")
      .def(
          "feed_plain",
          [](TardisDecoder& d, const py::buffer& b, int64_t file) {
            size_t n;
            const uint8_t* p = bytes_of(b, n);
            py::gil_scoped_release release;
            d.feed_plain(p, n, file);
          },
          "data"_a, "file"_a = -1, "Decompressed bytes.")
      .def(
          "damage",
          [](TardisDecoder& d, const std::string& kind, int64_t file) {
            if (kind != "truncated_file" && kind != "corrupt_file") throw py::value_error("unknown damage kind");
            d.damage(kind == "truncated_file" ? "truncated_file" : "corrupt_file", file);
          },
          "kind"_a, "file"_a = -1, "Damage found by a Python-side decompressor: 'truncated_file' | 'corrupt_file'.")
      .def("end_file", &TardisDecoder::end_file, "file"_a = -1)
      .def(
          "merge",
          [](TardisDecoder& d) {
            py::gil_scoped_release release;
            return d.merge();
          },
          "Decodes the queued rows the merged order allows; returns the files it waits for (empty: all "
          "decoded).")
      .def(
          "take_closed_book",
          [](TardisDecoder& d) {
            auto v = d.take_closed_book();
            return take_vector(v);
          },
          "Book records of messages no later row can extend (the open message's levels stay).")
      .def("take_book", [](TardisDecoder& d) { return take_vector(d.book); })
      .def("take_trades", [](TardisDecoder& d) { return take_vector(d.trades); })
      .def("take_bbo", [](TardisDecoder& d) { return take_vector(d.bbo); })
      .def_property_readonly("venue", [](const TardisDecoder& d) { return py::bytes(d.venue); })
      .def_property_readonly("found",
                             [](const TardisDecoder& d) {
                               // [(symbol bytes, exchange bytes, price decimals, amount decimals)]
                               py::list out;
                               for (const auto& f : d.found) {
                                 out.append(py::make_tuple(py::bytes(f.symbol), py::bytes(f.exchange),
                                                           f.price_decimals, f.amount_decimals));
                               }
                               return out;
                             })
      .def_property_readonly("exotic",
                             [](const TardisDecoder& d) {
                               // [(index in found, is amount, text bytes)]
                               py::list out;
                               for (const auto& e : d.exotic) out.append(py::make_tuple(e.symbol, e.amount, py::bytes(e.text)));
                               return out;
                             })
      .def(
          "rejections",
          [](const TardisDecoder& d) { return table_rejections(d.rejections, &ingest::tardis_reason_name); },
          "[(reason, count, file index, line, sample bytes)] in order of first occurrence.");
}

void bind_lobster(py::module_& m) {
  using ingest::LobsterDecoder;
  py::class_<LobsterDecoder>(m, "LobsterDecoder",
                             "Streaming reader of a LOBSTER message file (file 0) and orderbook file (1) "
                             "and the reference's event building and reconciliation (see "
                             "bot4.data.lobster for the contract).")
      .def(py::init<>())
      .def("begin_file", &LobsterDecoder::begin_file, "file"_a, "gzip"_a, "file: 0 messages, 1 orderbook.")
      .def("set_threads", &LobsterDecoder::set_threads, "on"_a)
      .def(
          "feed",
          [](LobsterDecoder& d, const py::buffer& b, int file) {
            size_t n;
            const uint8_t* p = bytes_of(b, n);
            py::gil_scoped_release release;
            d.feed(p, n, file);
          },
          "data"_a, "file"_a = -1, "Bytes of the file as stored (gzip or plain); file -1: the one begun last.")
      .def(
          "feed_plain",
          [](LobsterDecoder& d, const py::buffer& b, int file) {
            size_t n;
            const uint8_t* p = bytes_of(b, n);
            py::gil_scoped_release release;
            d.feed_plain(p, n, file);
          },
          "data"_a, "file"_a = -1, "Decompressed bytes.")
      .def(
          "damage",
          [](LobsterDecoder& d, const std::string& kind, int file) {
            if (kind != "truncated_file" && kind != "corrupt_file") throw py::value_error("unknown damage kind");
            d.damage(kind == "truncated_file" ? "truncated_file" : "corrupt_file", file);
          },
          "kind"_a, "file"_a = -1, "Damage found by a Python-side decompressor: 'truncated_file' | 'corrupt_file'.")
      .def("end_file", &LobsterDecoder::end_file, "file"_a = -1)
      .def("stream_begin", &LobsterDecoder::stream_begin, "unit"_a, "with_book"_a, "base_ns"_a, "instrument"_a,
           "scan"_a, "Streaming mode: build parameters first, both files fed side by side, pump() builds.")
      .def(
          "pump",
          [](LobsterDecoder& d) {
            py::gil_scoped_release release;
            return d.pump();
          },
          "Builds every row whose orderbook row was read; returns the files it waits for (empty: done).")
      .def("finish_parse", &LobsterDecoder::finish_parse)
      .def_property_readonly("all_cents", &LobsterDecoder::all_cents)
      .def_property_readonly("levels", &LobsterDecoder::levels)
      .def(
          "build",
          [](LobsterDecoder& d, int64_t unit, bool reconcile, int64_t base_ns, uint32_t instrument) {
            if (unit <= 0) throw py::value_error("unit must be positive");
            py::gil_scoped_release release;
            d.build(unit, reconcile, base_ns, instrument);
          },
          "unit"_a, "reconcile"_a, "base_ns"_a, "instrument"_a)
      .def("take_orders", [](LobsterDecoder& d) { return take_vector(d.orders); })
      .def("take_trades", [](LobsterDecoder& d) { return take_vector(d.trades); })
      .def("stats", &LobsterDecoder::stats, "[(name, count)] in order of first increment.")
      .def(
          "rejections",
          [](const LobsterDecoder& d) { return table_rejections(d.rejections, &ingest::lobster_reason_name); },
          "[(reason, count, file (0 messages, 1 orderbook), line, sample bytes)] in order of first occurrence.");
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
  bind_tardis(m);
  bind_lobster(m);
}

}  // namespace bot4::ext
